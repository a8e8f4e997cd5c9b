"""Stopping a sweep: Ctrl-C, SIGTERM, a second Ctrl-C, and resuming where it stopped.

Each driver is a real ``studies/run.py`` subprocess with its own Ray, signalled as a
terminal (Ctrl-C to its process group) or a scheduler (SIGTERM to the group) would.
"""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

import evaluators as ev
from evaluators.record import trial_key
from studies.presets import get_preset
from studies.store import RecordStore

from sweep_process import Driver, alive

EPOCHS = 8  # smoke at 8 epochs: trials long enough to be stopped in the middle
ARGS = ["--preset", "smoke", "--fidelity-set", f"epochs={EPOCHS}"]
FIDELITY = ev.with_changes(ev.get_fidelity("smoke"), epochs=EPOCHS)
CPP_TRACE = re.compile(r"\*\*\* SIG|^\s*@\s+0x|\.(cc|h):\d+\]|rpc_client|Failed to connect to "
                       r"GCS|core_worker|Traceback", re.M)


def _mid_trial(line: str) -> bool:
    return line.startswith("[") and " epoch 2/" in line


def _resumed(err: str) -> dict[str, int]:
    """design -> the epoch its trial resumed after, from the progress lines."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r"\] resume\s+(\S+) s0 after epoch (\d+) \(its checkpoint\)", err)}


def _same_as_uninterrupted(record: dict) -> None:
    """The record's numbers are an uninterrupted run's (same seed, same device: exact)."""
    direct = ev.evaluate(record["design_id"], fidelity=FIDELITY, dataset="synthetic", seed=0,
                         threads=1)
    for key in ("val_acc", "train_loss", "train_acc"):
        assert [r[key] for r in record["curve"]] == [r[key] for r in direct.curve], key
    assert record["test_acc"] == direct.test_acc and record["val_acc"] == direct.val_acc


def test_ctrl_c_stops_with_a_summary_and_the_rerun_resumes_at_the_last_epoch(tmp_path):
    run_dir = tmp_path / "stopped"
    args = [*ARGS, "--run-dir", str(run_dir)]

    # Ctrl-C in the middle of a trial: the summary, exit 130, its checkpoint kept.
    first = Driver(args)
    first.wait_for(_mid_trial)
    first.signal_group(signal.SIGINT)
    status, out, err = first.finish()
    assert status == 130, err[-2000:]
    assert "this run: 0 ok" in out and "stopped by Ctrl-C: the same command resumes" in out
    assert out.rstrip().endswith(f"run directory: {run_dir}")
    assert "interrupted plain8-c16" in err and not CPP_TRACE.search(err), err[-2000:]
    kept = {p.stem for p in (run_dir / "checkpoints").glob("*.pt")}
    assert kept and not kept & RecordStore(run_dir).keys()

    # The same command, to the end: the interrupted trials resume after their last epoch,
    # and every record equals an uninterrupted run's; no checkpoint is left.
    second = Driver(args)
    status, out, err = second.finish()
    assert status == 0, err[-2000:]
    assert "3 of 3 planned trials recorded" in out
    resumed = _resumed(err)
    assert resumed and max(resumed.values()) >= 2  # the epochs of the first run
    store = RecordStore(run_dir)
    assert store.keys() == {trial_key(d, FIDELITY.name, "synthetic", 0)
                            for d in get_preset("smoke").design_ids}
    for key in store.keys():
        record = store.read(key)
        if record["design_id"] in resumed:
            _same_as_uninterrupted(record)
    assert list((run_dir / "checkpoints").iterdir()) == []


@pytest.mark.slow
def test_sigterm_to_the_process_group_ends_with_the_summary_and_no_ray_left(tmp_path):
    # SIGTERM to the whole process group (as systemd or a batch scheduler sends it) mid-way:
    # the same summary, exit 143, and the local Ray shut down with no C++ traces.
    driver = Driver([*ARGS, "--run-dir", str(tmp_path / "terminated")])
    driver.wait_for(_mid_trial)
    driver.note_ray()
    assert driver.ray_pids
    driver.signal_group(signal.SIGTERM)
    status, out, err = driver.finish()
    assert status == 143, err[-2000:]
    assert "stopped by SIGTERM: the same command resumes" in out
    assert "interrupted plain8-c16" in err and not CPP_TRACE.search(err), err[-3000:]
    deadline = time.monotonic() + 20
    while alive(driver.ray_pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(driver.ray_pids)  # GCS, raylet, workers: all gone


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_loses_no_record(tmp_path):
    run_dir = tmp_path / "twice"
    driver = Driver([*ARGS, "--run-dir", str(run_dir)])
    driver.wait_for(lambda line: line.startswith("[") and " ok " in line)  # one record
    driver.wait_for(_mid_trial)
    driver.signal_group(signal.SIGINT)
    time.sleep(0.3)
    driver.signal_group(signal.SIGINT)
    status, out, err = driver.finish()
    assert status == 130 and "Ctrl-C again: stopped at once" in err, err[-2000:]
    assert "stopped by Ctrl-C" in out and "Traceback" not in err
    records = list((run_dir / "records").iterdir())
    assert records and all(p.suffix == ".json" and not p.name.startswith(".")
                           for p in records)  # no temporary file left half-written
    recorded = {json.loads(p.read_text())["design_id"] for p in records}
    oks = set(re.findall(r"\] ok\s+(\S+) s0", err))
    assert oks <= recorded  # every trial shown as ok has its record


def test_the_first_signal_is_noted_a_second_interrupts_but_not_inside_a_record_write():
    import os

    from studies.signals import Interrupts

    before = signal.getsignal(signal.SIGINT)
    interrupts = Interrupts()
    with interrupts.installed():
        os.kill(os.getpid(), signal.SIGTERM)  # the first: noted, nothing raised
        time.sleep(0.05)
        assert interrupts.received == [signal.SIGTERM] and interrupts.exit_status == 143
        written = []
        with pytest.raises(KeyboardInterrupt):
            with interrupts.critical():  # a record and its tell: finished first
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                written.append("record")
        assert written == ["record"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # outside: at once
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is before and interrupts.describe() == "SIGTERM"
