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


@pytest.mark.skipif(not FOLDER.is_dir(), reason="no committed headline runs here")
def test_the_prose_about_the_headline_runs_quotes_the_committed_states():
    """Every number docs/studies.md says about the headline runs, from their states."""
    from analysis.doc_blocks import markers

    doc = (REPO / "docs" / "studies.md").read_text()
    prose = " ".join(doc.split(markers("headline-check")[1])[1].split("\n## ")[0].split())
    runs = headline.read_runs(FOLDER)
    answers = {name: run["state"]["answer"] for name, run in runs.items()}

    def best(name):
        b = answers[name]["best"]
        return f"`{b['design_id']}`", b

    # Before PICK_REACH: the probe's 4 designs and the two wide picks, cut unfinished.
    (rung,) = answers["hl-15m-a"]["rungs"]
    a_rung = runs["hl-15m-a"]["state"]["rungs"][0]["designs"]
    assert (rung["ok"], rung["missing"] + rung["ok"]) == (4, 8)
    for wide in ("plain8-c4248-k1.2.2", "plain8-c4608-k1.4"):
        assert wide in a_rung and f"`{wide}`" in prose
    assert "fitted on the probe's 4 designs" in prose
    for name in ("hl-15m-b", "hl-15m-c"):
        assert answers[name]["rungs"][0]["ok"] == 10  # "10 designs measured at rung 1"
    ident, b = best("hl-15m-b")
    lo, hi = b["test_ci"]
    assert b["rung"] == 0 and f"named {ident} (test {b['test_acc']:.3f} [{lo:.3f}, " \
        f"{hi:.3f}] on {b['test_images']:,} images)" in prose
    ident, b = best("hl-15m-c")
    assert b["rung"] == 1 and f"named {ident} at rung 1" in prose
    hour = answers["hl-1h"]
    ident, b = best("hl-1h")
    lo, hi = b["test_ci"]
    up = hour["runners_up"][0]
    assert f"named {ident} (test {b['test_acc']:.3f} [{lo:.3f}, {hi:.3f}])" in prose
    assert lo <= up["test_acc"] <= hi and \
        f"`{up['design_id']}` ({up['test_acc']:.3f}) lies inside that interval" in prose
    one, zero = hour["rungs"]
    assert f"measured {one['ok']} designs at rung 1 and {zero['ok']} at rung 0" in prose
    assert f"(Spearman {zero['spearman_vs_below']['rho']:.2f})" in prose
    extra = one["designs"] - 8  # the first rung's 8 planned, then the time left's
    assert f"took {extra} more designs at rung 1, of which {one['ok'] - 8} finished" in prose
    # The predictions, as the headline-check table gives them.
    checks = {(p, m): headline.check(runs[p]["state"], runs[m]["records"])
              for p in runs for m in runs if p != m}

    def taus(*pairs):
        return " and ".join(f"{checks[p]['kendall']:+.2f}" for p in pairs)

    def held(*pairs):
        return " and ".join(str(checks[p]["covered"]) for p in pairs)

    to_hour = [("hl-15m-b", "hl-1h"), ("hl-15m-c", "hl-1h")]
    n = {checks[p]["n"] for p in to_hour}
    assert len(n) == 1
    assert f"tau {taus(*to_hour)} over {n.pop()}" in prose
    assert f"intervals held {held(*to_hour)} of the {checks[to_hour[0]]['seeds']}" in prose
    from_hour = [("hl-1h", "hl-15m-b"), ("hl-1h", "hl-15m-c")]
    assert f"(tau {taus(*from_hour)} over {checks[from_hour[0]]['n']})" in prose
    assert " and ".join(f"{checks[p]['covered']} of {checks[p]['seeds']}" for p in from_hour) \
        in prose
    held_out = hour["space"]["heldout"]
    assert f"its own held-out check covered {held_out['covered']} of {held_out['designs']}" \
        in prose
    assert f"(fitted on {answers['hl-15m-b']['space']['measured']} designs)" in prose
    assert f"hour's surrogate ({hour['space']['measured']}" in prose


@pytest.mark.skipif(not FOLDER.is_dir(), reason="no committed headline runs here")
def test_the_readme_quotes_the_recorded_headline():
    readme = " ".join((REPO / "README.md").read_text().split())
    runs = headline.read_runs(FOLDER)
    fifteen = {runs[n]["state"]["answer"]["rungs"][0]["ok"] for n in ("hl-15m-b", "hl-15m-c")}
    (measured,) = fifteen
    hour = runs["hl-1h"]["state"]["answer"]
    b = hour["best"]
    lo, hi = b["test_ci"]
    assert f"fifteen minutes measured {measured} designs, twice in a row" in readme
    named = {runs[n]["state"]["answer"]["best"]["design_id"] for n in ("hl-15m-b", "hl-15m-c")}
    assert len(named) == 2  # "the two runs named different designs"
    assert "each with its runner-up inside its interval" in readme
    for n in ("hl-15m-b", "hl-15m-c"):
        answer = runs[n]["state"]["answer"]
        low, high = answer["best"]["test_ci"]
        assert low <= answer["runners_up"][0]["test_acc"] <= high, n
    assert (f"the hour measured {hour['rungs'][0]['ok']} and named `{b['design_id']}` (test "
            f"{b['test_acc']:.3f} [{lo:.3f}, {hi:.3f}] on {b['test_images']:,} images)") in readme
