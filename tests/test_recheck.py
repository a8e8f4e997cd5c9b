"""benchmarks.recheck: a committed record re-run at HEAD is equal; a changed one is not, and
the report says by how much."""

from __future__ import annotations

import json

import pytest

import evaluators as ev
from analysis.load import frame_from_records
from analysis.table.release import write_records
from benchmarks import recheck
from evaluators.provenance import training_code


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A CSV export of two smoke records: one as trained, one whose numbers were altered."""
    rec = ev.evaluate("plain8-c16-k1.4.4", "smoke", "synthetic", seed=0, device="cpu")
    true = rec.to_dict()
    # another key (an export holds one record per key), the same config and seed
    altered = {**true, "fidelity": "smoke-altered", "test_acc": true["test_acc"] - 0.25,
               "curve": [{**row, "train_loss": row["train_loss"] + 0.5}
                         for row in true["curve"]]}
    path = tmp_path_factory.mktemp("exports") / "smoke.csv"
    write_records(frame_from_records([true, altered]), path)
    return path, true


@pytest.mark.slow  # three smoke trainings, two in fresh processes: about a minute here
def test_rerun_at_head_finds_the_true_record_equal_and_measures_the_altered_one(
        export, tmp_path):
    path, true = export
    out = tmp_path / "recheck.json"
    assert recheck.main([str(path), "--sample", "2", "--seed", "0", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert (doc["rechecked"], doc["equal"]) == (2, 1)
    same, changed = sorted(doc["records"], key=lambda r: -r["recorded"]["test_acc"])
    assert same["equal"] and same["rerun"]["test_acc"] == true["test_acc"]
    assert same["curve_max_abs_diff"] == {"train_loss": 0, "train_acc": 0, "val_acc": 0}
    assert not changed["equal"]
    assert changed["test_acc_diff"] == pytest.approx(0.25, abs=1e-12)
    assert changed["curve_max_abs_diff"]["train_loss"] == pytest.approx(0.5, abs=1e-12)
    assert changed["curve_max_abs_diff"]["val_acc"] == 0
    assert same["rerun_code"].split("+")[0] == training_code("HEAD")


def test_a_missing_source_is_one_line_and_exit_2_with_nothing_written(tmp_path, capsys):
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as exc:
        recheck.main([str(tmp_path / "nope.csv"), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.csv" in err
    assert not out.exists()


def test_keys_the_exports_hold_under_two_codes_are_compared_without_a_rerun(tmp_path):
    from fake_records import describe, record

    old = {**record(describe(144, (1, 12, 12)), 0.5, fidelity="cpu", dataset="cifar10",
                    seed=0), "commit": "3fe48d2e3e9487f8cfa5541ece0dad4284826bc8"}
    same = {**old, "commit": "b27e3d6c5d8e5b5955332ede4c51a5a5a6239148",
            "created": "2025-01-02T00:00:00+00:00"}  # the same trees: one code
    new = {**old, "commit": "2c277ee4772a00bb07a7ed9e977a1bd13ec7877c",
           "created": "2025-01-03T00:00:00+00:00", "test_acc": 0.375}
    for name, rec in (("a", old), ("b", same), ("c", new)):
        write_records(frame_from_records([rec]), tmp_path / f"{name}.csv")
    out = tmp_path / "pairs.json"
    assert recheck.main([str(tmp_path), "--at", "exports", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    (pair,) = doc["records"]  # old and same share a code: one pair, of two codes
    assert (pair["recorded_code"], pair["rerun_code"]) == (
        "7cb3e666f5/dbf35f53c1", "7abe1403be/6715f5b67f")
    assert not pair["equal"] and pair["test_acc_diff"] == pytest.approx(-0.125, abs=1e-12)
    assert "0 of 1 pairs equal" in recheck.markdown(doc)
