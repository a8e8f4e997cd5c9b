"""Measure the `cpu` fidelity: seconds per trial and CIFAR-10 test accuracy, 3 seeds each.

    python -m benchmarks.fidelity_cpu    # -> benchmarks/results/fidelity_cpu.json
    python -m benchmarks.fidelity_cpu --seeds 0 --designs plain8-c64-k1.64 --out /tmp/x.json

Runs one trial at a time (the whole machine for each), plain8 Xception C=64 and plain8 IGCV2
C=144 (the paper's Table 2 pair at ~4.7k weights per block). CIFAR-10 comes from --data-dir;
if it holds no cifar-10-batches-py/, it is prepared there from ../shared/data (this machine's
JPEG copy). The load average is recorded before and after each trial: other work on the
machine slows trials, and the JSON says how busy it was.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import evaluators as ev
from evaluators.provenance import git_commit
from evaluators.record import write_json_atomic

REPO = Path(__file__).resolve().parents[1]

DESIGNS = ("plain8-c64-k1.64", "plain8-c144-k1.12.12")


def prepare_cifar10(data_dir: Path) -> None:
    """Write data_dir/cifar-10-batches-py from the shared JPEG copy unless it is there."""
    if (data_dir / "cifar-10-batches-py" / "test_batch").is_file():
        return
    for shared in (REPO.parent / "shared", Path("/work/shared")):
        script = shared / "data" / "prepare_cifar10.py"
        if script.is_file():
            subprocess.run([sys.executable, str(script), str(data_dir)], check=True)
            return
    sys.exit(f"no CIFAR-10 in {data_dir} and no shared/data/prepare_cifar10.py to make it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fidelity", default="cpu", choices=list(ev.FIDELITIES))
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fidelity_cpu.json")
    args = parser.parse_args(argv)
    prepare_cifar10(args.data_dir)

    runs = []
    for design in args.designs:
        for seed in args.seeds:
            load_before, cpu_before = os.getloadavg()[0], time.process_time()
            r = ev.evaluate(design, fidelity=args.fidelity, dataset="cifar10", seed=seed,
                            data_dir=args.data_dir, device="cpu")
            runs.append({
                "design": design, "seed": seed, "status": r.status, "reason": r.reason,
                "test_acc": r.test_acc, "val_acc": r.val_acc, "wall_s": round(r.wall_s, 1),
                # CPU seconds of this process: the wall time of a 1-thread trial on an idle
                # machine; wall_s exceeds it when other work shares the cores.
                "cpu_s": round(time.process_time() - cpu_before, 1),
                "epoch_seconds": [round(row["seconds"], 1) for row in r.curve],
                "curve": list(r.curve), "latency_b1_ms": r.latency_b1_ms,
                "latency_b64_ms": r.latency_b64_ms, "params": r.design["params"],
                "load_avg_1min_before": round(load_before, 2),
                "load_avg_1min_after": round(os.getloadavg()[0], 2),
            })
            print(f"{design} seed {seed}: {r.status} test_acc={r.test_acc} "
                  f"wall={r.wall_s:.0f}s cpu={runs[-1]['cpu_s']:.0f}s load={load_before:.1f}",
                  flush=True)

    summary = {}
    for design in args.designs:
        ok = [run for run in runs if run["design"] == design and run["status"] == "ok"]
        accs, walls = [run["test_acc"] for run in ok], [run["wall_s"] for run in ok]
        cpus = [run["cpu_s"] for run in ok]
        summary[design] = {
            "runs_ok": len(ok),
            "test_acc_mean": statistics.mean(accs) if accs else None,
            "test_acc_sd": statistics.stdev(accs) if len(accs) > 1 else None,
            "wall_s_mean": statistics.mean(walls) if walls else None,
            "wall_s_max": max(walls) if walls else None,
            "cpu_s_mean": statistics.mean(cpus) if cpus else None,
            "cpu_s_max": max(cpus) if cpus else None,
        }
    record = {
        "what": "cpu fidelity: one trial per (design, seed) on CIFAR-10, sequential",
        "command": "python -m benchmarks.fidelity_cpu " + " ".join(argv or sys.argv[1:]),
        "fidelity": ev.get_fidelity(args.fidelity).to_dict(),
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__,
                    "commit": git_commit()},
        "summary": summary,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, record, sort_keys=False)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
