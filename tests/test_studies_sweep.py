"""Sweeps with Ray: records and Optuna trials, re-runs, kill -9 of the driver, divergence.

Ray starts once for the module (2 CPUs, no dashboard); in-process sweeps use it. The kill
test runs the driver as a subprocess with its own Ray, so killing it kills that Ray only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from evaluators.record import trial_key
from studies import run
from studies.presets import get_preset
from studies.store import RecordStore

REPO = Path(__file__).resolve().parent.parent
FAST = ["--fidelity-set", "epochs=2"]  # smoke at 2 epochs: a trial in a few seconds


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _trials(run_dir: Path, name: str | None = None) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{run_dir / 'optuna.db'}"
    name = name or optuna.get_all_study_names(storage)[0]
    return optuna.load_study(study_name=name, storage=storage).trials


def _complete_keys(trials) -> list[str]:
    return sorted(t.user_attrs["key"] for t in trials
                  if t.state == optuna.trial.TrialState.COMPLETE)


def _planned_keys(fidelity: str, seeds=(0,)) -> set[str]:
    return {trial_key(d, fidelity, "synthetic", s)
            for d in get_preset("smoke").design_ids for s in seeds}


def test_smoke_sweep_records_every_trial_in_store_and_study(ray_cluster, tmp_path, capsys):
    run_dir = tmp_path / "smoke"
    assert run.main(["--preset", "smoke", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr()
    records = list(RecordStore(run_dir).records())
    assert len(records) == 3 and {r["status"] for r in records} == {"ok"}
    assert {trial_key(r["design_id"], "smoke", "synthetic", 0) for r in records} == \
        _planned_keys("smoke")
    for r in records:  # the schema of docs/internals.md, as evaluate wrote it
        assert len(r["curve"]) == 4 and 0.0 <= r["val_acc"] <= 1.0
        assert r["fidelity_config"]["epochs"] == 4 and r["params"] > 0
    # A Ray trial (reused worker process included) trains exactly as evaluate() here does.
    import evaluators

    direct = evaluators.evaluate(records[-1]["design_id"], fidelity="smoke",
                                 dataset="synthetic", seed=0, threads=1)
    assert [row["val_acc"] for row in records[-1]["curve"]] == [row["val_acc"]
                                                               for row in direct.curve]
    trials = _trials(run_dir, "smoke-smoke-synthetic")
    assert _complete_keys(trials) == sorted(_planned_keys("smoke")) and len(trials) == 3
    for t in trials:  # objectives and describe() fields, for optuna-dashboard
        rec = RecordStore(run_dir).read(t.user_attrs["key"])
        assert t.values == [rec["val_acc"], rec["params"]]
        assert t.params == {"design_id": rec["design_id"]}
        assert t.user_attrs["width"] == rec["width"] and t.user_attrs["seed"] == 0
    assert json.loads((run_dir / "run.json").read_text())["study"] == "smoke-smoke-synthetic"
    analysis = pytest.importorskip("analysis")  # the reader downstream: files and study agree
    df = analysis.load_results(run_dir, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert len(df) == 3 and set(df.optuna_state) == {"COMPLETE"}
    assert f"run directory: {run_dir}" in out.out and "3 of 3 planned trials recorded" in out.out
    assert "done 3/3 (ok 3)" in out.err  # the progress lines
    assert not list((run_dir / "records").glob(".*"))  # no temporary files left

    # The same command again trains nothing and changes nothing.
    before = {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").iterdir()}
    assert run.main(["--preset", "smoke", "--run-dir", str(run_dir)]) == 0
    assert "0 to run" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").iterdir()} == before
    assert len(_trials(run_dir)) == 3


def test_a_diverging_trial_is_recorded_as_failed_and_the_sweep_goes_on(ray_cluster, tmp_path,
                                                                        capsys):
    run_dir = tmp_path / "lr100"
    argv = ["--preset", "smoke", "--run-dir", str(run_dir), "--fidelity-set", "lr=100", *FAST]
    assert run.main(argv) == 0  # failures are results, not errors of the sweep
    records = list(RecordStore(run_dir).records())
    assert len(records) == 3
    for r in records:
        assert r["status"] == "failed" and r["reason"].startswith("diverged: loss=nan")
        assert r["val_acc"] is None and r["fidelity"] == "smoke+lr=100+epochs=2"
    trials = _trials(run_dir)
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 3
    assert all(t.user_attrs["reason"].startswith("diverged") for t in trials)
    events = [line.split("]", 1)[1].split()[:2] for line in capsys.readouterr().err.splitlines()
              if line.startswith("[")]
    assert [e[0] for e in events].count("failed") == 3 and events[-1][0] == "failed"
    # Two run at once on 2 CPUs: the third starts only after a trial failed.
    assert events.index(["start", get_preset("smoke").design_ids[2]]) > \
        [e[0] for e in events].index("failed")


def test_tpe_with_asha_stays_within_max_trials_and_never_repeats_a_key(ray_cluster, tmp_path):
    run_dir = tmp_path / "tpe"
    argv = ["--preset", "smoke", "--run-dir", str(run_dir), "--search", "tpe", "--seeds", "2",
            "--max-trials", "5", *FAST]
    assert run.main(argv) == 0
    records = list(RecordStore(run_dir).records())
    assert len(records) == 5  # ok, or stopped by ASHA: each is a record
    for r in records:
        assert r["status"] == "ok" or r["reason"].startswith("stopped: ASHA")
    trials = _trials(run_dir)
    told = [t for t in trials if "status" in t.user_attrs]
    assert sorted(t.user_attrs["key"] for t in told) == sorted(RecordStore(run_dir).keys())
    # Seeds of a design run together: 5 trials touch at most 3 designs, each at seed 0 first.
    assert {r["seed"] for r in records} == {0, 1}
    assert run.main(argv) == 0 and len(RecordStore(run_dir).keys()) == 5


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (Ray's GCS, raylet and workers below the driver)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def test_kill_9_then_two_drivers_finish_the_sweep_without_duplicates(ray_cluster, tmp_path,
                                                                     monkeypatch):
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "studies/run.py", "--preset", "smoke", "--run-dir", str(run_dir),
           *FAST]
    # Dead drivers' RUNNING trials go stale after 4 s instead of 30, to keep the test short.
    monkeypatch.setenv("IGCBENCH_STALE_AFTER_S", "4")
    env = dict(os.environ)
    driver = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 150
        while not RecordStore(run_dir).keys():  # a trial finished; others are in flight
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, "no record within 150 s"
            time.sleep(0.2)
        doomed = _descendants(driver.pid)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
    for pid in doomed:  # Ray workers run in sessions of their own: kill them too
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    driver.wait()
    recorded_at_kill = RecordStore(run_dir).keys()
    assert 1 <= len(recorded_at_kill) < 3

    # The same command again, twice at once on the same run directory and storage: one
    # driver in this process (on the module's Ray), one in a subprocess with its own Ray.
    second = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert run.main(cmd[2:]) == 0
        assert second.wait(timeout=240) == 0, second.stderr.read()[-2000:]
    finally:
        second.kill()
    planned = _planned_keys("smoke+epochs=2")
    store = RecordStore(run_dir)
    assert store.keys() == planned
    assert all(store.read(k)["status"] == "ok" for k in planned)
    assert not [p for p in (run_dir / "records").iterdir() if not p.name.endswith(".json")
                or p.name.startswith(".")]
    trials = _trials(run_dir)
    complete = _complete_keys(trials)
    assert complete == sorted(planned)  # one COMPLETE trial per key: no duplicates
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
