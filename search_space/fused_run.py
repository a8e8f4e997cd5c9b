"""One run of a FastBlock as one affine map: the fused path's arithmetic.

A run (``search_space.plan.Run``: a spatial or 1x1 convolution with the per-pixel linear
layers after it, up to the next ReLU or spatial convolution) is ``y = A x + b`` on the
channels-last ``(pixels, C)`` matrix. :func:`compose` builds A and b from the run's group
1x1 convolutions W_l (eq. 4), shuffles P_l and BatchNorms, with the BatchNorms' batch
statistics taken from the mean and covariance of x alone; :class:`TrainRun` is the
training step's autograd function (the spatial convolution, one Gram matrix, the GEMM and
its three-GEMM backward). ``search_space.fast`` says why and how; this module holds the
arithmetic it runs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .plan import Run as _Run


# The two caches below create their tensors outside inference mode: a cached inference
# tensor (first made by an eval pass under torch.inference_mode, e.g. a latency measurement)
# cannot be saved for backward by a later training step in the same process.
@functools.lru_cache(maxsize=256)
def _shuffle_perm(c: int, g: int, device: torch.device) -> torch.Tensor:
    # ChannelShuffle: new channel k*g + i is old channel i*(c/g) + k.
    with torch.inference_mode(False):
        return torch.arange(c, device=device).view(g, c // g).t().reshape(-1)


@functools.lru_cache(maxsize=256)
def _eye(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):
        return torch.eye(n, dtype=dtype, device=device)


def _dense(w: torch.Tensor, groups: int) -> torch.Tensor:
    """The (cout, cin) block-diagonal matrix of a group 1x1 kernel (cout, cin/groups, 1, 1)."""
    cout, k = w.shape[0], w.shape[1]
    if groups == 1:
        return w.reshape(cout, k)
    wg = w.reshape(groups, cout // groups, k)
    eye = _eye(groups, w.dtype, w.device)
    return torch.einsum("gok,gh->gohk", wg, eye).reshape(cout, groups * k)


_Stats = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


def compose(
    run: _Run,
    bns: Sequence[nn.BatchNorm2d],
    params: Sequence[torch.Tensor],
    cov: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, _Stats]:
    """A, b of a run's affine part (float64), and each BN's batch (mean, var, A before it).

    ``params``: float64 copies of the lead BN's and the steps' parameters, in
    ``FastBlock._run_params`` order. ``cov``: covariance of the run's input in training mode,
    whose input is then centred (the means follow as ``A_pre @ mean``); None: eval mode,
    the running statistics.
    """
    dev = params[0].device
    A: torch.Tensor | None = None  # None: the identity, kept implicit
    b = torch.zeros(run.cin, dtype=torch.float64, device=dev)
    stats: _Stats = []
    it = iter(params)

    def norm(A, b, bn, gamma, beta):
        if cov is None:
            mean, var = bn.running_mean.double(), bn.running_var.double()
        else:
            mean = b
            var = torch.diagonal(cov) if A is None else ((A @ cov) * A).sum(1)
            var = var.clamp(min=0)
            stats.append((mean, var, A))
        scale = gamma * torch.rsqrt(var + bn.eps)
        A = torch.diag(scale) if A is None else scale[:, None] * A
        return A, scale * (b - mean) + beta

    def shuffle(A, b, g):
        if g == 1:
            return A, b
        perm = _shuffle_perm(b.shape[0], g, dev)
        return A[perm], b[perm]

    k = 0
    if run.lead is not None:
        A, b = norm(A, b, bns[k], next(it), next(it))
        A, b = shuffle(A, b, run.lead[1])
        k += 1
    for _, _, g, groups in run.steps:
        w = _dense(next(it), groups)
        A, b = (w, w @ b) if A is None else (w @ A, w @ b)
        A, b = norm(A, b, bns[k], next(it), next(it))
        A, b = shuffle(A, b, g)
        k += 1
    assert A is not None
    return A, b, stats


@torch.no_grad()
def _update_running(
    bns: Sequence[nn.BatchNorm2d], stats: _Stats, mu: torch.Tensor, n: int
) -> None:
    """BatchNorm2d's running-statistics update (unbiased variance).

    ``mu``: the mean of the run's input, which :func:`compose` saw centred. Only the first BN's
    input depends on it; every later one follows a BN, which removed it.
    """
    track = [(k, bn) for k, bn in enumerate(bns)
             if bn.track_running_stats and bn.running_mean is not None]
    if not track:
        return
    mean0, _, A_pre = stats[0]
    means = [mean0 + (mu if A_pre is None else A_pre @ mu)] + [s[0] for s in stats[1:]]
    unbiased = n / max(n - 1, 1)
    new = [means[k] for k, _ in track] + [stats[k][1] * unbiased for k, _ in track]
    # One cast and a few multi-tensor ops: on a GPU, each small op is a kernel launch.
    new = torch.cat(new).to(bns[0].running_mean.dtype).split([t.numel() for t in new])
    running = [bn.running_mean for _, bn in track] + [bn.running_var for _, bn in track]
    torch._foreach_add_([bn.num_batches_tracked for _, bn in track], 1)
    momenta = {bn.momentum for _, bn in track}
    if len(momenta) == 1 and None not in momenta:
        torch._foreach_lerp_(running, list(new), momenta.pop())
        return
    for i, (_, bn) in enumerate(track + track):
        f = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        running[i].lerp_(new[i], f)


def _dtypes(x: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(dtype of the convolutions and the output, as autocast would pick; dtype of the GEMMs:
    at least float32, so that statistics of bf16 activations keep float32 accuracy)."""
    dev = x.device.type
    cdt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    return cdt, torch.promote_types(cdt, torch.float32)


