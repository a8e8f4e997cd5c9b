"""The depth-wise 3x3 convolution's three kernels alone (``search_space.kernels``: forward,
input gradient, weight gradient) against ATen's, at the CPU rungs' sizes (issue 24).

    taskset -c 1 nice -n 5 python -m benchmarks.depthwise     # ~1 min -> results/depthwise_cpu.json
    python -m benchmarks.depthwise --quick --out /tmp/d.json  # seconds: a check that it runs
    python -m benchmarks.depthwise --baseline 112b622         # also the kernels.cpp of a commit

One thread, float32, NCHW, batch 64, C in (64, 144, 400) at 16x16 and 32x32 (8x8 with
--quick). Per shape, interleaved rounds of every (kernel, implementation) call, median of
``--reps`` CPU-time samples (``time.process_time``; a sample repeats the call until it
covers ~5 ms). Implementations: ``cpp`` (this tree's kernels), ``aten``
(``F.conv2d(groups=C)`` and ``aten::convolution_backward`` asked for one gradient at a
time) and, with ``--baseline REV``, ``base`` (``search_space/kernels.cpp`` at git revision
REV, built as a second extension): ratios in one run, on one machine state; with it, also
whole training steps of issue 24's design (grouped path) with each build of the kernels.
``alloc``: a fresh output tensor written once (``empty_like(x).fill_(0)``), the part of a
forward or input gradient call that is allocation and first-touch page faults, not the
kernel.

Useful work per call: 18 flops a value (9 multiply-adds) and two tensors of bytes (forward
and input gradient read one and write one; the weight gradient reads two); the roofline
share is the time that work would take at the machine's one-thread SGEMM rate or copy
bandwidth (whichever is longer), over the measured time. The 1-minute load average before
and after, the CPU affinity and the niceness are recorded: compare ratios within one run,
not across runs.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks import roofline
from evaluators.provenance import git_commit
from evaluators.record import write_json_atomic
from search_space import kernels

OUT = roofline.ROOT / "benchmarks" / "results" / "depthwise_cpu.json"
BATCH = 64
CHANNELS = (64, 144, 400)
SIDES = (16, 32)
OPS = ("forward", "dgrad", "wgrad", "alloc")
SAMPLE_S = 0.005
MALLOC_ENV = ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE", "LD_PRELOAD")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = roofline.parser("depthwise", __doc__, OUT, 7, "one small shape at 8x8, 3 samples",
                        doc_block=False)
    p.add_argument("--baseline", metavar="REV",
                   help="also time search_space/kernels.cpp at this git revision")
    args = roofline.checked(p, argv)
    if args.baseline is not None and _revision_source(args.baseline) is None:
        p.exit(2, f"--baseline {args.baseline!r}: accepted: a git revision of this repository "
                  "that has search_space/kernels.cpp\n")
    return args


def _revision_source(rev: str) -> str | None:
    out = subprocess.run(["git", "show", f"{rev}:search_space/kernels.cpp"], cwd=roofline.ROOT,
                         capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def build_baseline(rev: str) -> Any:
    """kernels.cpp at ``rev``, built with this tree's flags as a second extension (its own
    PYBIND11_MODULE: no bindings generated; torch writes the source into its build dir)."""
    from torch.utils.cpp_extension import load_inline

    return load_inline(name="igcbench_kernels_base", cpp_sources=[_revision_source(rev) or ""],
                       extra_cflags=kernels.CFLAGS, verbose=False)


def calls(shape: tuple[int, int, int, int], impls: dict[str, Any]
          ) -> dict[tuple[str, str], Callable[[], Any]]:
    """(op, impl) -> a call on fixed random float32 tensors of ``shape``."""
    n, c, h, w = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    gy = torch.randn(shape, generator=g)
    k = torch.randn(c, 1, 3, 3, generator=g)
    out: dict[tuple[str, str], Callable[[], Any]] = {}
    for name, ext in impls.items():
        out["forward", name] = lambda e=ext: e.dw_forward(x, k, False)
        out["dgrad", name] = lambda e=ext: e.dw_forward(gy, k, True)
        out["wgrad", name] = lambda e=ext: e.dw_weight(gy, x)
    bwd = torch.ops.aten.convolution_backward
    args = (gy, x, k, None, [1, 1], [1, 1], [1, 1], False, [0, 0], c)
    out["forward", "aten"] = lambda: F.conv2d(x, k, padding=1, groups=c)
    out["dgrad", "aten"] = lambda: bwd(*args, [True, False, False])
    out["wgrad", "aten"] = lambda: bwd(*args, [False, True, False])
    # the floor a fresh output sets (forward and input gradient allocate one): above glibc's
    # 32 MiB mmap threshold each call maps new pages and the first write faults them in
    out["alloc", "aten"] = lambda: torch.empty_like(x).fill_(0.0)
    return out


def time_shape(shape: tuple[int, int, int, int], impls: dict[str, Any], reps: int
               ) -> dict[tuple[str, str], list[float]]:
    """CPU seconds per call of every (op, impl), in rounds of alternating order."""
    fns = calls(shape, impls)
    repeat = {}
    for key, fn in fns.items():  # untimed first call, then as many calls as fill a sample
        fn()
        t0 = time.process_time()
        fn()
        repeat[key] = max(1, math.ceil(SAMPLE_S / max(time.process_time() - t0, 1e-6)))
    keys = list(fns)
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    for r in range(reps):
        for key in (keys if r % 2 == 0 else keys[::-1]):
            fn, m = fns[key], repeat[key]
            t0 = time.process_time()
            for _ in range(m):
                fn()
            samples[key].append((time.process_time() - t0) / m)
    return samples


def summarise(shape: tuple[int, int, int, int], samples: dict[tuple[str, str], list[float]],
              limits: dict[str, float]) -> dict[str, Any]:
    numel = math.prod(shape)
    flops, nbytes = 18.0 * numel, 2.0 * numel * 4
    bound = max(flops / (limits["sgemm_gflops"] * 1e9), nbytes / (limits["copy_gbs"] * 1e9))
    ops: dict[str, Any] = {}
    for (op, impl), v in samples.items():
        s = statistics.median(v)
        ops.setdefault(op, {})[impl] = {
            "ms": s * 1e3, "gflops": flops / s / 1e9, "gbs": nbytes / s / 1e9,
            "of_roofline": bound / s, "spread": (max(v) - min(v)) / s,
            "samples_ms": [t * 1e3 for t in v]}
    for per in ops.values():
        for other in ("aten", "base"):
            if other in per and "cpp" in per:
                per["cpp"][f"over_{other}"] = per[other]["ms"] / per["cpp"]["ms"]
    return {"shape": list(shape), "flops": flops, "bytes": nbytes, "bound_ms": bound * 1e3,
            "ops": ops}


def time_steps(base: Any, side: int, reps: int) -> dict[str, Any]:
    """Training steps of issue 24's design on the grouped path (``roofline.make_step``),
    with this tree's extension and with ``base`` swapped in (the same BatchNorm kernels
    where REV's match), interleaved: the whole-step ratio of the 3x3 change alone."""
    design = roofline.TARGET
    net = roofline.build(design, "grouped", side)
    step, _ = roofline.make_step(net, side)

    def with_base() -> None:
        with kernels.swapped(base):
            step()

    samples, med = roofline.interleaved({"cpp": step, "base": with_base}, reps)
    return {"design": design, "side": side, "batch": roofline.BATCH, "step_ms": {
        k: v * 1e3 for k, v in med.items()}, "samples_ms": {
        k: [t * 1e3 for t in v] for k, v in samples.items()},
        "base_over_cpp": med["base"] / med["cpp"]}


