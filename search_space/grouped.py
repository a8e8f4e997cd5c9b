"""The group-major training path of FastBlock: group 1x1 convolutions as batched GEMMs.

Why: at the CPU rungs' own settings (one thread, batch 64, 16x16, NCHW) the fused path's
dense C x C GEMM does K_l / C of useful work per multiply-add (one sixth at C = 144, K = 12)
and the reference path's ``nn.Conv2d(groups)`` and BatchNorm kernels run far below this
CPU's limits (issue 24; ``benchmarks/roofline.py`` measures both). Here a run's activations
live channel-major, ``(C, P)`` with P = N*H*W pixels, so group g of a 1x1 convolution is the
contiguous ``(K_l, P)`` slab g and the convolution is one ``torch.bmm`` of the
``(G, K_out, K_in)`` kernels over the ``(G, K_in, P)`` view: the block's own multiply-adds,
no more, each a long thin GEMM.

How, per run (``search_space.plan.segments``): the spatial convolution stays ``F.conv2d``;
each BatchNorm is :class:`_BatchNormShuffle`, which takes its batch statistics in two
cheap passes (a mean, then the norm of the centred values; BatchNorm's own CPU kernel
takes them in a Welford pass that cost more than the convolutions here) and writes its
output already channel-shuffled (the permutation P_l of eq. 4) in the layout the next
operation reads: channel-major for a group 1x1 convolution, NCHW (with the ReLU) at the
run's end. So the permutations cost no pass of their own. The backward is autograd's:
``torch.bmm``'s, and for each BatchNorm ATen's ``native_batch_norm_backward`` on the
statistics saved here. Training mode only; in eval FastBlock folds BatchNorms as before.

Where ``search_space.kernels`` builds (a C++ compiler on the machine), the BatchNorm-shuffle
is its C++ kernel instead, forward and backward: one pass from memory for the statistics and
one for the output, channel by channel, and a hand-written backward of the same shape; and a
depth-wise 3x3 spatial convolution (stride 1) is its C++ kernel, not ATen's NCHW one.
With ``fold`` (FastBlock takes it where ``work.fold_pays`` says: every 1x1 convolution of
the run with at most ``work.FOLD_MAX_K`` input channels a group), a run's BatchNorms after
and before its group 1x1 convolutions are folded into them instead (``search_space.bn_fold``:
statistics from each input's Gram matrix, the output in one ``baddbmm``). Folded runs hand
each other channel-major activations, ``(C, N, H, W)`` storage seen as an NCHW tensor: the
last step writes its output shuffled and with the ReLU (a table of output rows), the next
run's depth-wise kernel reads it in place and writes its own output channel-major and
centred, and the backward runs the same way, so the four layout copies a run made
(centring in, NCHW out, and their backwards) are gone. Any other consumer (pooling, a
strided or grouped 3x3, another path) takes the strides as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from . import bn_fold, channel_order, kernels
from .plan import Run


def _canonical(x: torch.Tensor, layout: str, g: int, shape) -> torch.Tensor:
    """A (C, P) channel-major or (N, C, H, W) tensor as the (g, C/g, N, HW) view in which
    channel g_i * C/g + k of the unshuffled order is index (g_i, k)."""
    n, c, h, w = shape
    if layout == "cp":
        return x.view(g, c // g, n, h * w)
    return x.view(n, g, c // g, h * w).permute(1, 2, 0, 3)


class _BatchNormShuffle(torch.autograd.Function):
    """BatchNorm (training: batch statistics, running-statistics update) -> shuffle ->
    [ReLU], from layout ``src`` to layout ``dst`` ("cp": (C, P) channel-major; "nchw")."""

    @staticmethod
    def forward(ctx, x, weight, bias, bn, src, dst, g, relu, shape):
        n, c, h, w = shape
        xs = _canonical(x, src, g, shape)  # (g, C/g, N, HW)
        # Each image's sums over its contiguous pixels, then the images' in float64: one
        # float32 reduction over the strided (N, HW) axes lost a digit against ATen's
        # BatchNorm (1e-5 against 6e-7 at C = 144, 16x16, batch 64), and float64 element
        # by element took 3-18x as long.
        p = n * h * w
        mean = xs.sum(3).sum(2, dtype=torch.float64).div_(p)
        xc = xs - mean[..., None, None].to(x.dtype)
        var = torch.linalg.vector_norm(xc, dim=3).square_().sum(2, dtype=torch.float64).div_(p)
        invstd = torch.rsqrt(var + bn.eps)
        scale = (weight.view(g, c // g) * invstd).to(x.dtype)
        mean, var, invstd = (t.to(x.dtype) for t in (mean, var, invstd))
        if dst == "cp":
            out = x.new_empty(c // g, g, n, h * w)
            view = out.permute(1, 0, 2, 3)
        else:
            out = x.new_empty(n, c // g, g, h * w)
            view = out.permute(2, 1, 0, 3)
        torch.addcmul(bias.view(g, c // g, 1, 1).to(x.dtype), xc, scale[..., None, None],
                      out=view)
        if relu:
            out.relu_()
        bn_fold.update_running(bn, mean.reshape(c), var.reshape(c), p)
        out = out.view(c, p) if dst == "cp" else out.view(n, c, h, w)
        ctx.save_for_backward(x, weight, mean.reshape(c), invstd.reshape(c),
                              out if relu else None)
        ctx.cfg = (src, dst, g, relu, shape, bn.eps)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, weight, mean, invstd, y = ctx.saved_tensors
        src, dst, g, relu, (n, c, h, w), eps = ctx.cfg
        gy = gy.contiguous()  # a caller may hand it another layout (channels_last)
        if relu:
            gy = torch.ops.aten.threshold_backward(gy, y, 0)
        # the shuffle's inverse: back to (g, C/g, N, HW) in the unshuffled order
        gs = _canonical(gy, dst, c // g, (n, c, h, w)).transpose(0, 1)
        # ATen's BatchNorm backward, on the layout the input had: (1, C, P) or (N, C, HW).
        if src == "cp":
            g3, x3 = gs.reshape(1, c, n * h * w), x.view(1, c, n * h * w)
        else:
            g3 = gs.permute(2, 0, 1, 3).reshape(n, c, h * w)
            x3 = x.view(n, c, h * w)
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(
            g3, x3, weight, None, None, mean, invstd, True, eps, list(ctx.needs_input_grad[:3]))
        if dx is not None:
            dx = dx.view(c, n * h * w) if src == "cp" else dx.view(n, c, h, w)
        return dx, dw, db, None, None, None, None, None, None


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, g: int, src: str, dst: str, relu: bool,
        n: int, h: int, w: int) -> torch.Tensor:
    c = x.shape[0] if src == "cp" else x.shape[1]
    if not kernels.usable(x):
        return _BatchNormShuffle.apply(x, bn.weight, bn.bias, bn, src, dst, g, relu,
                                       (n, c, h, w))
    y, mean, var = kernels.BatchNormShuffle.apply(x, bn.weight, bn.bias, bn.eps, src, dst, g,
                                                  relu, (n, c, h, w))
    bn_fold.update_running(bn, mean, var, n * h * w)
    return y


def bn_relu(x: torch.Tensor, bn: nn.BatchNorm2d, channel_major: bool) -> torch.Tensor:
    """ReLU(BatchNorm(x)) in training (batch statistics, running-statistics update) of an
    NCHW ``x`` on the C++ BatchNorm kernel (a net's stem, ``fast.FastStem``), written NCHW
    or channel-major: (C, N, H, W) storage seen as NCHW, the layout a folded run's
    depth-wise kernel reads in place."""
    n, c, h, w = x.shape
    if not channel_major:
        return _bn(x, bn, 1, "nchw", "nchw", True, n, h, w)
    return _bn(x, bn, 1, "nchw", "cp", True, n, h, w).view(c, n, h, w).permute(1, 0, 2, 3)


def group_conv1x1(x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
    """``conv2d(groups)`` of a 1x1 kernel (C_out, K_in, 1, 1) on a (C_in, P) channel-major
    matrix: one bmm of (G, K_out, K_in) kernels over the (G, K_in, P) view -> (C_out, P)."""
    cin, p = x.shape
    cout = weight.shape[0]
    w = weight.view(groups, cout // groups, cin // groups)
    return torch.bmm(w, x.view(groups, cin // groups, p)).view(cout, p)


def grouped_run(modules: nn.Module, run: Run, x: torch.Tensor, fold: bool = False
                ) -> torch.Tensor:
    """A training-mode run of a ReferenceBlock's modules, NCHW in, NCHW out (as
    ``ReferenceBlock`` computes it, to rounding). ``fold``: each BatchNorm after a group 1x1
    convolution folded into it (``search_space.bn_fold``)."""
    layout = "nchw"
    pending = None  # the BatchNorm still to apply: (module, shuffle branches)
    fold = fold and bool(run.steps)
    shift = None  # the depth-wise kernel's centring of its channel-major output
    if run.spatial is not None:
        conv = modules[run.spatial]
        if kernels.is_depthwise3x3(conv) and kernels.usable(x):
            x, shift = kernels.DepthwiseConv3x3.apply(x, conv.weight, fold)
        else:
            x = _grouped_spatial(x, conv)
        pending = (modules[run.lead[0]], run.lead[1])
    n, _, h, w = x.shape
    if fold:
        return _folded_steps(modules, run, x, pending, (n, h, w), shift)
    if pending is None:  # the run opens with a 1x1 convolution: go channel-major first
        x = x.transpose(0, 1).reshape(x.shape[1], n * h * w)
        layout = "cp"
    for ci, bi, g, groups in run.steps:
        if pending is not None:
            x = _bn(x, *pending, layout, "cp", False, n, h, w)
            layout = "cp"
        x = group_conv1x1(x, modules[ci].weight, groups)
        pending = (modules[bi], g)
    return _bn(x, *pending, layout, "nchw", run.relu, n, h, w)


def _grouped_spatial(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A spatial convolution that is not channel-wise, NCHW in and out, computed on
    channels-last input: on the CPU, ATen's grouped 3x3 convolution there took about half
    the time of the NCHW one, forward and backward, with 2 channels a group (C = 96-242,
    16x16, batch 64, one thread: 27-73 ms against 48-120 ms), 0.67x at 12 a group; the
    layout copies each way cost 2-4 ms. (The fused path's blocks hand each other
    channels-last tensors, which is why whole IGCV1 nets ran faster fused.)"""
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation,
                    conv.groups).contiguous()


