"""A group 1x1 convolution with the BatchNorm after it folded in (training: batch statistics).

Why: on the grouped path (``search_space.grouped``) each BatchNorm after a group 1x1
convolution takes passes of its own over the activation (statistics, then the output), and
BatchNorm was the largest operation kind of the IGCV2 training step (docs/performance.md,
``kernels`` block; issue 24). Its batch statistics follow from the convolution's input
instead: for y = W_g x per group g (W_g: K_out x K_in), with mu and S the mean and
(biased) covariance of x over the P = N*H*W pixels,

    mean_y = W_g mu,    var_y[c] = w_c^T S w_c,

so the one product that needs the whole activation besides the convolution itself is the
Gram matrix x x^T, a ``torch.bmm`` of G * K_in^2 * P multiply-adds that writes K_in^2 values
per group. The normalised output is then one ``torch.baddbmm`` of
W' = diag(gamma / sqrt(var_y + eps)) W_g and b' = beta - gamma * mean_y / sqrt(var_y + eps).
The channel shuffle after the BatchNorm is a view: the next group convolution reads the
shuffled channels as a strided batch of matrices where that is one (branches of the
shuffle = input channels of the next group), else ``reshape`` copies once.

Cancellation: S = x x^T / P - mu mu^T loses the digits of mu^2 / var in float32. The
subtraction is in float64; where some channel's mean is over ``CENTRE_RATIO`` of its
standard deviation the Gram matrix is taken again of the centred input (one more pass, only
then). The inputs here are BatchNorm outputs (mean beta, sd gamma) or post-ReLU
activations (mean about 0.6 sd), far from it.

The backward is autograd's through this formulation (exact by construction): the Gram's
and the baddbmm's bmm backwards, and a small float64 graph of the statistics.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

#: Squared mean over variance above which the Gram matrix is taken of the centred input
#: (float32 then keeps at least ~5 of its ~7 digits in var_y).
CENTRE_RATIO = 100.0


def group_stats(xg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mean (G, K) and biased covariance (G, K, K), float64, of a (G, K, P) batch of
    channel groups over its P pixels; and the centred input where it was needed (else None).
    """
    p = xg.shape[2]
    mu = xg.sum(2).double() / p
    gram = torch.bmm(xg, xg.transpose(1, 2)).double() / p
    cov = gram - mu[:, :, None] * mu[:, None, :]
    if bool(((mu * mu) > CENTRE_RATIO * cov.diagonal(dim1=1, dim2=2)).any()):
        xc = xg - mu.to(xg.dtype)[:, :, None]
        return mu, torch.bmm(xc, xc.transpose(1, 2)).double() / p, xc
    return mu, cov, None


@torch.no_grad()
def update_running(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, p: int) -> None:
    """BatchNorm2d's update: momentum (or the cumulative average), unbiased variance."""
    if not bn.track_running_stats or bn.running_mean is None:
        return
    bn.num_batches_tracked.add_(1)
    f = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), f)
    bn.running_var.lerp_((var * (p / max(p - 1, 1))).to(bn.running_var.dtype), f)


