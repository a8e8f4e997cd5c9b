"""Records of different training code are not pooled unless a recheck found them equal."""

from __future__ import annotations

import json

import pandas as pd
import pytest

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


def _table2(codes: dict[str, tuple[float, str]]) -> pd.DataFrame:
    """Table 2's six designs, three seeds per code (its own seed numbers: a record's key has
    no code): IGCV2 ahead of Xception by the planted gap at every budget (no noise but 0.001
    per seed), each code made at its own time."""
    import search_space as ss
    from analysis import frame_from_records
    from studies.presets import get_preset

    rows = []
    for k, (code, (gap, created)) in enumerate(codes.items()):
        for d in get_preset("table2").design_ids:
            info = ss.describe(ss.parse(d), num_classes=10)
            for s in range(3):
                a = 0.40 + (gap if info["family"] == "igcv2" else 0.0) + 0.001 * s
                rows.append({**info, "design_id": d, "fidelity": "cpu", "dataset": "c10",
                             "seed": 10 * k + s, "status": "ok", "val_acc": a, "test_acc": a,
                             "training_code": code, "created": created})
    return frame_from_records(rows)


def test_no_verdict_pools_two_training_codes_unless_a_recheck_shows_them_equal():
    from analysis.claims.check import check_claims

    df = _table2({"old": (0.0, "2026-11-26T11:00:00+00:00"),
                  "new": (0.03, "2026-12-07T09:00:00+00:00")})

    def table2(equalities):
        (v,) = [v for v in check_claims(df, n_boot=300, equalities=equalities)
                if v.claim == "table2_igcv2_vs_xception"]
        return v

    apart = table2([])  # the same designs and records in each code: the newer one is used
    assert apart.n == 18 and apart.left_out == 18
    assert apart.effect == pytest.approx(0.03, abs=1e-9)
    assert apart.training_code == ("new; 18 records; left out 18 (18 of code old: no recheck "
                                   "shows it equal)")
    pooled = table2([("old", "new", True)])
    assert pooled.n == 36 and pooled.left_out == 0
    assert pooled.effect == pytest.approx(0.015, abs=1e-9)
    assert pooled.training_code == "new = old (equal in a recheck); 36 records"
    # the more complete code wins over the newer one: old holds all six designs
    partial = df[df.training_code.eq("old") | df.family.eq("igcv2")]
    (v,) = [v for v in check_claims(partial, n_boot=300, equalities=[])
            if v.claim == "table2_igcv2_vs_xception"]
    assert v.n == 18 and v.left_out == 9 and v.effect == pytest.approx(0.0, abs=1e-9)


def test_records_of_unknown_code_are_used_only_where_no_code_is_known():
    from analysis.claims.code_groups import one_code

    rows = pd.DataFrame({"design_id": list("abcd"), "status": "ok",
                         "commit": [None, None, None, FIG2_COMMIT]})
    kept, choice = one_code(rows, [])  # the code comes from the commit: unknown without one
    assert kept["design_id"].tolist() == ["d"]
    assert choice.codes == ("7abe1403be/6715f5b67f",) and choice.left_out == {UNKNOWN_CODE: 3}
    kept, choice = one_code(rows.iloc[:3], [])
    assert len(kept) == 3 and choice.codes == (UNKNOWN_CODE,) and choice.n_left_out == 0
