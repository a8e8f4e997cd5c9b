"""Operation kinds of a training step: their useful work (from the plan) and their measured
time (from torch.profiler), for ``benchmarks.roofline``.

Useful work is the reference function's, whatever path computes it (the fused path's dense
GEMMs and Gram matrices do more multiply-adds; they count as the work they replace), per
training step of ``batch`` images at ``side`` pixels, float32 (4 bytes a value):

- ``3x3``: the blocks' spatial convolutions; flops 2 x 3 x forward multiply-adds (the
  backward does the input and the weight gradient); bytes: forward reads the input and
  writes the output, backward reads the output gradient and the input and writes the
  input gradient (3 x input + 2 x output values);
- ``group 1x1``: the blocks' 1x1 convolutions, counted as the 3x3 ones;
- ``BatchNorm``: 8 passes over each BN's values (forward: statistics, then read and
  write; backward: two reductions of the gradient and the input, then read both, write);
- ``ReLU``: 4 (forward read, write; backward read the gradient and the mask, write);
- ``permutation``: 4 per shuffle (a copy forward, one backward);
- ``optimizer``: SGD with momentum and weight decay, 5 values a parameter (read the
  parameter, its gradient and momentum; write the parameter and momentum), 4 flops each;
- ``other``: stem, pooling, classifier, loss, autograd's own work: not counted.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

KINDS = ("3x3", "group 1x1", "BatchNorm", "ReLU", "permutation", "optimizer", "other")
_BYTES = 4

_BN_OPS = {"aten::native_batch_norm", "aten::native_batch_norm_backward",
           "aten::_batch_norm_with_update", "aten::batch_norm_backward",
           "aten::linalg_vector_norm", "aten::addcmul", "aten::sub", "aten::sub_",
           "aten::mean", "aten::rsqrt", "aten::var_mean", "aten::sum"}
# search_space.kernels' C++ kernels, as the profiler names their autograd functions (the
# BatchNorm's time includes its fused shuffle and ReLU, as the pure path's addcmul does)
_BN_OPS |= {"BatchNormShuffle", "BatchNormShuffleBackward"}
_DW_OPS = {"DepthwiseConv3x3", "DepthwiseConv3x3Backward"}
_RELU_OPS = {"aten::clamp_min_", "aten::clamp_min", "aten::relu_", "aten::relu",
             "aten::threshold_backward"}
_GEMM_OPS = {"aten::bmm", "aten::mm", "aten::addmm", "aten::addmm_", "aten::baddbmm",
             "aten::baddbmm_"}
# bn_fold's folded steps: their own time is the C++ group GEMMs (search_space/group_gemm.cpp,
# not ATen ops) with the BatchNorms folded in, and the Python that calls them
_GEMM_OPS |= {"ConvBN", "ConvBNBackward"}
_COPY_OPS = {"aten::copy_", "aten::clone", "aten::contiguous"}
_CONV_OPS = {"aten::mkldnn_convolution", "aten::convolution_backward",
             "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward",
             "aten::thnn_conv2d", "aten::_nnpack_spatial_convolution"}


def op_work(plan: Any, side: int, batch: int) -> dict[str, dict[str, float]]:
    """Useful flops and bytes per kind of one training step (see the module docstring)."""
    scale = (side / plan.input_size) ** 2
    work: dict[str, dict[str, float]] = defaultdict(lambda: {"flops": 0.0, "bytes": 0.0})
    params = plan.params
    for block in (*plan.blocks, *plan.head):
        for conv, shuffle, relu in zip(block.convs, block.shuffle, block.relu, strict=True):
            n_in = conv.cin * conv.hw_in ** 2 * scale * batch
            n_out = conv.cout * conv.hw_out ** 2 * scale * batch
            kind = "group 1x1" if conv.k == 1 else "3x3"
            work[kind]["flops"] += 6 * conv.macs * scale * batch
            work[kind]["bytes"] += _BYTES * (3 * n_in + 2 * n_out)
            work["BatchNorm"]["bytes"] += _BYTES * 8 * n_out
            if relu:
                work["ReLU"]["bytes"] += _BYTES * 4 * n_out
            if shuffle > 1:
                work["permutation"]["bytes"] += _BYTES * 4 * n_out
    work["optimizer"]["bytes"] += _BYTES * 5 * params
    work["optimizer"]["flops"] += 4.0 * params
    return dict(work)


def _conv_kind(shapes: list[list[int]], name: str) -> str:
    """"3x3" or "group 1x1" from a convolution's weight shape; "other" for the stem."""
    w = shapes[2] if name == "aten::convolution_backward" else shapes[1]
    if len(w) != 4:
        return "other"
    if w[-1] == 1:
        return "group 1x1"
    return "other" if w[1] == 3 and w[0] != 3 and _is_stem(shapes) else "3x3"


def _is_stem(shapes: list[list[int]]) -> bool:
    x = shapes[1] if len(shapes) > 2 and len(shapes[1]) == 4 and shapes[1][1] == 3 else None
    return x is not None or (len(shapes[0]) == 4 and shapes[0][1] == 3)


def kind_of(name: str, shapes: list[list[int]]) -> str:
    """The operation kind a leaf ATen op's self time counts toward."""
    if name in _CONV_OPS:
        return _conv_kind(shapes, name)
    if name in _DW_OPS:
        return "3x3"
    if name in _GEMM_OPS:
        return "group 1x1"
    if name in _BN_OPS:
        return "BatchNorm"
    if name in _RELU_OPS:
        return "ReLU"
    if name in _COPY_OPS:
        return "permutation"
    return "other"


def profile_step(step: Any, opt: torch.optim.Optimizer, reps: int) -> dict[str, float]:
    """Median seconds per kind of ``reps`` profiled steps; the kinds sum to the step's CPU
    time (the profiler's wall split, scaled), the optimizer timed on its own."""
    step()
    runs: list[dict[str, float]] = []
    for _ in range(reps):
        t0 = time.process_time()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            step()
        cpu = time.process_time() - t0
        per: dict[str, float] = defaultdict(float)
        for ev in prof.key_averages(group_by_input_shape=True):
            if ev.key.startswith("Optimizer.") or ev.self_cpu_time_total <= 0:
                continue
            per[kind_of(ev.key, [list(s) for s in ev.input_shapes or []])] += (
                ev.self_cpu_time_total / 1e6)
        t1 = time.process_time()
        opt.step()  # the step's own update, timed alone: one more SGD step
        per["optimizer"] = time.process_time() - t1
        total = sum(per.values())
        runs.append({k: v * cpu / total for k, v in per.items()})
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in KINDS}
