"""The folded group 1x1 convolutions' products: ``group_gemm.cpp`` against ATen's bmm.

    python -m benchmarks.group_gemm          # ~3 min -> benchmarks/results/group_gemm_cpu.json

Two measurements, one thread, the trials' allocator policy, in one process:

1. **The products alone** at the shapes of ``plain8-c144-k1.12.12``'s folded runs (12 groups
   of 12 channels over the pixels of a 64-image batch, 16x16 and 32x32), the input a channel
   shuffle's strided view as the second convolution of a run reads it: the output
   ``W x + b`` (``group_nn`` against ``baddbmm``), the Gram matrix with the row sums
   (``group_nt``, symmetric, against ``bmm`` and a sum), the backward's ``dy x^T`` with
   ``dy``'s sums and its two-term ``W^T dy + A x + c``. Wall ms, the median of interleaved
   repetitions.
2. **Whole training steps** (``benchmarks.roofline.make_step``: SGD, batch 64) of folded
   IGCV2 nets with ``bn_fold``'s products on the C++ loops or on ATen's bmm (everything
   else the same), interleaved: CPU ms a step, medians.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.roofline import build, checked, interleaved, make_step, parser, publish
from evaluators.provenance import git_commit
from search_space import allocator, bn_fold, kernels

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "group_gemm_cpu.json"
GROUPS, K, BATCH = 12, 12, 64
PRODUCTS = ("output W x + b", "Gram x x^T and sums", "backward dy x^T and sums",
            "backward W^T dy + A x + c")
NETS = (("plain8-c144-k1.12.12", 16), ("plain8-c144-k1.12.12", 32),
        ("plain8-c156-k1.6.6.6", 16), ("plain8-c160-k1.4.4.4.4", 16))


def _operand(p: int, g: torch.Generator) -> torch.Tensor:
    """(G, K, P) as ``channel_order.shuffled`` hands it on: a strided view of (K, G, P)."""
    return torch.randn(K, GROUPS, p, generator=g).transpose(0, 1)


def products(side: int, reps: int) -> dict[str, Any]:
    """The four products at ``side`` x ``side``: ms of each implementation, medians."""
    ext = kernels.extension()
    g = torch.Generator().manual_seed(0)
    p = BATCH * side * side
    x, dy = _operand(p, g), _operand(p, g)
    w, a = (torch.randn(GROUPS, K, K, generator=g) for _ in range(2))
    b = torch.randn(GROUPS, K, generator=g)
    cases: dict[str, dict[str, Callable[[], object]]] = {
        "output W x + b": {
            "bmm": lambda: torch.baddbmm(b[..., None], w, x),
            "cpp": lambda: ext.group_nn(w, x, None, None, b)},
        "Gram x x^T and sums": {
            "bmm": lambda: (torch.bmm(x, x.transpose(1, 2)), bn_fold.group_mean(x)),
            "cpp": lambda: ext.group_nt(x, x, True)},
        "backward dy x^T and sums": {
            "bmm": lambda: (torch.bmm(dy, x.transpose(1, 2)), dy.sum(2)),
            "cpp": lambda: ext.group_nt(dy, x, False)},
        "backward W^T dy + A x + c": {
            "bmm": lambda: torch.baddbmm(b[..., None], w, dy).baddbmm_(a, x),
            "cpp": lambda: ext.group_nn(w, dy, a, x, b)}}
    out = {}
    for name, impls in cases.items():
        samples: dict[str, list[float]] = {k: [] for k in impls}
        for f in impls.values():
            f()
        for r in range(reps):
            for k in (list(impls) if r % 2 == 0 else list(impls)[::-1]):
                t0 = time.perf_counter()
                impls[k]()
                samples[k].append((time.perf_counter() - t0) * 1e3)
        med = {k: statistics.median(v) for k, v in samples.items()}
        out[name] = {"ms": med, "bmm_over_cpp": med["bmm"] / med["cpp"]}
    return {"side": side, "pixels": p, "products": out}


def steps(design: str, side: int, reps: int) -> dict[str, Any]:
    """Training steps of ``design`` with bn_fold's products in C++ and on bmm, interleaved
    (``kernels.use_group_gemms``: every other kernel the same)."""
    def on(enabled: bool, step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with kernels.use_group_gemms(enabled):
                step()
        return run

    runs = {"cpp": on(True, make_step(build(design, "fast", side), side)[0]),
            "bmm": on(False, make_step(build(design, "fast", side), side)[0])}
    samples, med = interleaved(runs, reps)
    return {"design": design, "side": side, "step_ms": {k: v * 1e3 for k, v in med.items()},
            "bmm_over_cpp": med["bmm"] / med["cpp"], "samples_s": samples}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| product (12 groups of 12, batch 64, strided input) | side | bmm ms | C++ ms | "
             "bmm / C++ |", "| --- | ---: | ---: | ---: | ---: |"]
    for run in result["products"]:
        for name in PRODUCTS:  # (the JSON's keys are sorted)
            r = run["products"][name]
            lines.append(f"| {name} | {run['side']} | {r['ms']['bmm']:.2f} | "
                         f"{r['ms']['cpp']:.2f} | {r['bmm_over_cpp']:.2f} |")
    lines += ["", "| training step (folded, fast path) | side | bmm ms | C++ ms | bmm / C++ |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for s in result["steps"]:
        lines.append(f"| `{s['design']}` | {s['side']} | {s['step_ms']['bmm']:.1f} | "
                     f"{s['step_ms']['cpp']:.1f} | {s['bmm_over_cpp']:.2f} |")
    lines += ["", f"Commit {result['commit'][:7]}, load average {result['load_average_1m'][0]:.1f}"
              f"-{result['load_average_1m'][1]:.1f}, written {result['created']} "
              f"(`{result['command']}`)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser("group_gemm", __doc__, OUT, 15, "16x16 only, one small net, 3 repetitions")
    args = checked(p, argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    if kernels.extension() is None:
        p.exit(2, "the C++ kernels do not build here (see the warning above); accepted: a "
               "machine with a C++ compiler and ninja\n")
    t0, load0, commit = time.monotonic(), os.getloadavg()[0], git_commit()
    torch.set_num_threads(1)
    heap = allocator.for_trial()
    sides, nets, reps = (((16,), (("plain8-c48-k1.6.6", 16),), 3) if args.quick
                         else ((16, 32), NETS, args.reps))
    prods = [products(s, reps) for s in sides]
    runs = []
    for design, side in nets:
        runs.append(steps(design, side, max(3, reps // 2)))
        print(f"{design} {side}: bmm / C++ {runs[-1]['bmm_over_cpp']:.2f}", flush=True)
    result = {
        "command": "python -m benchmarks.group_gemm " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit, "torch": torch.__version__, "allocator": heap, "threads": 1,
        "load_average_1m": [load0, os.getloadavg()[0]], "wall_s": time.monotonic() - t0,
        "products": prods, "steps": runs}
    print(markdown(result))
    publish(args, result, "group-gemm", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
