"""Fit ``search_space.work.CPU_COSTS["train"]`` by timing blocks at the rungs' own settings.

    python -m benchmarks.path_costs            # ~4 min -> benchmarks/results/path_costs_cpu.json

FastBlock's ``auto`` picks a path per block from ``CPU_COSTS``; this measures what each
path costs where trials run: one thread, batch 64, 16x16 images (the ``cpu`` and ``cpu2``
rungs), training steps (forward and backward) of one block of each design, the three
paths interleaved, the median of ``--reps`` CPU-time samples (``time.process_time``). The
fused path is skipped where the current rule predicts over ``MAX_FUSED_S`` a step. Each
path's (per element, per multiply-add) coefficients are a non-negative least-squares fit
of its block times on ``search_space.work.block_work``'s counts, each equation divided
by its own time (relative errors). It prints the fit and, per block, the path each
coefficient set picks against the path measured fastest.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import nnls

import search_space as ss
from evaluators.record import write_json_atomic
from search_space.fast import FastBlock
from search_space.work import COMPOSE_MACS, block_work, path_seconds

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "path_costs_cpu.json"
DESIGNS = (
    "plain8-c72-k1.g1", "plain8-c144-k1.12.12", "plain8-c156-k1.6.6.6",
    "plain8-c160-k1.4.4.4.4", "plain8-c138-k1.3.3.3.3.3.3", "plain8-c64-k1.64",
    "plain8-c128-k1.128", "plain8-c256-k1.16.16", "plain8-c361-k1.19.19", "plain8-c96-k1.g2",
    "plain8-c310-k1.2", "plain8-c64-k1.g8.g8", "plain8-c96-k2.g2", "plain8-c24-kg2.1.g2-s2-t6-relu",
    "plain8-c200-k1.g2.g2.g2.g2.g2", "plain8-c432-k1.g4.g4", "plain8-c620-k1.g4",
    "plain8-c1024-k1.4.4.4.4.4",
)
PATHS = ("fused", "reference", "grouped")
BATCH, SIDE = 64, 16
MAX_FUSED_S = 3.0


def features(block: Any, path: str, scale: float) -> tuple[float, float]:
    """(elements, multiply-adds) per image as ``path_seconds`` weighs them in training."""
    w = block_work(block, path)
    return w.elements * scale, (w.macs + w.gram) * scale + COMPOSE_MACS * w.compose / BATCH


def time_block(block: Any, reps: int) -> dict[str, float]:
    """Median CPU seconds of a training step of ``block`` on each path, interleaved."""
    scale = (SIDE / block.convs[0].hw_in) ** 2
    paths = [p for p in PATHS if p != "fused" or BATCH * path_seconds(
        block, "fused", training=True, batch=BATCH, scale=scale) < MAX_FUSED_S]
    torch.manual_seed(0)
    mods = {p: FastBlock(block, path=p).train() for p in paths}
    x = torch.randn(BATCH, block.cin, SIDE, SIDE)
    gy = torch.randn(BATCH, block.cout, block.convs[-1].hw_out * SIDE // 32 or 1,
                     block.convs[-1].hw_out * SIDE // 32 or 1)

    def step(p: str) -> float:
        t0 = time.process_time()
        mods[p](x.detach().requires_grad_()).backward(gy)
        return time.process_time() - t0

    samples: dict[str, list[float]] = {p: [] for p in paths}
    for p in paths:
        step(p)
    for r in range(reps):
        for p in (paths if r % 2 == 0 else paths[::-1]):
            samples[p].append(step(p))
    return {p: statistics.median(v) for p, v in samples.items()}


def fit(rows: list[dict[str, Any]], path: str) -> tuple[float, float]:
    use = [r for r in rows if path in r["seconds"]]
    X = np.array([features(r["plan"], path, r["scale"]) for r in use])
    y = np.array([r["seconds"][path] / BATCH for r in use])
    coef, _ = nnls(X / y[:, None], np.ones_like(y))
    return float(coef[0]), float(coef[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.path_costs",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    if args.reps < 1:
        p.exit(2, f"--reps {args.reps}: accepted: an integer >= 1\n")
    torch.set_num_threads(1)
    load0, t0 = os.getloadavg()[0], time.monotonic()
    rows = []
    for design in DESIGNS:
        block = ss.net_plan(ss.parse(design), 10).blocks[0]
        seconds = time_block(block, args.reps)
        rows.append({"design": design, "plan": block, "scale": (SIDE / 32) ** 2,
                     "seconds": seconds})
        print(design, {k: round(v * 1e3, 1) for k, v in seconds.items()}, flush=True)
    costs = {path: fit(rows, path) for path in PATHS}
    picks = []
    for r in rows:
        pred = {q: float(np.dot(costs[q], features(r["plan"], q, r["scale"])))
                for q in r["seconds"]}
        picks.append({"design": r["design"], "seconds": r["seconds"],
                      "picked": min(pred, key=pred.get),
                      "fastest": min(r["seconds"], key=r["seconds"].get)})
    result = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "batch": BATCH, "side": SIDE, "threads": 1, "costs": costs,
        "rows": picks, "load_average_1m": [load0, os.getloadavg()[0]],
        "wall_s": time.monotonic() - t0}
    write_json_atomic(args.out, result)
    print("costs", costs)
    for r in picks:
        print(f"{r['design']:34s} picked {r['picked']:9s} fastest {r['fastest']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
