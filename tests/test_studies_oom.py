"""A trial whose worker Ray's memory monitor kills: the sweep goes on, the trial runs again,
and a trial killed so twice becomes a failed record.

The Ray tests start Ray in subprocesses with ``RAY_memory_usage_threshold`` set so the
memory monitor really kills: below the node's current use (every worker is killed), or just
above it with a trainable that then allocates 4 GB (killed while it runs, the case that made
``tuner.fit()`` raise ``RuntimeError: Caught unexpected exception``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from studies import study as st
from studies.ledger import OOM_KILLED, Ledger, Running
from studies.plan import Plan
from studies.sampling import make_sampler
from studies.store import RecordStore

from sweep_process import REPO, Driver

RAY_MESSAGE = ("1 worker(s) were killed due to the node running low on memory. Memory on the "
               "node (IP: 10.0.0.1, ID: b3e9) was 22.46GB used / 23.54GB limit (0.953941)\n"
               "OOM kill reason: Memory usage 24093847552B exceeded threshold")


def test_the_reason_names_the_memory_monitor_and_the_nodes_memory():
    from studies.worker_deaths import memory_kill_reason

    assert memory_kill_reason(" ".join(RAY_MESSAGE.split())) == (
        "out of memory: killed by Ray's memory monitor (node at 22.46GB used / 23.54GB limit)")
    assert memory_kill_reason("error: RuntimeError: CUDA out of memory") is None


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_memory_kill_is_interrupted_once_and_a_failed_record_the_second_time(tmp_path):
    import evaluators as ev

    plan = Plan(name="x", design_ids=("plain8-c16-k1.g1",), seeds=(0,), fidelity="smoke",
                dataset="synthetic")
    key = plan.key("plain8-c16-k1.g1", 0)
    storage = st.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    reason = f"{OOM_KILLED} (node at 22.46GB used / 23.54GB limit)"
    outcomes = []
    for attempt in range(2):  # two runs of the same command
        study = st.open_study(storage, plan.name, make_sampler("grid", 0, plan.target))
        ledger = Ledger(plan, RecordStore(tmp_path), study, storage,
                        fidelity=ev.get_fidelity("smoke"), num_classes=10,
                        checkpoint_dir=tmp_path / "checkpoints")
        trial = study.ask()
        trial.set_user_attr(st.KEY_ATTR, key)  # as the searcher names its trials
        ledger.register(Running(key, "plain8-c16-k1.g1", 0, trial._trial_id, trial.number,
                                f"t{attempt}", checkpoint=ledger.checkpoint_path(key)))
        ledger.started(f"t{attempt}")
        ledger.epoch(f"t{attempt}", {"epoch": 1, "val_acc": 0.25, "seconds": 1.0}, "cpu")
        outcomes.append(ledger.finish(f"t{attempt}", None, error=reason))
    assert [o.outcome for o in outcomes] == ["interrupted", "failed"]
    record = RecordStore(tmp_path).read(key)
    assert record["status"] == "failed" and record["val_acc"] is None
    assert record["reason"] == f"{reason}; twice, so it is recorded as failed"
    assert [r["val_acc"] for r in record["curve"]] == [0.25]


def _memory_used() -> float:
    """The node's memory use as Ray's monitor computes it (1 - available / total)."""
    info = {line.split(":")[0]: int(line.split()[1]) for line in open("/proc/meminfo")}
    return 1 - info["MemAvailable"] / info["MemTotal"]


KILLED_WHILE_RUNNING = textwrap.dedent("""
    import os, time, ray
    from ray import tune
    from studies.recorder import _error_line  # what the sweep records for the trial
    from studies.worker_deaths import tolerate_killed_workers

    def trainable(config):
        import numpy as np
        tune.report({"x": 0})
        hog = np.ones(int(4e9 / 8))  # 4 GB: over the threshold, the monitor kills us
        time.sleep(30)
        tune.report({"x": float(hog[0])})

    class Errors(tune.Callback):
        def on_trial_error(self, iteration, trials, trial, **info):
            print("TRIAL ERROR:", _error_line(trial))

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    with tolerate_killed_workers():
        tune.Tuner(trainable, run_config=tune.RunConfig(
            storage_path=os.environ["RUN_DIR"], verbose=0, callbacks=[Errors()],
            failure_config=tune.FailureConfig(max_failures=0))).fit()
    print("FIT RETURNED")
    ray.shutdown()
""")


@pytest.mark.slow
def test_a_worker_killed_while_its_trial_runs_fails_that_trial_not_tune(tmp_path):
    threshold = min(0.9, _memory_used() + 0.08)  # ~2 GB above today's use
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_RUNNING], cwd=REPO, capture_output=True,
        text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "RUN_DIR": str(tmp_path),
             "RAY_memory_usage_threshold": f"{threshold:.3f}",
             "RAY_memory_monitor_refresh_ms": "100", "RAY_USAGE_STATS_ENABLED": "0"})
    assert "FIT RETURNED" in done.stdout, done.stderr[-3000:]
    assert f"TRIAL ERROR: {OOM_KILLED} (node at" in done.stdout, done.stdout


@pytest.mark.slow
def test_a_sweep_whose_workers_are_killed_ends_with_its_summary_and_reruns_them(tmp_path):
    run_dir = tmp_path / "oom"
    args = ["--preset", "smoke", "--run-dir", str(run_dir), "--fidelity-set", "epochs=2"]
    # Below today's use: the monitor kills every worker Ray starts for a trial.
    starved = {"RAY_memory_usage_threshold": f"{max(0.02, _memory_used() / 4):.3f}",
               "RAY_memory_monitor_refresh_ms": "100"}
    status, out, err = Driver(args, env=starved).finish()
    assert status == 1 and "Traceback" not in err, err[-3000:]
    assert f"interrupted plain8-c16-k1.4.4 s0  {OOM_KILLED} (node at" in err
    assert "this run: 0 ok, 0 failed, 0 stopped, 3 without a record" in out
    # Killed again: now a failed record each, and the sweep is complete.
    status, out, err = Driver(args, env=starved).finish()
    assert status == 0, err[-3000:]
    records = list(RecordStore(run_dir).records())
    assert len(records) == 3 and all(r["reason"].startswith(OOM_KILLED) and r["reason"]
                                     .endswith("twice, so it is recorded as failed")
                                     for r in records)
