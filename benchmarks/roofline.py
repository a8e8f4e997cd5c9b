"""Roofline of a training step at the CPU rungs' own settings: where the time goes, and how
far each operation kind runs from this machine's limits.

    python -m benchmarks.roofline                  # ~5 min -> benchmarks/results/roofline_cpu.json
    python -m benchmarks.roofline --quick --out /tmp/r.json   # seconds: one tiny design
    python -m benchmarks.roofline --markdown benchmarks/results/roofline_cpu.json

The rungs (``cpu``, ``cpu2``) train one trial per thread at 16x16, batch 64, NCHW float32,
SGD with momentum and weight decay. This measures, in one process:

1. the machine's limits at 1 and 2 threads: SGEMM (1024^3, GFLOP/s) and copy bandwidth
   (a 64 MiB tensor copied, read + write bytes per second);
2. whole training steps (forward, loss, backward, SGD) of representative designs of the
   fig3, table2 and table 1.1 presets (and an IGCV1 and an IGCV3-style block, which those
   presets lack) under four block implementations, interleaved, median of ``--reps``:
   ``reference`` (``nn.Conv2d(groups)`` + shuffle), ``fast_old`` (FastBlock choosing
   between its fused and reference paths, as before the grouped path, and the plain stem,
   as before ``fast.FastStem``), ``grouped`` (every
   block on ``search_space.grouped``) and ``fast`` (the default now: FastBlock's ``auto``
   over all three);
3. for a few designs, a profiled step per implementation split by operation kind (3x3
   convolution, group 1x1, BatchNorm, ReLU, permutation, optimizer, other), with the
   useful work of each kind (``op_work``) and its achieved FLOP/s, bytes/s and distance
   from the roofline (the time the kind's useful flops or bytes would take at the machine's
   one-thread limits, over its measured time).

Times are CPU seconds of this process (``time.process_time``; one thread), which a busy
machine inflates less than wall time; the 1-minute load average before and after is kept.
The profiled split is wall time (torch.profiler), scaled to the step's CPU time.
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
from benchmarks.roofline_ops import KINDS, op_work, profile_step
from evaluators.provenance import git_commit
from evaluators.record import write_json_atomic
from search_space import allocator
from search_space.fast import FastBlock
from search_space.work import path_seconds

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "roofline_cpu.json"
#: design -> what it stands for. fig3 and table2 whole; table 1.1 (table40k) by a few
#: designs of each kind; IGCV1 from table 5; an IGCV3 block (expansion 6, group 1x1s with 2
#: branches) in the plain8 skeleton at table 1.1's size, since no preset holds one.
DESIGNS = {
    "plain8-c72-k1.g1": "fig3 L=2 (Xception)",
    "plain8-c144-k1.12.12": "fig3/table2 IGCV2 L=3",
    "plain8-c156-k1.6.6.6": "fig3 IGCV2 L=4",
    "plain8-c160-k1.4.4.4.4": "fig3 IGCV2 L=5",
    "plain8-c156-k1.3.3.3.3.3": "fig3 IGCV2 L=6",
    "plain8-c138-k1.3.3.3.3.3.3": "fig3 IGCV2 L=7",
    "plain8-c64-k1.64": "table2 Xception",
    "plain8-c96-k1.96": "table2 Xception",
    "plain8-c256-k1.16.16": "table2 IGCV2",
    "plain8-c128-k1.128": "table2 Xception",
    "plain8-c361-k1.19.19": "table2 IGCV2",
    "plain8-c96-k1.g2": "table1.1 L=2, 2 branches",
    "plain8-c310-k1.2": "table1.1 L=2, K=2",
    "plain8-c64-k1.g8.g8": "table1.1 IGCV2 L=3",
    "plain8-c144-k1.4.3.3.2.2": "table1.1 IGCV2 L=6",
    "plain8-c96-k2.g2": "IGCV1 (table5)",
    "plain8-c24-kg2.1.g2-s2-t6-relu": "IGCV3 block",
}
TARGET = "plain8-c144-k1.12.12"  # issue 24's IGCV2 design
XCEPTION = "plain8-c64-k1.64"
PROFILED = (TARGET, XCEPTION, "plain8-c156-k1.3.3.3.3.3", "plain8-c24-kg2.1.g2-s2-t6-relu")
IMPLS = ("reference", "fast_old", "grouped", "fast")
BATCH = 64
#: search_space.work.CPU_COSTS before the grouped path (commit 6ea8947): the old rule.
OLD_COSTS = {"train": {"fused": (0.0, 1.40e-10), "reference": (4.23e-9, 2.74e-10)}}


def machine_limits(threads: int, quick: bool) -> dict[str, float]:
    """SGEMM GFLOP/s and copy GB/s (read + write) at ``threads``, best of a few (wall)."""
    torch.set_num_threads(threads)
    n = 256 if quick else 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    src = torch.randn((1 if quick else 16) * 2 ** 20)
    dst = torch.empty_like(src)

    def best(fn, reps: int) -> float:
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    gemm = best(lambda: torch.mm(a, b), 5 if quick else 20)
    copy = best(lambda: dst.copy_(src), 5 if quick else 20)
    torch.set_num_threads(1)
    return {"threads": threads, "sgemm_gflops": 2 * n ** 3 / gemm / 1e9,
            "copy_gbs": 2 * src.numel() * 4 / copy / 1e9, "gemm_n": n,
            "copy_mib": src.numel() * 4 / 2 ** 20}


def build(design: str, impl: str, side: int) -> torch.nn.Module:
    """The net of ``design`` with its blocks on ``impl`` (see the module docstring)."""
    torch.manual_seed(0)
    if impl == "reference":
        return ss.build(ss.parse(design), num_classes=10, impl="reference")
    net = ss.build(ss.parse(design), num_classes=10, impl="grouped" if impl == "grouped"
                   else "fast")
    if impl == "fast_old":
        for m in net.modules():
            if isinstance(m, FastBlock):
                m.path = old_rule(m.block_plan, side)
        net.stem = torch.nn.Sequential(*net.stem)  # the stem before FastStem, same modules
    return net


def old_rule(block: Any, side: int) -> str:
    """The training path FastBlock's ``auto`` took before the grouped path (its costs)."""
    kw = {"training": True, "batch": BATCH, "scale": (side / 32) ** 2, "costs": OLD_COSTS}
    fused, ref = (path_seconds(block, p, **kw) for p in ("fused", "reference"))
    return "fused" if fused <= ref else "reference"


