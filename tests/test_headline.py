"""The headline runs recorded in docs/studies.md (issue 25): the blocks regenerate from the
committed states and records, every run answered within its budget plus the margin with
every design listed, and the prediction check counts what it says it counts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.report import headline

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "docs" / "studies" / "headline"
MARGIN_S = 60  # studies.budget_plan.MARGIN_S: the stated margin past the budget


def _state(rows, reference="f1"):
    return {"answer": {"time_budget_s": 900, "seconds": 880, "candidates": len(rows),
                       "rungs": [{"ladder": 1, "ok": 2}],
                       "space": {"reference": reference, "designs": rows,
                                 "measured": sum(r["kind"] == "measured" for r in rows),
                                 "predicted": sum(r["kind"] == "predicted" for r in rows)}}}


def _records(vals, fidelity="f1"):
    return pd.DataFrame([{"design_id": d, "fidelity": fidelity, "val_acc": v, "seed": s}
                         for d, vs in vals.items() for s, v in enumerate(vs)])


def test_check_counts_predicted_designs_the_other_run_measured():
    rows = [{"design_id": "a", "kind": "measured", "val_acc": 0.5, "interval": [0.4, 0.6]},
            {"design_id": "b", "kind": "predicted", "val_acc": 0.30, "interval": [0.25, 0.35]},
            {"design_id": "c", "kind": "predicted", "val_acc": 0.20, "interval": [0.15, 0.25]},
            {"design_id": "d", "kind": "predicted", "val_acc": 0.10, "interval": [0.05, 0.15]},
            {"design_id": "e", "kind": "predicted", "val_acc": 0.40, "interval": [0.35, 0.45]}]
    # b, c, d measured (a too, but it was measured by the predictor: not counted); e not.
    measured = _records({"a": [0.5], "b": [0.32, 0.40], "c": [0.22], "d": [0.01]})
    c = headline.check(_state(rows), measured)
    assert (c["n"], c["reference"]) == (3, "f1")
    assert c["kendall"] == pytest.approx(1.0)  # means 0.36 > 0.22 > 0.01, as predicted
    assert (c["covered"], c["seeds"]) == (2, 4)  # 0.32 and 0.22 inside; 0.40 and 0.01 not
    # Another fidelity's records say nothing about the reference rung's predictions.
    assert headline.check(_state(rows), _records({"b": [0.3]}, "f0"))["n"] == 0


def test_runs_block_says_when_nothing_was_trained():
    state = _state([{"design_id": "a", "kind": "predicted", "val_acc": None,
                     "interval": None}])
    state["answer"]["space"]["heldout"] = None
    table = headline.runs_block({"r": {"state": state, "records": pd.DataFrame()}})
    assert "| r | ? | 15m00s | 14m40s | 1: 2 | 0 / 1 / 1 | none | none (predicted only) | none |" \
        in table


def test_collect_refuses_a_folder_that_is_not_a_time_budget_run(tmp_path):
    assert headline.main(["collect", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not FOLDER.is_dir(), reason="no committed headline runs here")
def test_the_headline_runs_in_the_docs_are_the_committed_ones():
    """docs/studies.md's headline blocks are what the committed states render; each run
    answered within its budget plus the margin, listing every one of the 74 designs."""
    from analysis.doc_blocks import block_in_doc

    doc = (REPO / "docs" / "studies.md").read_text()
    for block, text in headline.blocks(FOLDER).items():
        assert block_in_doc(doc, block) == text
    for name, run in headline.read_runs(FOLDER).items():
        answer = run["state"]["answer"]
        assert answer["seconds"] <= answer["time_budget_s"] + MARGIN_S, name
        space = answer["space"]
        listed = {row["design_id"] for row in space["designs"]}
        assert len(listed) == space["measured"] + space["predicted"] == 74, name
        ok = run["records"]
        assert set(ok[ok["fidelity"] == space["reference"]]["design_id"]) == {
            row["design_id"] for row in space["designs"] if row["kind"] == "measured"}, name
    assert json.loads((FOLDER / "hl-1h" / headline.STATE).read_text())["answer"][
        "time_budget_s"] == 3600


def test_a_flat_prediction_has_no_rank_agreement():
    rows = [{"design_id": d, "kind": "predicted", "val_acc": 0.3, "interval": [0.2, 0.4]}
            for d in "bcd"]
    c = headline.check(_state(rows), _records({"b": [0.1], "c": [0.2], "d": [0.3]}))
    assert (c["n"], c["kendall"], c["covered"]) == (3, None, 2)
    table = headline.check_block({"p": {"state": _state(rows), "records": _records({})},
                                  "m": {"state": _state([]), "records": _records(
                                      {"b": [0.1], "c": [0.2], "d": [0.3]})}})
    assert "| p | m | 3 | undefined (a constant side) | 2 of 3 |" in table
