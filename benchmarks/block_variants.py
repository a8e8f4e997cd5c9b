"""What else was tried for the IGCV2 block, and by how much it lost: one block, fwd+bwd.

    python -m benchmarks.block_variants    # -> benchmarks/results/block_variants_cpu.json

One plain8 IGCV2 C=144 K=(1,12,12) block (depth-wise 3x3, two group 1x1 convolutions of 12
branches, BN after each, shuffles), training mode, batch --batch at 32x32, channels_last,
float32, --threads threads. Variants, all with the same weights (checked against the
reference before timing):

- reference: ``nn.Conv2d(groups)`` -> BatchNorm2d -> channel shuffle (a copy);
- fast: ``search_space.fast.FastBlock`` (Gram-matrix statistics, one GEMM per run);
- einsum-bn2d: the 1x1 chain as einsum on a (pixels, groups, K) view, each shuffle a free
  transposed view, BatchNorm on the (pixels, C) matrix (the hand-written probe of the notes);
- dense-bn2d: the 1x1 chain as dense block-diagonal GEMMs, shuffles folded into the next
  weight's columns (no copies), BatchNorm on the (pixels, C) matrix;
- compiled-reference: ``torch.compile`` of the reference block (its compile time recorded
  separately; a short trial pays it once per process).

Interleaved repeats, median milliseconds; the load average is recorded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import search_space as ss
from evaluators.record import write_json_atomic
from search_space.fast import FastBlock
from search_space.modules import ReferenceBlock
from search_space.plan import Block

REPO = Path(__file__).resolve().parents[1]

DESIGN = "plain8-c144-k1.12.12"


class _ChainBlock(nn.Module):
    """DW conv (module 0), then BN / group 1x1 / BN / shuffle ... on the (pixels, C) matrix,
    reading the reference block's own modules (so the weights are the same)."""

    def __init__(self, ref: ReferenceBlock, dense: bool) -> None:
        super().__init__()
        self.ref, self.dense = ref, dense
        self.convs = [m for m in ref if isinstance(m, nn.Conv2d)]
        self.bns = [m for m in ref if isinstance(m, nn.BatchNorm2d)]

    def _bn(self, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                            self.training, bn.momentum, bn.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs[0](x)
        n, c, hh, ww = h.shape
        X = self._bn(self.bns[0], h.permute(0, 2, 3, 1).reshape(-1, c))
        perm = None
        for conv, bn in zip(self.convs[1:], self.bns[1:], strict=True):
            g = conv.groups
            w = conv.weight.view(g, c // g, c // g)  # (groups, out per group, K)
            if self.dense:
                wd = torch.block_diag(*w.unbind(0))
                if perm is not None:  # the previous shuffle, folded into this weight
                    wd = wd[:, perm.argsort()]
                X = self._bn(bn, X @ wd.t())
                perm = torch.arange(c, device=x.device).view(g, c // g).t().reshape(-1)
            else:
                Y = torch.einsum("pgk,gok->pgo", X.reshape(-1, g, c // g), w)
                Y = self._bn(bn, Y.reshape(-1, c))
                X = Y.view(-1, g, c // g).transpose(1, 2)  # the shuffle, a view
        if self.dense:
            X = X[:, perm]
        y = F.relu(X.reshape(-1, c))
        return y.view(n, hh, ww, c).permute(0, 3, 1, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/block_variants_cpu.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    block = ss.net_plan(ss.parse(DESIGN)).blocks[1]
    torch.manual_seed(0)
    variants = _variants(block)
    x = torch.randn(args.batch, block.cin, 32, 32).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(args.batch, block.cout, 32, 32).contiguous(
        memory_format=torch.channels_last)
    _check_same_function(variants, x)
    compile_s = None
    if not args.no_compile:
        variants["compiled-reference"], compile_s = _compiled_reference(
            block, variants["reference"], x, grad)
    load_start = os.getloadavg()
    times = _interleaved_fwd_bwd(variants, x, grad, args.reps)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    record = {
        "benchmark": "block_variants", "design": DESIGN, "block": "C=144 K=(1,12,12)",
        "batch": args.batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "fwd_bwd_ms": ms, "samples_ms": {k: [1e3 * t for t in v] for k, v in times.items()},
        "vs_reference": {k: ms["reference"] / v for k, v in ms.items()},
        "compile_s": compile_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, record, sort_keys=False)
    print("block fwd+bwd ms (speedup vs reference): " + ", ".join(
        f"{k} {v:.0f} (x{record['vs_reference'][k]:.2f})" for k, v in ms.items())
        + (f"; compile {compile_s:.0f} s" if compile_s is not None else ""))
    return 0


def _variants(block: Block) -> dict[str, nn.Module]:
    """The variants timed, all with the reference block's weights (channels_last)."""
    ref = ReferenceBlock(block).to(memory_format=torch.channels_last)
    fast = FastBlock(block).to(memory_format=torch.channels_last)
    fast.load_state_dict(ref.state_dict())
    return {
        "reference": ref, "fast": fast,
        "einsum-bn2d": _ChainBlock(ref, dense=False), "dense-bn2d": _ChainBlock(ref, dense=True),
    }


def _check_same_function(variants: dict[str, nn.Module], x: torch.Tensor) -> None:
    """Every variant computes the reference's function (eval mode: no running-statistics
    drift), to 1e-4 of its largest output."""
    with torch.no_grad():
        want = variants["reference"].eval()(x)
        for name, m in variants.items():
            err = ((m.eval()(x) - want).abs().max() / want.abs().max()).item()
            assert err < 1e-4, f"{name} differs from the reference by {err:.2g}"


def _compiled_reference(block: Block, ref: nn.Module, x: torch.Tensor,
                        grad: torch.Tensor) -> tuple[nn.Module, float]:
    """``torch.compile`` of a reference block with ``ref``'s weights, and the seconds its
    compilation and first fwd+bwd took."""
    start = time.perf_counter()
    eager = ReferenceBlock(block).to(memory_format=torch.channels_last)
    eager.load_state_dict(ref.state_dict())
    compiled = torch.compile(eager)
    xx = x.clone().requires_grad_()
    compiled.train()(xx).backward(grad)
    return compiled, time.perf_counter() - start


def _interleaved_fwd_bwd(variants: dict[str, nn.Module], x: torch.Tensor, grad: torch.Tensor,
                         reps: int) -> dict[str, list[float]]:
    """Seconds of one training-mode fwd+bwd per variant and repeat, after a warm-up pass,
    the variants in alternating order (so a busy machine slows all alike)."""

    def run(name: str) -> float:
        m = variants[name].train()
        xx = x.clone().requires_grad_()
        start = time.perf_counter()
        m(xx).backward(grad)
        return time.perf_counter() - start

    for name in variants:
        run(name)
    times: dict[str, list[float]] = {n: [] for n in variants}
    names = list(variants)
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(run(name))
    return times


if __name__ == "__main__":
    sys.exit(main())
