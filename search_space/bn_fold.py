"""Group 1x1 convolutions with the BatchNorms around them folded in (training: batch
statistics), for the grouped path's runs (``search_space.grouped``, ``fold=True``).

Why: on the grouped path each BatchNorm after a group 1x1 convolution takes passes of its
own over the activation (statistics, then the output), and BatchNorm was the largest
operation kind of the IGCV2 training step (docs/performance.md, ``kernels`` block; issue
24). Its batch statistics follow from the convolution's input instead: for u = W_g x per
group g (W_g: K_out x K_in), with mu and S the mean and biased covariance of x over its
P = N*H*W pixels,

    mean_u = W_g mu,    var_u[c] = w_c^T S w_c,

so the one product over the whole activation besides the convolution is the Gram matrix
x x^T (G * K_in^2 * P multiply-adds, K_in^2 values written per group), and the BatchNorm's
output is one ``torch.baddbmm``: y = W' (x - mu) + beta with W' = diag(gamma / sqrt(var_u +
eps)) W_g. A BatchNorm between the run's spatial convolution and its first 1x1 convolution
folds in too, as diag(gamma0 / sd(z)) on W's columns (its beta0 cancels in the next
BatchNorm; its statistics are the Gram matrix's diagonal). Channel shuffles are views: the
next convolution reads the shuffled channels as a strided batch of matrices where that is
one (branches of the shuffle = its groups' input channels), else ``reshape`` copies once.

Cancellation: S = x x^T / P - mu mu^T loses the digits of mu^2 / var in float32 (at 77, a
relative error of 3e-5 in S, measured). So every input is kept near mean 0: a BatchNorm
output that feeds another folded BatchNorm is written without its beta (y - beta: beta
cancels there; its gradient is 0), and the run's input is centred by a mean estimated on
an eighth of its images in the copy that makes it channel-major (a constant: the function
does not depend on it). The subtraction is in float64, the means are float32 sums of 256
values summed in float64; where a channel's squared mean still exceeds ``CENTRE_RATIO``
times its variance the Gram matrix is taken again of the input centred exactly (one pass
more, only then).

Backward: hand-written (autograd through the formulation, exact by construction, was the
first version and ran 0.86x the unfolded grouped path on whole nets: it wrote the three
gradients of x separately and summed them): dW' = dy (x - mu)^T, and dx = W'^T (dy -
mean(dy)) + (dS + dS^T)(x - mu) / P: one baddbmm and one bmm, no pass for the mean's
broadcast or for summing gradients; the small float64 function from (W, gamma, gamma0, S)
to W' has its backward written out too (``_fold_backward``). tests/test_bn_fold.py checks
it against nn.BatchNorm2d + conv2d(groups) and gradcheck.

The products over the pixels (the Gram matrix with the input's sums, the output, and the
backward's dy (x - mu)^T and dx) are ``search_space.kernels``' group GEMMs
(``group_gemm.cpp``) where the extension builds, else ``torch.bmm``/``baddbmm``: ATen's
took up to 2.5x as long at these shapes (the Gram matrix; about even for the outputs) and
copied a shuffled operand first (``benchmarks/group_gemm.py``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from . import kernels
from .channel_order import shuffle_rows, shuffled, unshuffle, unshuffled_grad

#: Squared mean over variance above which the Gram matrix is taken of the exactly centred
#: input: S's relative error is then below about 4e-7 * (1 + CENTRE_RATIO) in float32.
CENTRE_RATIO = 2.0
SUM_RUN = 256  # values summed in float32 before the float64 sum (group_mean)


def group_mean(xg: torch.Tensor) -> torch.Tensor:
    """(G, K) float64 means over the last axis: float32 sums over runs of ``SUM_RUN``
    values, then theirs in float64 (one float32 sum lost a digit against BatchNorm's; a
    float64 sum of every value took 17x as long at 16x16 and 36x at 32x32)."""
    p = xg.shape[-1]
    runs = xg.unflatten(-1, (-1, SUM_RUN)) if p % SUM_RUN == 0 else xg.unsqueeze(-1)
    return runs.sum(-1).sum(-1, dtype=torch.float64) / p


def _moments(xg: torch.Tensor, pre: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, covariance) of a (G, K, P) batch over its pixels, float64, biased. ``pre``:
    its Gram matrix and sums, already taken (``Link``)."""
    p = xg.shape[2]
    if pre is None and (ext := kernels.group_gemms(xg)) is not None:
        pre = ext.group_nt(xg, xg, True)
    if pre is not None:
        gram, sums = pre
        mu = sums / p
    else:
        mu = group_mean(xg)
        gram = torch.bmm(xg, xg.transpose(1, 2)).double()
    return mu, gram / p - mu[:, :, None] * mu[:, None, :]