class ConvBN(torch.autograd.Function):
    """``apply(x, weight, gamma, beta, groups, eps) -> (y, mean, var)``: the folded
    convolution and BatchNorm of :func:`conv_bn`; mean and var (the output's batch
    statistics, biased, float64) carry no gradient.

    Backward: with dW', db' of the baddbmm (dW' = dy x^T, db' = dy summed over pixels),
    autograd through the small float64 graph gives dS and dmu of the statistics, and
    dx = W'^T dy + (dS + dS^T) x / P + (dmu - (dS + dS^T) mu) / P: a baddbmm and a bmm, no
    pass for the mean's broadcast or for summing three gradients."""

    @staticmethod
    def forward(ctx, x, weight, gamma, beta, groups, eps):
        p = x.shape[-1]
        cout, kin = weight.shape[:2]
        xg = x.reshape(groups, kin, p)
        mu, cov, xc = group_stats(xg)
        with torch.enable_grad():
            leaves = [t.detach().double().requires_grad_() for t in (weight, gamma, beta)]
            leaves += [mu.requires_grad_(), cov.requires_grad_()]
            w, g, b = leaves[0].view(groups, -1, kin), *(t.view(groups, -1) for t in leaves[1:3])
            mean = torch.bmm(w, mu[:, :, None])[:, :, 0]  # (G, K_out)
            var = (torch.bmm(w, cov) * w).sum(2)
            scale = g * torch.rsqrt(var + eps)
            folded = (scale[:, :, None] * w, b - scale * mean)
        wf, bf = (t.detach().to(x.dtype) for t in folded)
        ctx.graph = (folded, leaves)
        ctx.save_for_backward(xg if xc is None else xc, wf)
        ctx.centred = xc is not None
        ctx.shape = x.shape
        y = torch.baddbmm(bf[:, :, None], wf, xg)
        stats = mean.detach().reshape(cout), var.detach().reshape(cout)
        ctx.mark_non_differentiable(*stats)
        return (y, *stats)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, _dmean, _dvar):
        xg, wf = ctx.saved_tensors
        (wp, bp), leaves = ctx.graph
        p = xg.shape[2]
        dwp = torch.bmm(dy, xg.transpose(1, 2))
        if ctx.centred:  # dW' is of x; x = xc + mu
            dwp += dy.sum(2)[:, :, None] * leaves[3].detach().to(dy.dtype)[:, None, :]
        dbp = dy.sum(2)
        grads = torch.autograd.grad((wp, bp), leaves, (dwp.double(), dbp.double()))
        dw, dgamma, dbeta, dmu, dcov = grads
        a = (dcov + dcov.transpose(1, 2)) / p
        mu = leaves[3].detach()
        c = dmu / p - (0.0 if ctx.centred else torch.bmm(a, mu[:, :, None])[:, :, 0])
        dx = torch.baddbmm(c.to(dy.dtype)[:, :, None], wf.transpose(1, 2), dy)
        dx.baddbmm_(a.to(dy.dtype), xg)
        return (dx.reshape(ctx.shape), *(t.to(wf.dtype) for t in (dw, dgamma, dbeta)), None,
                None)


def conv_bn(x: torch.Tensor, weight: torch.Tensor, groups: int,
            bn: nn.BatchNorm2d) -> torch.Tensor:
    """BatchNorm2d (training) of ``conv2d(groups)`` with a 1x1 ``weight`` (C_out, K_in, 1, 1),
    on ``x`` (C_in, P) channel-major or any tensor that reshapes to its (G, K_in, P) groups:
    (G, K_out, P), channel g * K_out + k of the output at [g, k], unshuffled."""
    y, mean, var = ConvBN.apply(x, weight, bn.weight, bn.bias, groups, bn.eps)
    update_running(bn, mean, var, x.shape[-1])
    return y


def shuffled(y: torch.Tensor, branches: int) -> torch.Tensor:
    """The (C, P) channels of ``y`` (any shape (..., P) with C rows) after ChannelShuffle
    with ``branches``, as a (C / branches, branches, P) view: row-major over its first two
    axes it is the shuffled channel order. No copy."""
    p = y.shape[-1]
    return y.reshape(branches, -1, p).transpose(0, 1)


def to_nchw(y: torch.Tensor, relu: bool, n: int, h: int, w: int) -> torch.Tensor:
    """A (C/b, b, P) shuffled view (or a (C, P) matrix) as a new NCHW tensor, [ReLU]:
    one copy."""
    y4 = y.view(*y.shape[:-1], n, h * w)
    c = y.shape[0] * (y.shape[1] if y.dim() == 3 else 1)
    out = y4.permute(-2, *range(y.dim() - 1), -1).reshape(n, c, h, w)
    return out.relu_() if relu else out