def make_step(net: torch.nn.Module, side: int):
    """A training step as ``evaluators.train`` takes it (SGD, momentum 0.9, wd 5e-4)."""
    from evaluators.fidelity import Fidelity
    from evaluators.train import make_optimizer

    opt = make_optimizer(net, Fidelity(name="roofline"))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 3, side, side, generator=g)
    y = torch.randint(0, 10, (BATCH,), generator=g)
    net.train()

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, opt


def interleaved(steps: dict[str, Any], reps: int
                ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each step once untimed (allocator, caches, lazy initialisation such as the kernels'
    build), then ``reps`` rounds in alternating order: CPU seconds per step, and medians."""
    names = list(steps)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for step in steps.values():
        step()
    for r in range(reps):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.process_time()
            steps[name]()
            samples[name].append(time.process_time() - t0)
    return samples, {name: statistics.median(v) for name, v in samples.items()}


def time_steps(design: str, side: int, reps: int) -> dict[str, Any]:
    """Interleaved training steps of the four implementations (CPU seconds, medians)."""
    samples, med = interleaved({impl: make_step(build(design, impl, side), side)[0]
                                for impl in IMPLS}, reps)
    plan = ss.net_plan(ss.parse(design), 10)
    macs = plan.macs * (side / 32) ** 2 * BATCH  # the net's own forward multiply-adds a step
    return {
        "design": design, "stands_for": DESIGNS.get(design, ""), "side": side,
        "batch": BATCH, "step_s": med, "samples_s": samples,
        "img_per_s": {impl: BATCH / s for impl, s in med.items()},
        # 2 flops a multiply-add, the backward twice the forward (issue 24's convention)
        "own_gflops": {impl: 6 * macs / s / 1e9 for impl, s in med.items()},
        "fast_over_fast_old": med["fast_old"] / med["fast"],
        "fast_over_reference": med["reference"] / med["fast"],
        "spread": {impl: (max(v) - min(v)) / statistics.median(v) for impl, v in
                   samples.items()},
    }


def profiled(design: str, side: int, limits: dict[str, float], reps: int) -> dict[str, Any]:
    """Per operation kind: seconds a step, useful flops and bytes, rates, roofline ratio."""
    work = op_work(ss.net_plan(ss.parse(design), 10), side, BATCH)
    out: dict[str, Any] = {"design": design, "side": side, "work": work, "impls": {}}
    for impl in ("reference", "fast_old", "fast"):
        net = build(design, impl, side)
        step, opt = make_step(net, side)
        seconds = profile_step(step, opt, reps)
        kinds = {}
        for kind in KINDS:
            s, w = seconds.get(kind, 0.0), work.get(kind, {"flops": 0.0, "bytes": 0.0})
            bound = max(w["flops"] / (limits["sgemm_gflops"] * 1e9),
                        w["bytes"] / (limits["copy_gbs"] * 1e9))
            kinds[kind] = {"ms": s * 1e3, "gflops": w["flops"] / s / 1e9 if s else None,
                           "gbs": w["bytes"] / s / 1e9 if s else None,
                           "of_roofline": bound / s if s and bound else None}
        out["impls"][impl] = kinds
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return benchmark_args("roofline", __doc__, OUT, 5, argv,
                          "one tiny design at 8x8, 2 repetitions: a check that it runs")


def benchmark_args(name: str, doc: str, out: Path, reps: int, argv: list[str] | None,
                   quick: str) -> argparse.Namespace:
    """The command line of ``python -m benchmarks.NAME`` (this one and benchmarks.kernels):
    --out, --quick, --reps, --update-doc of the NAME block, --markdown of a written run."""
    return checked(parser(name, doc, out, reps, quick), argv)


def parser(name: str, doc: str, out: Path, reps: int, quick: str, *,
           doc_block: bool = True) -> argparse.ArgumentParser:
    """The options every benchmark here shares (``doc_block``: with --update-doc and
    --markdown of its ``<!-- NAME -->`` block); a benchmark adds its own, then
    :func:`checked` parses."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}",
                                description=doc.split("\n\n")[0])
    p.add_argument("--out", default=str(out), help=f"JSON to write (default {out})")
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--reps", type=int, default=reps, help="timed steps per implementation")
    if doc_block:
        p.add_argument("--update-doc", metavar="MD",
                       help=f"rewrite the <!-- {name} --> block of this markdown file")
        p.add_argument("--markdown", metavar="JSON",
                       help="print the markdown block of a written run and exit")
    return p


