"""Time the zero-cost proxies per design: wall and CPU seconds, per proxy, and peak memory.

    python -m benchmarks.zero_cost_time --data-dir /work/data \\
        --designs plain8-c64-k1.64 plain8-c144-k1.12.12 --out /tmp/zc_time.json

One seed per design, one at a time, in one process; the JSON is rewritten after each
design, so a run stopped by a time or memory limit keeps what it measured. The first
scoring pays one-off start-ups (a tiny design is scored first, timed as ``warmup_s``).
Wall seconds depend on how busy the machine is: the load average is recorded before and
after each design, and CPU seconds (this process, all threads) beside wall seconds.
Seconds per million multiply-adds (``s_per_mflop``) are there to extrapolate a space's
total; ``maxrss_mb`` is the process's peak so far (it only grows).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path

import evaluators as ev
import search_space as ss
from evaluators import zero_cost as zc
from evaluators.provenance import git_commit
from evaluators.record import write_json_atomic

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--designs", nargs="+", required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--latency-reps", type=int, default=3)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    config = zc.ZeroCostConfig(dataset=args.dataset, batch_size=args.batch_size,
                               resolution=args.resolution, latency_reps=args.latency_reps,
                               latency_warmup=1 if args.latency_reps else 0)
    data = ev.load_dataset(args.dataset, args.data_dir)
    t0 = time.perf_counter()
    batch = zc.proxy_batch(data, config)
    batch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    zc.score_design("plain8-c16-k1.4.4", 0, batch,
                    dataclasses.replace(config, latency_reps=0), num_classes=data.num_classes)
    warmup_s = time.perf_counter() - t0
    rows: list[dict] = []
    head = {"config": config.to_dict(), "batch_s": batch_s, "warmup_s": warmup_s,
            "cpus": os.cpu_count(), "commit": git_commit(), "designs": rows}
    for design_id in args.designs:
        d = ss.parse(design_id)
        info = ss.describe(d, num_classes=data.num_classes)
        load_before = os.getloadavg()[0]
        c0, w0 = time.process_time(), time.perf_counter()
        out = zc.score_design(d, 0, batch, config, num_classes=data.num_classes)
        cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - w0
        rows.append({
            "design": d.id, "flops": info["flops"], "params": info["params"],
            "wall_s": wall_s, "cpu_s": cpu_s, "s_per_mflop": wall_s / (info["flops"] / 1e6),
            "cpu_s_per_mflop": cpu_s / (info["flops"] / 1e6), "seconds": out["seconds"],
            "errors": out["errors"], "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        })
        print(json.dumps(rows[-1]), file=sys.stderr)
        # After each design: a run killed later (time, memory) keeps what it measured.
        write_json_atomic(args.out, head, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
