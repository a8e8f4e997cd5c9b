"""The record's one owner (evaluators.record): key, columns, files, provenance, old records."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import evaluators as ev
import search_space as ss
from evaluators import provenance as pv
from evaluators import record as rc
from studies.store import RecordStore

REPO = Path(__file__).resolve().parents[1]
BEFORE = REPO / "tests" / "data"  # records written by the code before issue 16
# Fields that differ between any two runs (time, the code's commit) or that the new code
# adds; everything else of a record must be what the code before issue 16 wrote.
VOLATILE = {"created", "commit", "commit_dirty", "wall_s"}


def old_record(name: str) -> dict:
    return json.loads((BEFORE / f"record-before-16-{name}.json").read_text())


def test_importing_the_record_and_the_driver_side_loads_no_torch():
    code = ("import sys, evaluators, evaluators.record, studies.store, studies.plan, "
            "studies.run, analysis.load; r = evaluators.Result; evaluators.get_fidelity('cpu'); "
            "print(sorted(m for m in ('torch', 'ray', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "['pandas']"  # analysis.load is pandas; nothing is torch or Ray


def test_key_is_sha1_of_the_four_fields():
    expected = hashlib.sha1(b"plain8-c64-k1.64|cpu|cifar10|2").hexdigest()[:16]
    assert rc.trial_key("plain8-c64-k1.64", "cpu", "cifar10", 2) == expected
    assert rc.trial_key("plain8-c64-k1.64", "cpu", "cifar10", 3) != expected
    assert rc.record_key({"design_id": "plain8-c64-k1.64", "fidelity": "cpu",
                          "dataset": "cifar10", "seed": 2}) == expected
    assert rc.record_key(old_record("stopped")) == rc.trial_key(
        "plain8-c16-k1.4.4", "smoke", "synthetic", 1)


def test_columns_are_describe_then_the_results_own():
    old = old_record("smoke")
    assert rc.COLUMNS == (*ss.DESCRIBE_KEYS, *rc.RECORD_KEYS)
    assert set(rc.COLUMNS) - set(rc.OPTIONAL_KEYS) == set(old)  # what the old code wrote
    assert rc.OPTIONAL_KEYS == ("commit_dirty", "zero_cost") and rc.KEY == (
        "design_id", "fidelity", "dataset", "seed")


def test_an_old_record_without_the_dirty_flag_loads_everywhere(tmp_path):
    old = old_record("smoke")
    result = ev.Result.from_dict(old)
    assert result.commit_dirty is None and result.val_acc == old["val_acc"]
    assert {k: v for k, v in result.to_dict().items() if k != "commit_dirty"} == old
    store = RecordStore(tmp_path)
    key = store.write(old)
    assert store.read(key) == old and list(store.records()) == [old]
    from analysis import load_results

    df = load_results(tmp_path)
    assert df.loc[0, "val_acc"] == old["val_acc"] and "commit_dirty" not in df.columns


def test_stopped_record_is_the_one_the_old_ledger_built(monkeypatch):
    from evaluators.fidelity import get_fidelity
    from studies.ledger import Ledger, Running
    from studies.plan import Plan

    old = old_record("stopped")
    ledger = types.SimpleNamespace(  # what _stopped_record reads of a Ledger
        plan=Plan(name="x", design_ids=("plain8-c16-k1.4.4",), seeds=(0,), fidelity="smoke",
                  dataset="synthetic"),
        fidelity=get_fidelity("smoke"), num_classes=10, input_size=32)
    run = Running(key="k", design_id="plain8-c16-k1.4.4", seed=1, optuna_trial_id=0,
                  optuna_number=0, tune_trial_id="t", curve=[dict(old["curve"][0])],
                  device="cpu", torch_version=old["torch_version"])
    new = Ledger._stopped_record(ledger, run, 1, old["wall_s"])
    assert new.keys() == old.keys() | {"commit_dirty"}
    assert {k: v for k, v in new.items() if k not in VOLATILE} == {
        k: v for k, v in old.items() if k not in VOLATILE}
    assert new["wall_s"] == old["wall_s"] and rc.is_stopped(new)
    assert (new["commit"], new["commit_dirty"]) == (pv.git_commit(), pv.provenance().dirty)


def test_write_json_atomic_is_whole_readable_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "a.json"
    rc.write_json_atomic(path, {"b": 1, "a": float("nan")})
    assert path.read_text() == '{\n "a": NaN,\n "b": 1\n}\n'  # a record file, byte for byte
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's owner-only 0600
    with pytest.raises(TypeError):
        rc.write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text())["b"] == 1
    assert os.listdir(tmp_path) == ["a.json"]  # no temporary file left behind
    rc.write_json_atomic(path, {"b": 1, "a": 2}, sort_keys=False)
    assert path.read_text().startswith('{\n "b"')


def test_reading_skips_temporary_files_and_names_the_bad_ones(tmp_path):
    good = {"design_id": "d", "fidelity": "f", "dataset": "x", "seed": 0}
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / ".a.json.0f0f.tmp").write_text("{half")
    (tmp_path / "b.json").write_text("[1]")
    (tmp_path / "c.json").write_text(json.dumps({"id": "e", "fidelity": "f", "dataset": "x"}))
    with pytest.warns(UserWarning) as caught:
        found = list(rc.read_records(tmp_path))
    assert [(p.name, r) for p, r in found] == [("a.json", good)]
    messages = [str(w.message) for w in caught]
    assert "b.json: not a JSON object" in messages[0] and "lacks seed" in messages[1]
    old = {"id": "e", "fidelity": "f", "dataset": "x", "seed": 1}  # before design_id existed
    (tmp_path / "c.json").write_text(json.dumps(old))
    assert rc.read_record(tmp_path / "c.json")["design_id"] == "e"


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root,
                   check=True, capture_output=True)


def test_provenance_is_the_commit_and_whether_the_code_differs(tmp_path):
    assert pv.checkout_provenance(tmp_path) == pv.Provenance("unknown", None)
    (tmp_path / "evaluators").mkdir()
    (tmp_path / "evaluators" / "x.py").write_text("A = 1\n")
    (tmp_path / "notes.md").write_text("hello\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True).stdout.strip()
    assert pv.checkout_provenance(tmp_path) == pv.Provenance(head, False)
    (tmp_path / "notes.md").write_text("edited prose does not change a result\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "r.json").write_text("{}")
    assert pv.checkout_provenance(tmp_path).dirty is False
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "new.py").write_text("B = 2\n")  # new code, not yet committed
    assert pv.checkout_provenance(tmp_path) == pv.Provenance(head, True)
    (tmp_path / "studies" / "new.py").unlink()
    (tmp_path / "evaluators" / "x.py").write_text("A = 2\n")
    assert pv.checkout_provenance(tmp_path).dirty is True


def test_replace_dir_is_whole_or_nothing(tmp_path):
    out = tmp_path / "bb"

    def half(tmp) -> None:
        (tmp / "first").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        rc.replace_dir(out, half)
    assert list(tmp_path.iterdir()) == []
    rc.replace_dir(out, lambda tmp: (tmp / "v1").write_text("1"))
    with pytest.raises(FileExistsError):
        rc.replace_dir(out, lambda tmp: (tmp / "v2").write_text("2"))
    with pytest.raises(RuntimeError):
        rc.replace_dir(out, half, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["bb"] and (out / "v1").is_file()
    rc.replace_dir(out, lambda tmp: (tmp / "v2").write_text("2"), overwrite=True)
    assert [p.name for p in out.iterdir()] == ["v2"] and len(list(tmp_path.iterdir())) == 1
