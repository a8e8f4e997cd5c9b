"""benchmarks/proxy_gpu.py, the Ray-free runner of the lent GPU machines, on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import proxy_gpu


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--preset", "smoke", "--fidelity", "smoke", "--dataset", "synthetic",
            "--seeds", "1", "--procs", "1", "--device", "cpu", "--data-dir", str(tmp_path),
            "--run-dir", str(tmp_path / "run"), *extra]


def _records(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (tmp_path / "run" / "records").glob("*.json")]


def test_records_a_shortened_fidelity_under_its_own_name_and_resumes(tmp_path, capfd):
    assert proxy_gpu.main(_args(tmp_path, "--epochs", "1", "--designs-per-batch", "2")) == 0
    records = _records(tmp_path)
    assert len(records) == 3
    assert {r["fidelity"] for r in records} == {"smoke+epochs=1"}  # as run.py names it
    assert all(r["status"] == "ok" and len(r["curve"]) == 1 for r in records)
    assert all(r["fidelity_config"]["epochs"] == 1 for r in records)
    assert all(r["fidelity_config"]["engine"]["conv1x1"] == "dense" for r in records)
    out = capfd.readouterr().out  # the workers are processes: read the file descriptors
    assert "2 batches of up to 2 designs" in out
    assert "s0 epoch 1: val" in out  # per-epoch progress from the workers
    assert proxy_gpu.main(_args(tmp_path, "--epochs", "1")) == 0
    assert "0 trials to run" in capfd.readouterr().out


def test_a_design_s_seeds_train_together_with_the_chosen_layout(tmp_path, capfd):
    argv = _args(tmp_path, "--epochs", "1", "--conv1x1", "grouped", "--no-cuda-graph")
    argv[argv.index("--seeds") + 1] = "0,1"
    assert proxy_gpu.main(argv) == 0
    records = _records(tmp_path)
    assert sorted((r["design_id"], r["seed"]) for r in records) == sorted(
        (d, s) for d in ("plain8-c16-k1.4.4", "plain8-c16-k1.g1", "plain8-c16-k2.g2")
        for s in (0, 1))
    assert {r["fidelity_config"]["engine"]["conv1x1"] for r in records} == {"grouped"}
    assert "3 batches of up to 1 designs" in capfd.readouterr().out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert proxy_gpu.main(_args(tmp_path, "--epochs", "0")) == 2
    assert capsys.readouterr().err.strip() == "proxy_gpu.py: error: --epochs 0 must be >= 1"
    assert proxy_gpu.main(_args(tmp_path)[:1] + ["nope"] + _args(tmp_path)[2:]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert proxy_gpu.main(_args(tmp_path, "--conv1x1", "gemm")) == 2
    assert capsys.readouterr().err.strip() == (
        "proxy_gpu.py: error: --conv1x1 'gemm'; accepted: grouped, dense, bmm")
    assert proxy_gpu.main(_args(tmp_path, "--designs-per-batch", "0")) == 2
    assert "--designs-per-batch 0 must be >= 1" in capsys.readouterr().err
    assert proxy_gpu.main(_args(tmp_path, "--seeds", "0")) == 2  # a count, as for run.py
    assert capsys.readouterr().err.strip() == (
        "proxy_gpu.py: error: --seeds '0': expected a count N >= 1 (seeds 0..N-1) or "
        "distinct seeds >= 0 like 0,1,2 (seed 0 alone: --seeds 0,)")
    assert not (tmp_path / "run").exists()  # nothing half-written