def group_stats(xg: torch.Tensor, pre: tuple[torch.Tensor, torch.Tensor] | None = None):
    """Of a (G, K, P) batch of channel groups over its P pixels: (xs, m, mu, cov), with
    x - mu = xs - m: xs is x (m = mu) or, where some channel's mean is too large for the
    Gram matrix (``CENTRE_RATIO``), x centred by its mean in float32 (m the remainder); mu
    the mean and cov the biased covariance, float64. ``pre``: x's Gram matrix and sums,
    already taken."""
    mu, cov = _moments(xg, pre)
    if not bool(((mu * mu) > CENTRE_RATIO * cov.diagonal(dim1=1, dim2=2)).any()):
        return xg, mu, mu, cov
    shift = mu.to(xg.dtype)
    xc = xg - shift[:, :, None]
    m, cov = _moments(xc)
    return xc, m, shift.double() + m, cov


def _affine(w: torch.Tensor, x: torch.Tensor, b: torch.Tensor,
            w2: torch.Tensor | None = None, x2: torch.Tensor | None = None, *,
            rows: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """``w x (+ w2 x2) + b`` [ReLU] per group: w (G, M, K), x (G, K, P), b (G, M, 1) -> (G,
    M, P); with ``rows`` (G * M int64), output (g, m) is flat row ``rows[g * M + m]``."""
    ext = kernels.group_gemms(x) if x2 is None else kernels.group_gemms(x, x2)
    if ext is not None:
        return ext.group_nn(w, x, w2, x2, b.reshape(b.shape[:2]), rows, relu)
    y = torch.baddbmm(b, w, x)
    if w2 is not None:
        y.baddbmm_(w2, x2)
    if relu:
        y.relu_()
    if rows is None:
        return y
    out = torch.empty_like(y)
    out.view(-1, y.shape[-1]).index_copy_(0, rows, y.view(-1, y.shape[-1]))
    return out


def _cross(dy: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dy xs^T, dy 1) per group, float64: dy (G, M, P), xs (G, K, P)."""
    ext = kernels.group_gemms(dy, xs)
    if ext is not None:
        return tuple(ext.group_nt(dy, xs, False))
    return torch.bmm(dy, xs.transpose(1, 2)).double(), dy.sum(2).double()


def _affine_linked(w: torch.Tensor, xs: torch.Tensor, b: torch.Tensor, link: Link | None
                   ) -> torch.Tensor:
    """``_affine(w, xs, b)``, a run's middle step's output; with ``link``, the next step's
    input moments taken in the same pass (:class:`Link`)."""
    ext = None if link is None else _linked(xs)
    if ext is None:
        return _affine(w, xs, b)
    out = xs.new_empty(xs.shape[0], w.shape[1], xs.shape[2])
    nxt = _view(lambda: shuffled(out, link.branches).view(link.groups, link.k, xs.shape[2]))
    if nxt is None:
        return _affine(w, xs, b)
    link.moments = (nxt, *ext.group_nn_gram(w, xs, None, None, b.reshape(b.shape[:2]), out,
                                            nxt))
    return out


@torch.no_grad()
def update_running(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, p: int) -> None:
    """BatchNorm2d's update: momentum (or the cumulative average), unbiased variance."""
    if not bn.track_running_stats or bn.running_mean is None:
        return
    bn.num_batches_tracked.add_(1)
    f = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), f)
    bn.running_var.lerp_((var * (p / max(p - 1, 1))).to(bn.running_var.dtype), f)