def checked(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parsed, with --reps and --out checked: one line and exit 2 where they are bad."""
    args = p.parse_args(argv)
    if args.reps < 1:
        p.exit(2, f"--reps {args.reps}: accepted: an integer >= 1\n")
    if not Path(args.out).parent.is_dir():
        p.exit(2, f"--out {args.out!r}: directory {Path(args.out).parent} does not exist\n")
    return args


def publish(args: argparse.Namespace, result: dict[str, Any], block: str,
            markdown: Any) -> None:
    """Write a run's JSON to ``--out`` and, with ``--update-doc``, its ``<!-- block -->``
    (``markdown(result)``) into that markdown file: every benchmark here ends so."""
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}", flush=True)
    if args.update_doc:
        from analysis.doc_blocks import update_doc

        update_doc(args.update_doc, {block: markdown(result)})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    t_start, load_before = time.monotonic(), os.getloadavg()[0]
    torch.set_num_threads(1)
    heap = allocator.for_trial()  # the allocator policy trials run under (benchmarks.allocator)
    limits = [machine_limits(t, args.quick) for t in (1, 2)]
    if args.quick:
        cases = [("plain8-c16-k1.4.4", 8)]
        prof_cases = cases
        reps = 2
    else:
        cases = [(d, 16) for d in DESIGNS] + [(TARGET, 32), (XCEPTION, 32)]
        prof_cases = [(d, 16) for d in PROFILED] + [(TARGET, 32)]
        reps = args.reps
    steps = []
    for design, side in cases:
        row = time_steps(design, side, reps)
        steps.append(row)
        print(f"{design:34s} {side:2d}px " + " ".join(
            f"{k} {v:6.1f}" for k, v in row["img_per_s"].items()) + " img/s", flush=True)
    prof = [profiled(d, s, limits[0], max(2, reps // 2)) for d, s in prof_cases]
    result = {
        "command": "python -m benchmarks.roofline " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "torch": torch.__version__, "threads": 1, "batch": BATCH,
        "quick": args.quick, "limits": limits, "steps": steps, "profiles": prof,
        "load_average_1m": [load_before, os.getloadavg()[0]], "allocator": heap,
        "wall_s": time.monotonic() - t_start,
    }
    result["targets"] = targets(result)
    publish(args, result, "roofline", markdown)
    return 0


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """Issue 24's targets, from this run's medians."""
    rows = {(r["design"], r["side"]): r for r in result["steps"]}
    out: dict[str, Any] = {}
    for side in (16, 32):
        r = rows.get((TARGET, side))
        if r:
            out[f"igcv2_c144_{side}px"] = {
                "over_fast_old": r["fast_over_fast_old"], "over_reference":
                r["fast_over_reference"], "met": min(r["fast_over_fast_old"],
                                                     r["fast_over_reference"]) >= 3}
    structured = [r for r in result["steps"] if r["side"] == 16
                  and not r["stands_for"].endswith("(Xception)")
                  and "Xception" not in r["stands_for"]]
    out["not_slower_than_reference"] = {
        r["design"]: r["fast_over_reference"] for r in structured}
    x = rows.get((XCEPTION, 16))
    if x and (TARGET, 16) in rows:
        ratio = x["own_gflops"]["fast"] / rows[(TARGET, 16)]["own_gflops"]["fast"]
        out["xception_rate_over_igcv2"] = {"ratio": ratio, "met": ratio <= 1.5}
    return out



def _ms(kind: dict[str, Any]) -> str:
    roof = kind["of_roofline"]
    return f"{kind['ms']:.1f}" + (f" ({roof:.0%})" if roof is not None else "")


def markdown(result: dict[str, Any]) -> str:
    """The docs/performance.md block of a run (``<!-- roofline -->``)."""
    one = next(m for m in result["limits"] if m["threads"] == 1)
    two = next(m for m in result["limits"] if m["threads"] == 2)
    lines = [f"Run {result['created']}, commit {result['commit']}, torch {result['torch']}, "
             f"one thread, batch {result['batch']}, allocator "
             f"{result.get('allocator', 'untouched')}; 1-minute load average "
             f"{result['load_average_1m'][0]:.1f} before, {result['load_average_1m'][1]:.1f} "
             f"after; {result['wall_s']:.0f} s. Limits: SGEMM {one['sgemm_gflops']:.0f} "
             f"GFLOP/s and copy {one['copy_gbs']:.0f} GB/s at one thread, "
             f"{two['sgemm_gflops']:.0f} and {two['copy_gbs']:.0f} at two.", "",
             "| design | px | reference img/s | fast before img/s | grouped img/s | fast now "
             "img/s | now / before | now / reference | own GFLOP/s now | spread |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["steps"]:
        i, g = r["img_per_s"], r["own_gflops"]
        lines.append(
            f"| `{r['design']}` ({r['stands_for']}) | {r['side']} | {i['reference']:.0f} | "
            f"{i['fast_old']:.0f} | {i['grouped']:.0f} | {i['fast']:.0f} | "
            f"{r['fast_over_fast_old']:.2f} | {r['fast_over_reference']:.2f} | "
            f"{g['fast']:.1f} | {max(r['spread'].values()):.0%} |")
    lines += ["", *target_lines(result["targets"])]
    for p in result["profiles"]:
        lines += ["", f"`{p['design']}` at {p['side']}x{p['side']}: ms a step per operation "
                  "kind (share of the roofline: the time its useful flops or bytes take at "
                  "the one-thread limits over the time measured)", "",
                  "| kind | useful GFLOP | useful MB | reference | fast before | fast now |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for kind in KINDS:
            w = p["work"].get(kind, {"flops": 0.0, "bytes": 0.0})
            cells = " | ".join(_ms(p["impls"][impl][kind])
                               for impl in ("reference", "fast_old", "fast"))
            lines.append(f"| {kind} | {w['flops'] / 1e9:.2f} | {w['bytes'] / 1e6:.0f} | "
                         f"{cells} |")
    return "\n".join(lines)


def target_lines(t: dict[str, Any]) -> list[str]:
    """Issue 24's targets as this run measured them, met or not."""
    out = []
    for side in (16, 32):
        r = t.get(f"igcv2_c144_{side}px")
        if r:
            out.append(f"- `{TARGET}` at {side}x{side}: {r['over_fast_old']:.2f}x the fast "
                       f"path before, {r['over_reference']:.2f}x the reference (target 3x): "
                       f"{'met' if r['met'] else 'not met'}.")
    slow = {d: v for d, v in t["not_slower_than_reference"].items() if v < 1}
    out.append("- IGCV2, IGCV1 and IGCV3 designs at least as fast as the reference: "
               + ("met for all." if not slow else "not met for " + ", ".join(
                   f"`{d}` ({v:.2f}x)" for d, v in slow.items()) + "."))
    x = t.get("xception_rate_over_igcv2")
    if x:
        out.append(f"- Xception C=64's rate of its own multiply-adds over IGCV2 C=144's: "
                   f"{x['ratio']:.2f} (target <= 1.5): {'met' if x['met'] else 'not met'}.")
    return out


if __name__ == "__main__":
    sys.exit(main())
