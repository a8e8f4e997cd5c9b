"""Records of different training code are not pooled unless a recheck found them equal."""

from __future__ import annotations

import json

import pandas as pd

from analysis.claims.code_groups import code_classes, read_equalities, separate_codes
from analysis.claims.rank_agreement import rank_agreement
from evaluators.provenance import UNKNOWN_CODE, record_training_code, training_code

FIG2_COMMIT = "2c277ee4772a00bb07a7ed9e977a1bd13ec7877c"  # made fig2's and table4's records


def test_the_training_code_of_a_commit_is_its_search_space_and_evaluators_trees():
    # `git rev-parse 2c277ee4:search_space 2c277ee4:evaluators`, 10 digits each
    assert training_code(FIG2_COMMIT) == "7abe1403be/6715f5b67f"
    assert training_code("0" * 40) == UNKNOWN_CODE
    assert record_training_code({"commit": FIG2_COMMIT, "commit_dirty": True}) == (
        "7abe1403be/6715f5b67f+dirty")
    assert record_training_code({"commit": FIG2_COMMIT, "commit_dirty": float("nan")}) == (
        "7abe1403be/6715f5b67f")


def test_equal_rechecks_chain_and_one_unequal_recheck_keeps_a_pair_apart():
    classes = code_classes([("b", "h", True), ("c", "h", True), ("d", "h", True),
                            ("d", "h", False)])
    assert classes["b"] == classes["c"] == classes["h"] == "b"
    assert classes.get("d", "d") == "d"


def _records() -> pd.DataFrame:
    """Fidelity cpu in two codes (designs a-e; code y reversed, by half), cpu2 in one."""
    rows = []
    for fid, code, sign in (("cpu", "x", 1), ("cpu", "y", -0.5), ("cpu2", "z", 1)):
        for i, d in enumerate("abcde"):
            for s in (0, 1):
                rows.append({"design_id": d, "fidelity": fid, "dataset": "c", "seed": s,
                             "status": "ok", "test_acc": 0.5 + sign * 0.01 * i + 0.001 * s,
                             "training_code": code})
    return pd.DataFrame(rows)


def test_rank_agreement_splits_a_fidelity_by_training_code_unless_shown_equal(tmp_path):
    df = _records()
    rows = rank_agreement(df, n_boot=200)
    assert [(r.fidelity_a, r.fidelity_b, round(r.tau, 6)) for r in rows] == [
        ("cpu [code x]", "cpu [code y]", -1.0), ("cpu [code x]", "cpu2", 1.0),
        ("cpu [code y]", "cpu2", -1.0)]
    (tmp_path / "recheck.json").write_text(json.dumps({"records": [
        {"recorded_code": "y", "rerun_code": "x", "equal": True}]}))
    equal = read_equalities(tmp_path)
    assert equal == [("y", "x", True)]
    assert separate_codes(df, equal)["fidelity"].unique().tolist() == ["cpu", "cpu2"]
    (pooled,) = rank_agreement(df, n_boot=200, equalities=equal)
    assert (pooled.fidelity_a, pooled.fidelity_b, round(pooled.tau, 6)) == ("cpu", "cpu2", 1.0)