def _fold(w, gamma, cov, g0, eps: float, eps0: float):
    """The small float64 function, forward: W' (G, K_out, K_in) with y = W' (x - mu) + beta
    and the BatchNorm's batch variance (G, K_out), from the 1x1 weight ``w`` (G, K_out,
    K_in), ``gamma`` (G, K_out), the input's covariance (G, K_in, K_in) and, with a lead
    BatchNorm, its gamma ``g0`` (G, K_in; else None): the convolution then reads
    ChannelShuffle(g0 (z - mu) / sd(z) + beta0). Returns (W', var, what the backward needs).
    """
    w_in, rd = w, None
    if g0 is not None:
        rd = torch.rsqrt(cov.diagonal(dim1=1, dim2=2) + eps0)
        w_in = w * (g0 * rd)[:, None, :]
    wc = torch.bmm(w_in, cov)
    var = (wc * w_in).sum(2)
    r = torch.rsqrt(var + eps)
    return (gamma * r)[:, :, None] * w_in, var, (w, gamma, g0, w_in, wc, r, rd)


def _fold_backward(dwf, saved):
    """``_fold``'s backward by hand, dW' to (dw, dgamma, dcov, dg0): a folded step's fixed
    cost (forward and backward at 64 pixels, C = 144) was 0.93 ms against 1.14 ms with
    autograd over ``_fold`` (and 0.31 ms unfolded)."""
    w, gamma, g0, w_in, wc, r, rd = saved
    ds = (dwf * w_in).sum(2)  # d(gamma r)
    dvar = -0.5 * ds * gamma * r ** 3
    dw_in = (gamma * r)[:, :, None] * dwf + 2 * dvar[:, :, None] * wc
    dcov = torch.bmm(w_in.transpose(1, 2), dvar[:, :, None] * w_in)
    if g0 is None:
        return dw_in, ds * r, dcov, None
    da = (dw_in * w).sum(1)  # (G, K_in): a = g0 rd scales W's column k
    dcov = dcov + torch.diag_embed(-0.5 * da * g0 * rd ** 3)
    return dw_in * (g0 * rd)[:, None, :], ds * r, dcov, da * rd


