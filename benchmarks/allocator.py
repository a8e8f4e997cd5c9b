"""The trial's allocator policy (``search_space.allocator``) against glibc's defaults: training
steps at the CPU rungs' settings, ratios in one run.

    taskset -c 1 nice python -m benchmarks.allocator      # ~5 min -> results/allocator_cpu.json
    python -m benchmarks.allocator --quick --out /tmp/a.json   # seconds: a check that it runs
    python -m benchmarks.allocator --markdown benchmarks/results/allocator_cpu.json \\
        --update-doc docs/performance.md     # the <!-- allocator --> block from the JSON

The policy is process-wide and one-way (memory the kept heap has grown to stays in it), so
each measurement is a fresh worker process: ``untouched`` (glibc's defaults, as a process
starts) or ``heap`` (``allocator.keep_heap()``), alternating over ``--rounds`` rounds so that
a change of the machine's load falls on both. A worker builds ``benchmarks.roofline``'s
net of ``plain8-c144-k1.12.12`` (issue 24's IGCV2 design) and of Xception C=64 on the
reference blocks, on FastBlock's rule before the grouped path (``fast_old``) and on the
default blocks now (FastBlock's ``auto``: what trials run), one
thread, batch 64, at 16x16 and 32x32, takes one step untimed, then ``--reps`` SGD steps
(CPU seconds, ``time.process_time``: the kernel's page-fault work is system time and
counts), and reports their median and its minor page faults a step.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import roofline
from evaluators.provenance import git_commit

OUT = roofline.ROOT / "benchmarks" / "results" / "allocator_cpu.json"
POLICIES = ("untouched", "heap")
IMPLS = ("reference", "fast_old", "fast")
CASES = ((roofline.TARGET, 16), (roofline.TARGET, 32), ("plain8-c64-k1.64", 16),
         ("plain8-c64-k1.64", 32))


def worker(policy: str, design: str, side: int, reps: int) -> dict[str, Any]:
    """In this (fresh) process: the policy, then each implementation's step times."""
    import torch

    from search_space import allocator

    torch.set_num_threads(1)
    if policy == "heap" and not allocator.keep_heap():
        raise SystemExit("the kept heap needs glibc")
    out = {}
    for impl in IMPLS:
        step = roofline.make_step(roofline.build(design, impl, side), side)[0]
        step()
        times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(reps):
            t0 = time.process_time()
            step()
            times.append(time.process_time() - t0)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / reps
        out[impl] = {"step_s": statistics.median(times), "samples_s": times,
                     "faults_per_step": faults}
    return out


def run_worker(policy: str, design: str, side: int, reps: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.allocator", "--worker", policy, design,
           str(side), "--reps", str(reps)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True,
                          cwd=roofline.ROOT,  # the path rule reads the trials' policy
                          env={**os.environ, "IGCBENCH_HEAP": "1" if policy == "heap" else "0"})
    return json.loads(done.stdout.splitlines()[-1])


def measure(cases, reps: int, rounds: int) -> list[dict[str, Any]]:
    """Per case: each policy's per-round medians, their median, and the ratios."""
    rows = []
    for design, side in cases:
        got: dict[str, list[dict[str, Any]]] = {p: [] for p in POLICIES}
        for r in range(rounds):
            for policy in (POLICIES if r % 2 == 0 else POLICIES[::-1]):
                got[policy].append(run_worker(policy, design, side, reps))
        row: dict[str, Any] = {"design": design, "side": side, "rounds": got}
        for impl in IMPLS:
            s = {p: statistics.median(g[impl]["step_s"] for g in got[p]) for p in POLICIES}
            f = {p: statistics.median(g[impl]["faults_per_step"] for g in got[p])
                 for p in POLICIES}
            row[impl] = {"step_s": s, "faults_per_step": f,
                         "heap_speedup": s["untouched"] / s["heap"]}
        rows.append(row)
        print(f"{design} {side}px " + " ".join(
            f"{i}: {row[i]['step_s']['untouched'] * 1e3:.0f} -> "
            f"{row[i]['step_s']['heap'] * 1e3:.0f} ms" for i in IMPLS), flush=True)
    return rows


def markdown(result: dict[str, Any]) -> str:
    load = result["load_average_1m"]
    lines = [
        f"Run {result['created']}, commit {result['commit']}, one thread, batch 64, "
        f"{result['rounds']} rounds of fresh processes x {result['reps']} steps; 1-minute load "
        f"average {load[0]:.1f} before, {load[1]:.1f} after; {result['wall_s']:.0f} s.",
        "",
        "| design | px | blocks | untouched ms a step | heap kept ms a step | speed-up | "
        "page faults a step: untouched / kept |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in result["rows"]:
        for impl in IMPLS:
            r = row[impl]
            lines.append(
                f"| `{row['design']}` | {row['side']} | {impl} | "
                f"{r['step_s']['untouched'] * 1e3:.0f} | {r['step_s']['heap'] * 1e3:.0f} | "
                f"{r['heap_speedup']:.2f} | {r['faults_per_step']['untouched']:.0f} / "
                f"{r['faults_per_step']['heap']:.0f} |")
    for row in result["rows"]:
        old, now = row["fast_old"]["step_s"]["untouched"], row["fast"]["step_s"]["heap"]
        lines.append(f"\n`{row['design']}` at {row['side']}x{row['side']}: a trial's step now "
                     f"(default blocks, heap kept) is {old / now:.2f}x the step before this "
                     f"round's kernels and allocator (fast before, untouched), and "
                     f"{row['reference']['step_s']['untouched'] / now:.2f}x the reference's.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = roofline.parser("allocator", __doc__, OUT, 5, "a tiny design at 8x8, 1 round")
    p.add_argument("--rounds", type=int, default=3, help="worker pairs per case")
    p.add_argument("--worker", nargs=3, metavar=("POLICY", "DESIGN", "SIDE"),
                   help=argparse.SUPPRESS)
    args = roofline.checked(p, argv)
    if args.rounds < 1:
        p.exit(2, f"--rounds {args.rounds}: accepted: an integer >= 1\n")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        policy, design, side = args.worker
        print(json.dumps(worker(policy, design, int(side), args.reps)))
        return 0
    if args.markdown:
        text = markdown(json.loads(Path(args.markdown).read_text()))
        if args.update_doc:
            from analysis.doc_blocks import update_doc

            update_doc(args.update_doc, {"allocator": text})
        else:
            print(text)
        return 0
    t_start, load_before = time.monotonic(), os.getloadavg()[0]
    cases = (("plain8-c16-k1.4.4", 8),) if args.quick else CASES
    rounds, reps = (1, 2) if args.quick else (args.rounds, args.reps)
    result = {
        "command": "python -m benchmarks.allocator " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "threads": 1, "batch": roofline.BATCH, "quick": args.quick,
        "rounds": rounds, "reps": reps, "rows": measure(cases, reps, rounds),
    }
    result["load_average_1m"] = [load_before, os.getloadavg()[0]]
    result["wall_s"] = time.monotonic() - t_start
    roofline.publish(args, result, "allocator", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
