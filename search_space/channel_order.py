"""The channel orders of the grouped path's folded runs (``search_space.bn_fold``): where
ChannelShuffle (eq. 4's P_l) puts each channel, its inverse, and the layout copies a run
makes, each a view or one pass, never a permutation pass of its own.

A run's activations are channel-major, (C, P) with P = N*H*W pixels: a shuffle is then a
strided view of its rows (``shuffled``) wherever the next convolution's groups read whole
branches, and a run's last step writes its output through a table of rows
(``shuffle_rows``) already in the next run's order.
"""

from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable


@functools.lru_cache(maxsize=256)
def shuffle_rows(c: int, branches: int) -> torch.Tensor:
    """Where ChannelShuffle(branches) puts each of c channels: channel i * (c / branches) +
    k goes to row k * branches + i: each channel's shuffled position, in its own order.
    (Made outside inference mode, as ``fused_run``'s caches are: a cached inference tensor
    cannot enter a later training step's graph.)"""
    with torch.inference_mode(False):
        return unshuffle(torch.arange(c), branches)


def unshuffled_grad(src: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The gradient of a shuffled (C, P) output (a folded run's last step) in the unshuffled
    order, as a new contiguous (branches, C / branches, P): ``src`` the gradient's view in
    that order, ``mask`` the same view of the ReLU's output (None: no ReLU). One pass, the
    mask inside the copy."""
    out = src.new_empty(src.shape)
    if mask is None:
        out.copy_(src)
    else:
        torch.ops.aten.threshold_backward.grad_input(src, mask, 0, grad_input=out)
    return out


def unshuffle(v: torch.Tensor, branches: int) -> torch.Tensor:
    """Values (C,) in the order ChannelShuffle(branches) puts channels, in their own order."""
    out = torch.empty_like(v)
    out.view(branches, -1).transpose(0, 1).copy_(v.view(-1, branches))
    return out


def shuffled(y: torch.Tensor, branches: int) -> torch.Tensor:
    """The (C, P) channels of ``y`` (any shape (..., P) with C rows) after ChannelShuffle
    with ``branches``, as a (C / branches, branches, P) view: row-major over its first two
    axes it is the shuffled channel order. No copy."""
    p = y.shape[-1]
    return y.reshape(branches, -1, p).transpose(0, 1)


class ChannelMajor(torch.autograd.Function):
    """``apply(x, shift)``: NCHW ``x`` minus a constant per channel (no gradient), as a new
    (C, N*H*W) channel-major matrix: the one copy a run's input needs, centring included."""

    @staticmethod
    def forward(ctx, x, shift):
        n, c, h, w = x.shape
        out = x.new_empty(c, n, h * w)
        torch.sub(x.reshape(n, c, h * w).transpose(0, 1), shift.view(c, 1, 1), out=out)
        ctx.shape = x.shape
        return out.view(c, n * h * w)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        n, c, h, w = ctx.shape
        return g.view(c, n, h * w).transpose(0, 1).reshape(n, c, h, w), None


def centred_channel_major(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x - s as (C, P), s): s the channel means of every eighth image (at least one)."""
    s = x[:: max(1, x.shape[0] // 8)].detach().mean((0, 2, 3))
    return ChannelMajor.apply(x, s), s.double()