def _folded_steps(modules: nn.Module, run: Run, x: torch.Tensor, pending,
                  nhw: tuple[int, int, int], shift: torch.Tensor | None) -> torch.Tensor:
    """The 1x1 convolutions of a run with their BatchNorms folded in, and the BatchNorm
    still pending from its spatial convolution folded into the first. ``x``: the
    depth-wise kernel's channel-major output minus ``shift`` (its centring), read in
    place; else any (N, C, H, W), made channel-major and centred in one copy. Shuffles are
    views; the last step writes the run's output channel-major, shuffled, [ReLU]: an (N, C,
    H, W) view of (C, N, H, W) storage, which the next run's depth-wise kernel and group
    products read in place (every other consumer takes any strides). Each BatchNorm but
    the last writes its output without beta (the next one cancels it), so that every
    folded BatchNorm's input has mean ~0 (``search_space.bn_fold``: cancellation)."""
    if shift is None:
        x, offset = channel_order.centred_channel_major(x)
    else:
        x, offset = x.permute(1, 0, 2, 3).reshape(x.shape[1], -1), shift
    *middle, (ci, bi, g, groups) = run.steps
    link = None  # what a step and the next hand each other (bn_fold.Link)
    for s, (conv_i, bn_i, g_i, groups_i) in enumerate(middle):
        bn = modules[bn_i]
        nxt_conv, nxt_groups = run.steps[s + 1][0], run.steps[s + 1][3]
        nxt = bn_fold.Link(g_i, nxt_groups, modules[nxt_conv].weight.shape[1])
        y = bn_fold.conv_bn(x, modules[conv_i].weight, groups_i, bn, lead=pending,
                            offset=offset, add_beta=False, links=(link, nxt))
        x = channel_order.shuffled(y, g_i)
        offset = channel_order.shuffled(bn.bias.detach().double().view(-1, 1), g_i).reshape(-1)
        pending, link = None, nxt
    y = bn_fold.conv_bn(x, modules[ci].weight, groups, modules[bi], lead=pending, offset=offset,
                        write=(g, run.relu), links=(link, None))
    n, h, w = nhw
    return y.view(-1, n, h, w).permute(1, 0, 2, 3)
