"""The grouped path's C++ kernels (``search_space.kernels``) against the paths before them,
at the CPU rungs' own settings: issue 24's IGCV2 design, training steps, ratios in one run.

    taskset -c 1 nice python -m benchmarks.kernels   # ~5 min -> results/kernels_cpu.json
    python -m benchmarks.kernels --quick --out /tmp/k.json   # seconds: a check that it runs
    python -m benchmarks.kernels --markdown benchmarks/results/kernels_cpu.json \
        --update-doc docs/performance.md     # the <!-- kernels --> block from the JSON

For ``plain8-c144-k1.12.12`` at 16x16 and 32x32, one thread, batch 64, SGD steps as
``benchmarks.roofline`` takes them (``make_step``), six implementations interleaved,
median of ``--reps`` CPU-time samples (``time.process_time``): ``reference``,
``fast_old`` (FastBlock's rule before the grouped path), ``grouped_pure`` (every block on
the grouped path, BatchNorms unfolded, its pure-PyTorch kernels: ``kernels.use(False)``),
``grouped`` (the same with the C++ kernels), ``folded`` (every block on the grouped path
with its BatchNorms folded into the 1x1 convolutions, ``search_space.bn_fold``) and
``fast`` (FastBlock's ``auto`` now). Then a profiled step of all but ``fast`` split by
operation kind (``benchmarks.roofline_ops``; the folded path's Gram matrices count as
``group 1x1``, its mean sums and centring copy as ``BatchNorm``), with each kind's share of
the one-thread roofline (the machine's SGEMM rate and copy bandwidth, measured here). The
1-minute load average before and after, the CPU affinity and the niceness are recorded: the
development machine is shared, so compare ratios within one run, not across runs. Every
implementation runs under the allocator policy trials run under (``search_space.allocator``:
the kept heap; ``benchmarks.allocator`` measures it against glibc's defaults).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import search_space as ss
from benchmarks import roofline
from benchmarks.roofline_ops import KINDS, op_work, profile_step
from evaluators.provenance import git_commit
from evaluators.record import write_json_atomic
from search_space import allocator, kernels
from search_space.fast import FastBlock
from search_space.work import fold_pays

OUT = roofline.ROOT / "benchmarks" / "results" / "kernels_cpu.json"
DESIGN = roofline.TARGET
IMPLS = ("reference", "fast_old", "grouped_pure", "grouped", "folded", "fast")
PROFILED = ("reference", "fast_old", "grouped_pure", "grouped", "folded")
NAMES = {"reference": "reference", "fast_old": "fast before", "grouped_pure": "grouped pure",
         "grouped": "grouped C++", "folded": "folded", "fast": "fast now"}


def build(design: str, impl: str, side: int) -> torch.nn.Module:
    """The net of ``impl``: the grouped ones with their BatchNorms folded (``folded``) or
    not (``grouped``, ``grouped_pure``); the others as ``roofline.build`` makes them."""
    grouped = impl in ("grouped_pure", "grouped", "folded")
    net = roofline.build(design, "grouped" if grouped else impl, side)
    if grouped:
        for m in net.modules():
            if isinstance(m, FastBlock):
                m.fold = impl == "folded"
    return net


def paths(design: str, impl: str, side: int) -> list[str]:
    """The training path each block of ``impl`` takes at ``side`` ("reference": none),
    "+fold" where the grouped path folds a run's BatchNorms."""
    out = []
    for m in build(design, impl, side).train().modules():
        if isinstance(m, FastBlock):
            path = m.path if m.path != "auto" and m.path else m.chosen_path(
                roofline.BATCH, side * m.block_plan.convs[0].hw_in // 32)
            fold = path == "grouped" and any(
                fold_pays(m.block_plan, r) if m.fold is None else m.fold and bool(r.steps)
                for r in m.runs)
            out.append(path + ("+fold" if fold else ""))
    return out


def make(design: str, impl: str, side: int):
    """(step, optimizer) of ``impl``; grouped_pure runs its steps with the kernels off."""
    step, opt = roofline.make_step(build(design, impl, side), side)
    if impl != "grouped_pure":
        return step, opt

    def pure() -> None:
        with kernels.use(False):
            step()

    return pure, opt


def time_steps(design: str, side: int, reps: int) -> dict[str, Any]:
    """Interleaved training steps of ``IMPLS`` (CPU seconds, medians) and their ratios."""
    samples, med = roofline.interleaved({impl: make(design, impl, side)[0] for impl in IMPLS},
                                        reps)
    return {"design": design, "side": side, "batch": roofline.BATCH, "step_s": med,
            "samples_s": samples, "img_per_s": {i: roofline.BATCH / s for i, s in med.items()},
            "over_reference": {i: med["reference"] / s for i, s in med.items()},
            "over_fast_old": {i: med["fast_old"] / s for i, s in med.items()},
            "spread": max((max(v) - min(v)) / statistics.median(v) for v in samples.values()),
            "paths": {impl: paths(design, impl, side) for impl in IMPLS}}


def profiled(design: str, side: int, limits: dict[str, float], reps: int) -> dict[str, Any]:
    """Per operation kind and implementation: ms a step and share of the roofline."""
    work = op_work(ss.net_plan(ss.parse(design), 10), side, roofline.BATCH)
    out: dict[str, Any] = {"design": design, "side": side, "work": work, "impls": {}}
    for impl in PROFILED:
        seconds = profile_step(*make(design, impl, side), reps)
        kinds = {}
        for kind in KINDS:
            s, w = seconds.get(kind, 0.0), work.get(kind, {"flops": 0.0, "bytes": 0.0})
            bound = max(w["flops"] / (limits["sgemm_gflops"] * 1e9),
                        w["bytes"] / (limits["copy_gbs"] * 1e9))
            kinds[kind] = {"ms": s * 1e3, "of_roofline": bound / s if s and bound else None}
        out["impls"][impl] = kinds
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return roofline.benchmark_args("kernels", __doc__, OUT, 7, argv,
                                   "a tiny design at 8x8, 2 repetitions")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        text = markdown(json.loads(Path(args.markdown).read_text()))
        if args.update_doc:
            from analysis.doc_blocks import update_doc

            update_doc(args.update_doc, {"kernels": text})
        else:
            print(text)
        return 0
    t_start, load_before = time.monotonic(), os.getloadavg()[0]
    if kernels.extension() is None:
        print("the C++ kernels did not build: nothing to compare", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    heap = allocator.for_trial()  # the allocator policy trials run under (benchmarks.allocator)
    limits = roofline.machine_limits(1, args.quick)
    cases = [("plain8-c16-k1.4.4", 8)] if args.quick else [(DESIGN, 16), (DESIGN, 32)]
    reps = 2 if args.quick else args.reps
    steps = []
    for design, side in cases:
        steps.append(time_steps(design, side, reps))
        print(f"{design} {side}px " + " ".join(
            f"{k} {v:.1f}" for k, v in steps[-1]["img_per_s"].items()) + " img/s", flush=True)
    prof = [profiled(d, s, limits, max(2, reps // 2)) for d, s in cases]
    result = {
        "command": "python -m benchmarks.kernels " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "torch": torch.__version__, "threads": 1,
        "batch": roofline.BATCH, "quick": args.quick, "cflags": kernels.CFLAGS,
        "limits": limits, "steps": steps, "profiles": prof,
        "load_average_1m": [load_before, os.getloadavg()[0]],
        "cpu_affinity": sorted(os.sched_getaffinity(0)), "cpus": os.cpu_count(),
        "niceness": os.nice(0), "allocator": heap, "wall_s": time.monotonic() - t_start,
    }
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}", flush=True)
    return 0


def markdown(result: dict[str, Any]) -> str:
    """The docs/performance.md block of a run (``<!-- kernels -->``)."""
    lim = result["limits"]
    lines = [f"Run {result['created']}, commit {result['commit']}, torch {result['torch']}, "
             f"one thread, batch {result['batch']}, flags {' '.join(result['cflags'])}; "
             f"CPUs {result['cpu_affinity']} of {result['cpus']}, nice "
             f"{result['niceness']}, allocator {result.get('allocator', 'untouched')}; "
             "1-minute load average "
             f"{result['load_average_1m'][0]:.1f} before, {result['load_average_1m'][1]:.1f}"
             f" after; {result['wall_s']:.0f} s. Limits: SGEMM {lim['sgemm_gflops']:.0f} "
             f"GFLOP/s, copy {lim['copy_gbs']:.0f} GB/s.", "",
             "| design | px | " + " | ".join(f"{NAMES[i]} img/s" for i in IMPLS)
             + " | C++ / reference | C++ / fast before | C++ / pure | folded / reference | "
             "folded / fast before | folded / C++ | spread |",
             "| --- | --- | " + " | ".join("---:" for _ in IMPLS) + " | ---:" * 7 + " |"]
    for r in result["steps"]:
        rate, o, f = r["img_per_s"], r["over_reference"], r["over_fast_old"]
        lines.append(f"| `{r['design']}` | {r['side']} | "
                     + " | ".join(f"{rate[i]:.0f}" for i in IMPLS)
                     + f" | {o['grouped']:.2f} | {f['grouped']:.2f} | "
                     f"{o['grouped'] / o['grouped_pure']:.2f} | {o['folded']:.2f} | "
                     f"{f['folded']:.2f} | {o['folded'] / o['grouped']:.2f} | "
                     f"{r['spread']:.0%} |")
    lines.append("")
    for r in result["steps"]:
        o, f = r["over_reference"], r["over_fast_old"]
        best = max(("grouped", "folded", "fast"), key=lambda i: min(o[i], f[i]))
        lines.append(f"- {r['side']}x{r['side']}: folded {o['folded']:.2f}x the reference, "
                     f"{f['folded']:.2f}x the fast path before, "
                     f"{o['folded'] / o['grouped']:.2f}x grouped C++ (which is "
                     f"{o['grouped']:.2f}x the reference, {f['grouped']:.2f}x the fast path "
                     f"before, {o['grouped'] / o['grouped_pure']:.2f}x its pure kernels); "
                     f"issue 24's 3x over both: "
                     f"{'met' if min(o[best], f[best]) >= 3 else 'not met'} "
                     f"(best: {NAMES[best]}, {min(o[best], f[best]):.2f}x). Fast now's blocks: "
                     f"{', '.join(sorted(set(r['paths']['fast'])))}"
                     + (f" (the fast path before's: their ratio, {f['fast']:.2f}, is this "
                        "run's noise)." if r["paths"]["fast"] == r["paths"]["fast_old"]
                        else "."))
    for p in result["profiles"]:
        lines += ["", f"`{p['design']}` at {p['side']}x{p['side']}: ms a step per operation "
                  "kind (share of the one-thread roofline)", "",
                  "| kind | " + " | ".join(NAMES[i] for i in PROFILED) + " |",
                  "| --- | " + " | ".join("---:" for _ in PROFILED) + " |"]
        for kind in KINDS:
            cells = []
            for impl in PROFILED:
                k = p["impls"][impl][kind]
                roof = k["of_roofline"]
                cells.append(f"{k['ms']:.1f}" + (f" ({roof:.0%})" if roof is not None else ""))
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