class Link:
    """What a run's folded step hands the next besides autograd's values: its output
    product takes the next step's input Gram matrix and sums in the same pass
    (``group_nn_gram``: the same values bit for bit), so the next step does not read that
    output back. Where the shuffle between them makes the next step's input a copy (K_l
    not its branches) there is no view to take them of, and the next step takes its own.
    The next step uses them only if they were taken of the very tensor it gets (same
    storage, shape and strides). The fused loop is one thread's: with more, nothing is
    handed on. (The backward's like of it, the dx product taking the step before's cross
    product, ran 0.75-0.9x the two passes: ``group_gemm.cpp``.)"""

    __slots__ = ("branches", "groups", "k", "moments")

    def __init__(self, branches: int, groups: int, k: int) -> None:
        # the shuffle between the steps; the next step's groups and input channels a group
        self.branches, self.groups, self.k = branches, groups, k
        self.moments: tuple | None = None

    def take(self, xg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The (Gram matrix, sums) handed on, where they were taken of ``xg``; once."""
        if self.moments is None:
            return None
        v, gram, sums = self.moments
        self.moments = None
        same = (v.data_ptr() == xg.data_ptr() and v.shape == xg.shape
                and v.stride() == xg.stride())
        return (gram, sums) if same else None


def _linked(*operands: torch.Tensor):
    """The extension, where a fused product (``Link``) can run on ``operands``."""
    return kernels.group_gemms(*operands) if torch.get_num_threads() == 1 else None


def _view(make) -> torch.Tensor | None:
    """``make()``, a view, or None where the layout has none."""
    try:
        return make()
    except RuntimeError:
        return None


class ConvBN(torch.autograd.Function):
    """``apply(x, weight, gamma, beta, gamma0, beta0, cfg) -> (y, var, mu, var_in)``, cfg =
    (groups, eps, lead, add_beta, write, link_in, link_out): the folded convolution and
    BatchNorm(s) of
    :func:`conv_bn`, y (G, K_out, P), or with ``write`` = (branches, relu) the (C_out, P)
    matrix of ChannelShuffle(branches)(y) [ReLU]. var (the BatchNorm's), mu and var_in
    (the input's, by group) are float64 batch statistics without gradient. Without
    ``add_beta`` y lacks beta, and beta's gradient is 0; beta0's is always 0 (both cancel
    in the next BatchNorm), returned as zeros so that an optimizer treats them as the
    reference's. ``link_in``/``link_out``: the :class:`Link` with the step before/after in
    the run (or None)."""

    @staticmethod
    def forward(ctx, x, weight, gamma, beta, gamma0, beta0, cfg):
        groups, eps, lead, add_beta, write, link_in, link_out = cfg
        xg = x.reshape(groups, weight.shape[1], x.shape[-1])
        xs, m, mu, cov = group_stats(xg, None if link_in is None else link_in.take(xg))
        w = weight.detach().double().view(groups, -1, weight.shape[1])
        g0 = None if lead is None else shuffled(gamma0.detach().double().view(-1, 1),
                                                lead[0]).reshape(mu.shape)
        wf, var, ctx.saved = _fold(w, gamma.detach().double().view(groups, -1), cov, g0, eps,
                                   None if lead is None else lead[1])
        ctx.cfg, ctx.shape = cfg, x.shape
        b = -torch.bmm(wf, m[:, :, None])
        if add_beta:
            b += beta.detach().view(groups, -1, 1)
        w32 = wf.to(x.dtype)
        if write is None:
            y = _affine_linked(w32, xs, b.to(x.dtype), link_out)
            ctx.save_for_backward(xs, w32, m.to(x.dtype), None)
        else:
            branches, relu = write
            rows = None if branches == 1 else shuffle_rows(weight.shape[0], branches)
            y = _affine(w32, xs, b.to(x.dtype), rows=rows, relu=relu).view(-1, xs.shape[2])
            ctx.save_for_backward(xs, w32, m.to(x.dtype), y if relu else None)
        stats = (var, mu, cov.diagonal(dim1=1, dim2=2))
        ctx.mark_non_differentiable(*stats)
        return (y, *stats)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, *_):
        xs, wf, m, y = ctx.saved_tensors
        _, _, lead, add_beta, write, _, _ = ctx.cfg
        p = xs.shape[2]
        if write is None:
            dwp, db = _cross(dy, xs)  # dy (x - mu)^T = dy xs^T - (dy 1) m^T
        else:
            dy, dwp, db = _unshuffled_cross(dy, y, write[0], xs)
        dwp -= db[:, :, None] * m.double()[:, None, :]
        db = db.to(dy.dtype)
        dw, dgamma, dcov, dg0 = _fold_backward(dwp, ctx.saved)
        a = ((dcov + dcov.transpose(1, 2)) / p).to(dy.dtype)
        c = -torch.bmm(wf.transpose(1, 2), db[:, :, None]) / p - torch.bmm(a, m[:, :, None])
        dx = _affine(wf.transpose(1, 2), dy, c, a, xs)
        dt = wf.dtype
        dgamma = dgamma.reshape(-1).to(dt)
        dbeta = db.reshape(-1) if add_beta else torch.zeros_like(dgamma)
        if lead is not None:
            dg0 = unshuffle(dg0.reshape(-1), lead[0]).to(dt)
        lead = (None, None) if lead is None else (dg0, torch.zeros_like(dg0))
        return (dx.reshape(ctx.shape), dw.to(dt).view(-1, *dw.shape[2:], 1, 1), dgamma, dbeta,
                *lead, None)


def conv_bn(x: torch.Tensor, weight: torch.Tensor, groups: int, bn: nn.BatchNorm2d, *,
            lead: tuple[nn.BatchNorm2d, int] | None = None, offset: torch.Tensor | None = None,
            add_beta: bool = True, write: tuple[int, bool] | None = None,
            links: tuple[Link | None, Link | None] = (None, None)) -> torch.Tensor:
    """BatchNorm2d (training) of ``conv2d(groups)`` with a 1x1 ``weight`` (C_out, K_in, 1, 1),
    on ``x`` (C_in, P) channel-major or any tensor that reshapes to its (G, K_in, P) groups:
    (G, K_out, P), channel g * K_out + k of the output at [g, k], unshuffled.

    ``lead``: (a BatchNorm, its shuffle's branches) between ``x`` and the convolution,
    folded in too: the convolution reads ChannelShuffle(BatchNorm(x)), ``x`` in that
    BatchNorm's own channel order. ``offset`` (C_in,), no gradient: what ``x`` lacks of the
    values it stands for (a subtracted estimate of the mean, or the beta the BatchNorm
    before left out), in ``x``'s order; it enters the running means only. ``add_beta``:
    False where the next operation is another folded BatchNorm (which cancels it).
    ``write`` = (branches, relu): the output as a new (C_out, P) matrix in the order
    ChannelShuffle(branches) puts it, [ReLU]: in the layout the next run reads, with no
    copy of its own (a run's last BatchNorm). ``links``: the :class:`Link` with the step
    before and the step after in the run."""
    xin = x if lead is None else shuffled(x, lead[1])
    gamma0, beta0 = (None, None) if lead is None else (lead[0].weight, lead[0].bias)
    cfg = (groups, bn.eps, None if lead is None else (lead[1], lead[0].eps), add_beta, write,
           *links)
    y, var, mu, var_in = ConvBN.apply(xin, weight, bn.weight, bn.bias, gamma0, beta0, cfg)
    p = x.shape[-1]
    with torch.no_grad():
        mu = mu.reshape(-1)
        if lead is not None:  # the lead BatchNorm's statistics, in its own channel order
            mu = unshuffle(mu, lead[1])
            mu0 = mu if offset is None else mu + offset
            update_running(lead[0], mu0, unshuffle(var_in.reshape(-1), lead[1]), p)
            mu_in = shuffled(beta0.detach().double().view(-1, 1), lead[1]).reshape(-1)
        else:
            mu_in = mu if offset is None else mu + offset
        w = weight.detach().double().view(groups, -1, weight.shape[1])
        mean = torch.bmm(w, mu_in.view(groups, -1, 1))
        update_running(bn, mean.reshape(-1), var.reshape(-1), p)
    return y


def _unshuffled_cross(dy: torch.Tensor, y: torch.Tensor | None, branches: int,
                      xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g, dy' xs^T, dy' 1) for the gradient ``dy`` of a shuffled (C, P) output
    (``write``): g = dy' the (G, M, P) gradient in the unshuffled order through the ReLU whose
    output ``y`` is (None: no ReLU), and :func:`_cross` of it. Where the extension builds,
    one pass (``group_nt_masked``: each run of dy' is written and multiplied while in L1;
    the same values as the two steps, bit for bit)."""
    p = xs.shape[2]
    dy = dy.reshape(-1, p)
    c = dy.shape[0]
    src = dy.view(c // branches, branches, p).transpose(0, 1)
    mask = None if y is None else y.view(c // branches, branches, p).transpose(0, 1)
    ext = kernels.group_gemms(src, xs) if mask is None else kernels.group_gemms(src, mask, xs)
    if ext is not None:
        return tuple(ext.group_nt_masked(src, mask, xs, xs.shape[0]))
    g = unshuffled_grad(src, mask).view(xs.shape[0], -1, p)
    return (g, *_cross(g, xs))
