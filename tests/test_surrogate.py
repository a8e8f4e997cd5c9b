"""analysis.table.surrogate on a planted table: predictions of designs it never saw, their
uncertainty, cross-validation held out by design, and replays on it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import search_space as ss
from analysis.replay.simulate import replay
from analysis.table.benchmark import Benchmark
from analysis.table.index import Entry
from analysis.table.surrogate import (
    Prediction,
    Surrogate,
    SurrogateBenchmark,
    cross_validate,
    design_features,
)
from evaluators.record import describe_info

import fake_records as fake

SEED_NOISE = 0.01


def planted(info: dict) -> float:
    """Accuracy rises with log params and peaks at L = 3 (no noise)."""
    return 0.3 + 0.05 * math.log(info["params"] / 1e4) - 0.01 * (info["L"] - 3) ** 2


@pytest.fixture(scope="module")
def space() -> tuple[list[dict], list[dict]]:
    """The 68 plain8 designs under 40k params: three of four in the table, the rest not."""
    infos = [describe_info(d, 10) for d in ss.enumerate_designs(40_000, "plain8",
                                                                  num_classes=10)]
    return [i for k, i in enumerate(infos) if k % 4], [i for k, i in enumerate(infos)
                                                      if not k % 4]


@pytest.fixture(scope="module")
def bench(space) -> Benchmark:
    rng = np.random.default_rng(0)
    records = []
    for info in space[0]:
        for s in range(3):
            acc = planted(info) + rng.normal(0, SEED_NOISE)
            rec = fake.record(info, acc, fidelity="cpu", dataset="cifar10", seed=s)
            rec["curve"] = [{**p, "seconds": info["flops"] / 1e7} for p in rec["curve"]]
            records.append(rec)
    return Benchmark.from_frame(pd.DataFrame(records))


@pytest.fixture(scope="module")
def surrogate(bench) -> Surrogate:
    return Surrogate.fit(bench)


def test_predictions_of_untrained_designs_are_marked_and_near_the_truth(space, surrogate):
    held_out = space[1]
    preds = [surrogate.query(i["id"]) for i in held_out]
    assert all(isinstance(p, Prediction) and p.kind == "surrogate" and not p.in_table
               for p in preds)
    err = np.array([p.val_acc - (planted(i) + 0.002) for p, i in zip(preds, held_out,
                                                                      strict=True)])
    assert np.sqrt((err**2).mean()) < 0.01  # the planted spread is 0.15
    stds = np.array([p.val_acc_std for p in preds])
    assert (stds > 0).all() and (np.abs(err) <= 3 * stds + 3 * SEED_NOISE / 3**0.5).all()
    # The seed noise it learnt is the planted one.
    assert surrogate.seed_std() == pytest.approx(SEED_NOISE, rel=0.3)
    lo, hi = preds[0].val_acc_interval
    assert lo < preds[0].val_acc < hi and hi - lo == pytest.approx(2 * 1.96 * stds[0],
                                                                   rel=1e-3)


def test_uncertainty_grows_away_from_the_table(surrogate, space):
    near = surrogate.query(space[1][0]["id"])
    far = surrogate.query("plain8-c512-k1.g1")  # Xception at 0.3M params: far outside
    assert far.val_acc_std > 3 * near.val_acc_std and far.params > 10 * near.params


def test_the_table_answers_what_it_holds(bench, surrogate, space):
    both = SurrogateBenchmark(bench, surrogate)
    held, new = space[0][0]["id"], space[1][0]["id"]
    assert isinstance(both.query(held), Entry)
    assert both.query(held).val_acc == bench.query(held).val_acc
    assert isinstance(both.query(new), Prediction) and both.query(new).kind == "surrogate"
    assert surrogate.query(held).in_table


def test_cross_validation_held_out_by_design(bench):
    cv = cross_validate(bench, folds=5, n_boot=300)
    assert cv["n_designs"] == 51 and cv["features"] == "describe"
    assert cv["kendall"] > 0.6 and cv["kendall_lo"] < cv["kendall"] < cv["kendall_hi"]
    assert cv["rmse"] < 0.015 and 0.75 <= cv["coverage"] <= 1.0
    gbr = cross_validate(bench, folds=5, n_boot=300, model="gbr")
    assert math.isnan(gbr["coverage"]) and gbr["kendall"] > 0.3


def test_zero_cost_features_need_scores_for_every_design(bench, space):
    ids = [i["id"] for i in space[0]]
    scores = pd.DataFrame({"design_id": ids, "seed": 0, "synflow": 1.0,
                           "theory": np.linspace(0, 1, len(ids))})
    s = Surrogate.fit(bench, scores=scores)
    assert s.features[-2:] == ("zc_synflow", "zc_theory")
    assert s.query(ids[0]).in_table
    with pytest.raises(ValueError, match="no zero-cost scores for 1 designs"):
        s.query(space[1][0]["id"])


def test_replays_run_on_the_surrogate(surrogate, space):
    ids = [i["id"] for i in space[0] + space[1]]
    table = surrogate.replay_table(ids, seeds=2)
    assert len(table.design_ids) == 68 and table.epochs == 3
    assert table.val[0].shape == (2, 3) and table.fidelity == "cpu+surrogate"
    truth = {i["id"]: planted(i) for i in space[0] + space[1]}
    # Its best is the truth's best up to the seed noise of a mean of 2 seeds (0.007).
    assert truth[table.design_ids[table.best]] >= max(truth.values()) - 3 * SEED_NOISE
    r = replay(table, "random", scheduler="asha", seed=0)
    assert r.total_epochs <= 68 * 3 and r.best_design == table.design_ids[table.best]


def test_design_features_of_a_loose_non_uniform_design():
    f = design_features(ss.describe(ss.parse("plain8-c160-k1.8.5.4"), 10))
    assert f["L"] == 4 and f["log_width"] == pytest.approx(math.log(160))
    assert f["log_branch"] == pytest.approx(np.mean(np.log([8, 5, 4])))
    assert f["log_balance"] == pytest.approx(math.log(2.0))


def test_cli_answers_measured_and_predicted(capsys):
    from pathlib import Path

    from analysis.table.surrogate import main

    rel = str(Path(__file__).resolve().parents[1] / "releases" / "igcbench-1.0.json")
    assert main([rel, "plain8-c76-k1.2", "plain8-c80-k1.2"]) == 0
    held, new = capsys.readouterr().out.splitlines()
    assert held.startswith("plain8-c76-k1.2  measured (table) val_acc 0.388 over seeds [0, 1, 2]")
    assert new.startswith("plain8-c80-k1.2  predicted (surrogate) val_acc 0.")
    assert "params 10,330" in new
    assert main([rel, "plain8-c80-k9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plain8-c80-k9" in err[0]
