"""analysis.table.space_answer: every design of a sweep's space, measured or predicted."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy.stats import beta

from analysis.table import space_answer as sa
from evaluators.record import describe_info

from fake_records import record

IDS = ["plain8-c16-k1.4.4", "plain8-c64-k1.64", "plain8-c144-k1.12.12", "plain8-c32-k1.2",
       "plain8-c48-k1.g4", "plain8-c80-k1.2"]
CONFIG = {"train_size": 1000, "val_fraction": 0.1}  # 100 validation images


def _records(accs):
    out = []
    for d, acc in accs.items():
        r = record(describe_info(d, 10), acc, fidelity="f", dataset="synthetic", seed=0)
        r.update(fidelity_config=CONFIG, val_acc=acc)
        out.append(r)
    return out


def test_a_measured_design_has_the_interval_of_its_validation_images():
    answer = sa.answer_space(IDS, _records({IDS[0]: 0.42}), dataset="synthetic")
    (row,) = [r for r in answer["designs"] if r["kind"] == "measured"]
    assert (row["design_id"], row["val_acc"], row["seeds"]) == (IDS[0], 0.42, [0])
    assert row["interval"] == [pytest.approx(beta.ppf(0.025, 42, 59)),
                               pytest.approx(beta.ppf(0.975, 43, 58))]
    assert answer["measured"] == 1 and answer["predicted"] == 5 and answer["reference"] == "f"
    assert answer["method"].startswith("not predicted: too few designs measured")
    assert [r["rank"] for r in answer["designs"]] == [1, 2, 3, 4, 5, 6]


def test_a_failed_surrogate_falls_back_to_the_zero_cost_rank():
    """A score that is not finite (synflow 0: its log) stops the surrogate; the designs are
    ranked by width all the same, and the answer says why."""
    accs = dict(zip(IDS[:5], (0.3, 0.5, 0.6, 0.35, 0.4), strict=True))
    scores = pd.DataFrame({"design_id": IDS, "seed": 0, "width": [16, 64, 144, 32, 48, 80],
                           "synflow": [0.0, 1, 2, 3, 4, 5]})
    answer = sa.answer_space(IDS, _records(accs), dataset="synthetic", scores=scores,
                             scores_source="x.csv")
    assert answer["method"].startswith("the surrogate failed (non-finite features")
    assert answer["method"].endswith("ranked by zero-cost width alone (x.csv), no interval")
    assert answer["designs"][-1] == {"design_id": IDS[5], "kind": "predicted",
                                     "val_acc": None, "interval": None,
                                     "zc": {"width": 80.0}, "rank": 6}
    assert [r["design_id"] for r in answer["designs"][:5]] == [IDS[2], IDS[1], IDS[4],
                                                              IDS[3], IDS[0]]