def _matrix(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N*H*W, C); a view when x is channels_last."""
    n, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(n * h * w, c)


class TrainRun(torch.autograd.Function):
    """A run in training mode: [conv] -> centre -> Gram matrix -> statistics -> one GEMM.

    The affine part's input X is centred in place (it is the run's own conv output, or a
    copy): every BN of the run removes the mean anyway, and the Gram matrix and gradients
    of centred data keep float32 accuracy where raw second moments would cancel.
    """

    @staticmethod
    def forward(ctx, x, run, conv, bns, *params):
        cdt, wdt = _dtypes(x)
        with torch.autocast(x.device.type, enabled=False):
            if conv is not None:
                w, params = params[0], params[1:]
                h = F.conv2d(x.to(cdt), w.to(cdt), None, conv.stride, conv.padding,
                             conv.dilation, conv.groups)
            else:
                h = x
            n, _, hh, ww = h.shape
            X = _matrix(h)
            mu = X.to(wdt).mean(0)
            owned = conv is not None and X.dtype == wdt
            X = X.sub_(mu) if owned else X.to(wdt) - mu  # centred, ours
            S = X.t() @ X
            with torch.enable_grad():
                S64 = S.double().requires_grad_()
                leaves = [p.detach().double().requires_grad_() for p in params]
                A, b, stats = compose(run, bns, leaves, S64 / X.shape[0])
            _update_running(bns, stats, mu.double(), X.shape[0])
            y = torch.addmm(b.detach().to(wdt), X, A.detach().to(wdt).t())
            if run.relu:
                y.relu_()
            y = y.to(cdt)
        ctx.save_for_backward(x if conv is not None else None,
                              w if conv is not None else None, X, y if run.relu else None)
        ctx.graph = (A, b, S64, leaves)
        ctx.conv, ctx.relu, ctx.cdt, ctx.shape = conv, run.relu, cdt, (n, hh, ww)
        ctx.dtype_in, ctx.pdtypes = x.dtype, [p.dtype for p in params]
        return y.view(n, hh, ww, run.cout).permute(0, 3, 1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, w, X, y = ctx.saved_tensors
        A, b, S64, leaves = ctx.graph
        del ctx.graph
        n, hh, ww = ctx.shape
        gy = _matrix(gy)
        if ctx.relu:
            gy = torch.ops.aten.threshold_backward(gy, y, 0)
        with torch.autocast(gy.device.type, enabled=False):
            g = gy.to(X.dtype)
            dA, db = g.t() @ X, g.sum(0)
            grads = torch.autograd.grad(
                (A, b), (S64, *leaves), (dA.double(), db.double()), allow_unused=True
            )
            dS, Aw = grads[0], A.detach().to(X.dtype)
            # d/dX of the centred input: X dS_sym + (G - mean G) A, X being centred already.
            dX = torch.addmm(-(db / X.shape[0]) @ Aw, X, (dS + dS.t()).to(X.dtype))
            dX.addmm_(g, Aw)
            dh = dX.view(n, hh, ww, -1).permute(0, 3, 1, 2)
            dparams = [
                None if d is None else d.to(t)
                for d, t in zip(grads[1:], ctx.pdtypes, strict=True)
            ]
            conv = ctx.conv
            if conv is None:
                return (dh.to(ctx.dtype_in), None, None, None, *dparams)
            cdt = ctx.cdt
            dx, dw, _ = torch.ops.aten.convolution_backward(
                dh.to(cdt), x.to(cdt), w.to(cdt), None, conv.stride, conv.padding,
                conv.dilation, False, [0, 0], conv.groups, [ctx.needs_input_grad[0], True, False],
            )
        dx = None if dx is None else dx.to(x.dtype)
        return (dx, None, None, None, dw.to(w.dtype), *dparams)


class NoCtx:
    """Stands in for the autograd context when a training-mode run needs no gradient."""

    def save_for_backward(self, *tensors):
        pass