def line(r: dict[str, Any]) -> str:
    n, c, h, w = r["shape"]
    cells = []
    for op in OPS:
        per = r["ops"][op]
        cells.append(f"{op} " + " ".join(f"{i} {v['ms']:.3f}" for i, v in per.items()))
    return f"N{n} C{c} {h}x{w} (bound {r['bound_ms']:.3f} ms): " + "; ".join(cells)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start, load_before = time.monotonic(), os.getloadavg()[0]
    ext = kernels.extension()
    if ext is None:
        print("the C++ kernels did not build: nothing to compare", file=sys.stderr)
        return 1
    impls = {"cpp": ext}
    if args.baseline:
        impls["base"] = build_baseline(args.baseline)
    torch.set_num_threads(1)
    limits = roofline.machine_limits(1, args.quick)
    shapes = ([(8, 16, 8, 8)] if args.quick else
              [(BATCH, c, s, s) for s in SIDES for c in CHANNELS])
    reps = 3 if args.quick else args.reps
    rows = []
    for shape in shapes:
        rows.append(summarise(shape, time_shape(shape, impls, reps), limits))
        print(line(rows[-1]), flush=True)
    steps = []
    if args.baseline:
        for side in ((8,) if args.quick else (16, 32)):
            steps.append(time_steps(impls["base"], side, reps))
            print(f"{steps[-1]['design']} {side}px step ms: " + " ".join(
                f"{k} {v:.1f}" for k, v in steps[-1]["step_ms"].items()), flush=True)
    result = {
        "command": "python -m benchmarks.depthwise " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "baseline": args.baseline, "torch": torch.__version__,
        "threads": 1, "dtype": "float32", "quick": args.quick, "reps": reps,
        "cflags": kernels.CFLAGS, "limits": limits, "shapes": rows, "steps": steps,
        "load_average_1m": [load_before, os.getloadavg()[0]],
        "cpu_affinity": sorted(os.sched_getaffinity(0)), "cpus": os.cpu_count(),
        "niceness": os.nice(0), "wall_s": time.monotonic() - t_start,
        # the allocator's settings: above glibc's mmap threshold, fresh outputs fault
        "malloc_env": {k: v for k, v in os.environ.items()
                       if k in MALLOC_ENV or k.startswith("MALLOC_")},
    }
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
