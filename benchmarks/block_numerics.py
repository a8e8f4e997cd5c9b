"""The fused FastBlock's numerics against a float64 reference, per block kind
(benchmarks/speed.py runs it first on CUDA)."""

from __future__ import annotations

import copy

import torch

import search_space as ss
from search_space.fast import FastBlock
from search_space.modules import ReferenceBlock


def numerics_check(device: torch.device) -> dict:
    """Relative error against the float64 reference on ``device``, of the fused FastBlock and of
    the reference, both in float32 (TF32 off): the largest ||a - b|| / ||b|| over outputs,
    input and parameter gradients, train and eval mode, per block kind.

    A norm, not the largest element: where a pre-ReLU value lies within float32 rounding of
    zero, any float32 implementation may flip that one mask bit (float64 says 6e-8, float32
    says -1e-8), and the flipped pixel's whole gradient then differs.
    """
    blocks = {"igcv2-ii": ("plain8-c144-k1.12.12", 0), "res20 transition": (
        "res20-c216-k1.8.8.8-stem64", 6), "mobilenetv2 expansion": (
        "mobilenet2-c32-kg1.1.g1-s2-t6-relu", 1), "nonlinear": ("plain8-c64-k1.8.8-relu", 0)}
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    out: dict[str, dict[str, float]] = {"fast": {}, "reference": {}}
    try:
        for kind, (design, i) in blocks.items():
            blk = ss.net_plan(ss.parse(design)).blocks[i]
            torch.manual_seed(0)
            ref = ReferenceBlock(blk)
            with torch.no_grad():  # no parameter at a value that zeroes a gradient
                for m in ref.modules():
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.5)
                        m.running_mean.normal_(0, 0.5), m.running_var.uniform_(0.5, 1.5)
            fast = FastBlock(blk, path="fused")
            fast.load_state_dict(ref.state_dict())
            models = {"truth": copy.deepcopy(ref).double(), "reference": ref, "fast": fast}
            x = torch.randn(4, blk.cin, 12, 12, dtype=torch.float64) + 1.0
            errs: dict[str, list[float]] = {"fast": [], "reference": []}
            for train in (True, False):
                res = {}
                for name, m in models.items():
                    m = m.to(device).train(train)
                    xx = x.to(device, next(m.parameters()).dtype)
                    xx = xx.contiguous(memory_format=torch.channels_last).requires_grad_()
                    y = m(xx)
                    r = torch.linspace(-1, 1, y.numel(), device=device, dtype=y.dtype)
                    (y * r.view_as(y)).sum().backward()
                    res[name] = [y.detach(), xx.grad] + [p.grad for p in m.parameters()]
                    m.zero_grad(set_to_none=True)
                # BN shifts followed by another BN have zero gradient: floor the scale.
                floor = 1e-2 * max(t.norm().item() for t in res["truth"][2:])
                for name in errs:
                    for a, b in zip(res[name], res["truth"], strict=True):
                        scale = max(b.norm().item(), floor)
                        errs[name].append((a.double() - b).norm().item() / scale)
            for name in errs:
                out[name][kind] = max(errs[name])
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    return {"max_rel_error_vs_float64_reference": out}
