"""In-trial resume (evaluators.checkpoint): an interrupted trial resumes at its next epoch
and ends with the record an uninterrupted run gives (same seed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import evaluators as ev
from evaluators.checkpoint import EpochCheckpoint, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
DESIGN = "plain8-c16-k1.4.4"  # IGCV2, 3 group convolutions (the fast path's fused runs)
RUN = dict(fidelity="smoke", dataset="synthetic", threads=1, device="cpu")  # 4 epochs


class Interrupt(Exception):
    """What a user's Ctrl-C or Tune's stop looks like from inside the trial."""


def _comparable(result: ev.Result) -> dict:
    """The record without what measures time (wall_s, created, latencies, epoch seconds)."""
    record = result.to_dict()
    for key in ("wall_s", "created", "latency_b1_ms", "latency_b64_ms"):
        record.pop(key)
    record["curve"] = [{k: v for k, v in row.items() if k != "seconds"}
                       for row in record["curve"]]
    return record


@pytest.fixture(scope="module")
def reference() -> dict[int, ev.Result]:
    """Uninterrupted runs, seeds 0 and 1."""
    return {seed: ev.evaluate(DESIGN, seed=seed, **RUN) for seed in (0, 1)}


def _interrupted_after(epoch: int, path: Path, seed: int = 0) -> list[dict]:
    seen: list[dict] = []

    def progress(row):
        seen.append(row)
        if row["epoch"] == epoch:
            raise Interrupt

    with pytest.raises(Interrupt):
        ev.evaluate(DESIGN, seed=seed, checkpoint=path, progress=progress, **RUN)
    return seen


@pytest.mark.parametrize("k", [1, 3])
def test_interrupted_after_epoch_k_resumes_and_ends_as_an_uninterrupted_run(
        k, tmp_path, reference):
    path = tmp_path / "trial.pt"
    first = _interrupted_after(k, path)
    assert [r["epoch"] for r in first] == list(range(1, k + 1))
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == k and saved["curve"] == first

    replayed: list[dict] = []
    resumed = ev.evaluate(DESIGN, seed=0, checkpoint=path, progress=replayed.append, **RUN)
    assert resumed.status == "ok" and len(resumed.curve) == 4
    assert _comparable(resumed) == _comparable(reference[0])
    # The restored epochs are the interrupted run's own rows (their seconds included), and
    # the callback sees every epoch once, in order.
    assert list(resumed.curve[:k]) == first
    assert replayed == list(resumed.curve)
    assert resumed.wall_s > sum(r["seconds"] for r in first)  # the earlier runs' time counts


def test_uninterrupted_run_with_a_checkpoint_is_the_same_run(tmp_path, reference):
    path = tmp_path / "trial.pt"
    result = ev.evaluate(DESIGN, seed=0, checkpoint=path, **RUN)
    assert _comparable(result) == _comparable(reference[0])
    assert torch.load(path, weights_only=True)["epoch"] == 4  # left for the caller
    ev.remove_checkpoint(path)
    assert os.listdir(tmp_path) == []


def test_a_checkpoint_of_another_seed_or_a_corrupt_one_is_ignored(tmp_path, reference):
    path = tmp_path / "trial.pt"
    _interrupted_after(2, path, seed=0)
    other = ev.evaluate(DESIGN, seed=1, checkpoint=path, **RUN)  # seed 0's file: not resumed
    assert _comparable(other) == _comparable(reference[1])
    assert torch.load(path, weights_only=True)["identity"]["seed"] == 1  # replaced

    path.write_bytes(path.read_bytes()[:1000])  # truncated, as a full disk would leave it
    again = ev.evaluate(DESIGN, seed=1, checkpoint=path, **RUN)
    assert _comparable(again) == _comparable(reference[1])


def test_the_fidelity_config_is_part_of_the_identity(tmp_path):
    import dataclasses

    path = tmp_path / "trial.pt"
    _interrupted_after(2, path)
    ckpt = EpochCheckpoint(path, {"design_id": DESIGN, "dataset": "synthetic",
                                  "num_classes": 10, "seed": 0, "device": "cpu",
                                  "fidelity_config": {**ev.get_fidelity("smoke").to_dict()}})
    assert load_checkpoint(ckpt) is not None and ckpt.resumed_epochs == 2
    changed = dataclasses.replace(ev.get_fidelity("smoke"), lr=0.05)
    ckpt = EpochCheckpoint(path, {**ckpt.identity, "fidelity_config": changed.to_dict()})
    assert load_checkpoint(ckpt) is None and ckpt.resumed_epochs == 0


def test_remove_checkpoint_also_removes_a_killed_writes_temporary_file(tmp_path):
    path = tmp_path / "trial.pt"
    path.write_bytes(b"x")
    (tmp_path / ".trial.pt.abc123.tmp").write_bytes(b"half")
    (tmp_path / "other.pt").write_bytes(b"keep")
    ev.remove_checkpoint(path)
    ev.remove_checkpoint(path)  # twice: nothing to do, no error
    assert os.listdir(tmp_path) == ["other.pt"]


# A trial in its own process: prints each finished epoch (with its seconds), then keeps
# training; the test kills it with SIGKILL during epoch 3.
TRIAL = """
import sys
import evaluators as ev
def progress(row):
    print(row["epoch"], repr(row["seconds"]), flush=True)
ev.evaluate(sys.argv[1], fidelity="smoke", dataset="synthetic", seed=0, threads=1,
            device="cpu", checkpoint=sys.argv[2], progress=progress)
print("finished", flush=True)
"""


def test_kill_9_mid_trial_then_resume_gives_the_uninterrupted_record(tmp_path, reference):
    path = tmp_path / "ckpt" / "trial.pt"
    proc = subprocess.Popen([sys.executable, "-c", TRIAL, DESIGN, str(path)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True)
    seconds = {}
    try:
        for line in proc.stdout:
            epoch, value = line.split()
            seconds[int(epoch)] = float(value)
            if int(epoch) == 2:
                os.kill(proc.pid, signal.SIGKILL)  # epoch 3 is training now
                break
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL and sorted(seconds) == [1, 2]
    state = torch.load(path, weights_only=True)
    assert state["epoch"] in (2, 3)  # 3 only if the kill came after epoch 3's checkpoint

    resumed = ev.evaluate(DESIGN, seed=0, checkpoint=path, **RUN)
    assert _comparable(resumed) == _comparable(reference[0])
    # Resumed, not retrained: epochs 1 and 2 carry the killed process's timings.
    assert [r["seconds"] for r in resumed.curve[:2]] == [seconds[1], seconds[2]]
    ev.remove_checkpoint(path)  # also a temporary file, if the kill hit a write
    assert os.listdir(path.parent) == []
