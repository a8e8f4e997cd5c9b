"""FastBlock: the reference block's parameters and numbers, computed with fewer memory passes.

Why: on a CPU the reference block (``nn.Conv2d(groups)`` -> BatchNorm2d -> channel shuffle per
convolution) is memory-bound: its BatchNorms and shuffle copies cost more than its
multiply-adds (``docs/performance.md``). FastBlock keeps every module of
:class:`~search_space.modules.ReferenceBlock` (same parameter names, shapes and
initialisation, so ``fast.load_state_dict(ref.state_dict())`` works both ways) and only
changes how ``forward`` computes the same function.

How: a block is cut into *runs*: a spatial (k x k) convolution with everything after it, or
a 1x1 convolution with everything after it, up to the next ReLU or spatial convolution. The
per-pixel linear layers of a run -- BatchNorms, channel shuffles P_l, group 1x1 convolutions
W_l (eq. 4) -- are one affine map ``y = A x + b`` of the run's input x, applied to the
channels-last ``(pixels, C)`` view as one dense GEMM. In training mode each BatchNorm needs
its batch statistics; they all follow from the mean and covariance of x alone
(``mean(W x) = W mean(x)``, ``var(W x) = diag(W Cov(x) W^T)``), so one Gram matrix of the
centred x replaces every normalisation pass of the run. The shuffles become row
permutations of A (index arithmetic on a C x C matrix), never copies of activations. One
custom autograd function per run computes the spatial convolution, centres its output in
place (raw second moments would cancel in float32), and saves only that (and y for the ReLU
mask); its backward is three GEMMs (``dA = G^T X``, ``dX = X (dS + dS^T) + (G - mean G) A``),
autograd over the small C x C graph that made A and b, and the convolution's backward. In
eval mode A and b come from the running statistics and are cached until a parameter or
buffer changes: each run is one dense 1x1 convolution with its BatchNorms folded in (a lone
BatchNorm folds into the spatial convolution before it). ``DEVICE_PATH`` says where which
path runs. A third path, "grouped" (training only; ``search_space.grouped``), computes the
reference function with group-major batched GEMMs instead of one dense GEMM.

Statistics are composed in float64 from float32 Gram matrices. ``tests/test_fast.py`` holds
the outputs, gradients and running statistics to 1e-5 of the float64 reference.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .grouped import grouped_run
from .modules import ReferenceBlock
from .plan import Block, segments
from .plan import Run as _Run
from .work import PATHS, choose_path

#: (training, eval) path of FastBlock per device type, as measured by benchmarks/speed.py and
#: benchmarks/path_choice.py (docs/performance.md): "fused" computes every run as GEMMs, "reference"
#: is ReferenceBlock's own forward, "grouped" (training only) its function with the group-major
#: kernels of ``search_space.grouped``, "auto" picks one per block and batch shape
#: (``search_space.work.choose_path``; the grouped path only in training). On the CPU the fused path
#: wins for narrow blocks (C up to a few hundred) and loses by 10-100x for wide ones (its dense C x
#: C GEMM per pixel and C^3 composition per step against the group convolutions' C x K): auto. CUDA
#: training keeps the reference: there the fused path is bound by the host (its small C x C ops),
#: 0.25-0.6x for Xception, IGCV1 and nonlinear blocks and 1.0-1.44x, varying run to run, for IGCV2
#: (H200, one process). In eval the fused path won for every kind measured on CUDA (narrow nets; the
#: rule's CPU costs do not apply there). Device types not listed: reference.
DEVICE_PATH = {"cpu": ("auto", "auto"), "cuda": ("reference", "fused")}


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


def _compose(
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

    ``mu``: the mean of the run's input, which ``_compose`` saw centred. Only the first BN's
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


class _TrainRun(torch.autograd.Function):
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
                A, b, stats = _compose(run, bns, leaves, S64 / X.shape[0])
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


class FastBlock(ReferenceBlock):
    """ReferenceBlock's modules and function, computed as GEMMs on channels-last matrices.

    Args:
        block: the plan of the block.
        path: ``"fused"``, ``"reference"``, ``"grouped"`` (training: the group-major
            kernels of ``search_space.grouped``; eval: as "auto") or ``"auto"`` (the one
            ``work.choose_path`` predicts faster for this block, the mode and the input's
            batch and size);
            None picks by device type and train/eval mode from ``DEVICE_PATH``.

    Example:
        >>> from search_space import net_plan, parse
        >>> blk = net_plan(parse("plain8-c144-k1.12.12")).blocks[0]
        >>> fast, ref = FastBlock(blk), ReferenceBlock(blk)
        >>> fast.load_reference_state(ref)   # the same parameters, by name
    """

    def __init__(self, block: Block, *, path: str | None = None) -> None:
        super().__init__(block)
        if path not in (None, *PATHS, "auto"):
            raise ValueError(f"path {path!r}; accepted: None, {', '.join(map(repr, PATHS))},"
                             " 'auto'")
        self.path = path
        self.block_plan = block
        self.runs = segments(block)
        self._auto: dict[tuple[bool, int, int], str] = {}  # (training, batch, side) -> path
        self._eval_cache: dict[int, tuple[tuple, tuple[torch.Tensor, torch.Tensor]]] = {}

    def load_reference_state(self, ref: ReferenceBlock) -> None:
        """Copy a ReferenceBlock's parameters and buffers (the names are the same)."""
        self.load_state_dict(ref.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = self.path or DEVICE_PATH.get(x.device.type, ("reference",) * 2)[not self.training]
        if path == "auto" or (path == "grouped" and not self.training):
            path = self.chosen_path(x.shape[0], x.shape[-1])
        if path == "reference":
            return super().forward(x)
        if path == "grouped":
            for run in self.runs:
                x = grouped_run(self, run, x)
            return x
        for i, run in enumerate(self.runs):
            x = self._forward_run(i, run, x)
        return x

    def chosen_path(self, batch: int, side: int) -> str:
        """The path "auto" takes in the current mode for ``batch`` images of ``side`` pixels."""
        key = (self.training, batch, side)
        if key not in self._auto:
            scale = (side / self.block_plan.convs[0].hw_in) ** 2
            self._auto[key] = choose_path(self.block_plan, training=self.training, batch=batch,
                                          scale=scale)
        return self._auto[key]

    def _run_params(self, run: _Run) -> tuple[list[nn.BatchNorm2d], list[torch.Tensor]]:
        """The run's BNs, and its parameters: lead BN (weight, bias), then per 1x1 conv
        (conv weight, BN weight, BN bias)."""
        bns, params = [], []
        if run.lead is not None:
            bn = self[run.lead[0]]
            bns.append(bn)
            params += [bn.weight, bn.bias]
        for ci, bi, _, _ in run.steps:
            bn = self[bi]
            bns.append(bn)
            params += [self[ci].weight, bn.weight, bn.bias]
        return bns, params

    def _forward_run(self, i: int, run: _Run, x: torch.Tensor) -> torch.Tensor:
        conv = None if run.spatial is None else self[run.spatial]
        bns, params = self._run_params(run)
        if self.training:
            if conv is not None:
                params = [conv.weight, *params]
            if torch.is_grad_enabled() and (
                x.requires_grad or any(p.requires_grad for p in params)
            ):
                return _TrainRun.apply(x, run, conv, bns, *params)
            with torch.no_grad():
                return _TrainRun.forward(_NoCtx(), x, run, conv, bns, *params)
        return self._eval_run(i, run, conv, bns, params, x)

    def _eval_run(self, i, run, conv, bns, params, x) -> torch.Tensor:
        """Eval mode: the run as one dense kernel with its BNs folded in (running statistics);
        a BN alone after a spatial conv folds into that conv's kernel and bias instead."""
        fold = conv is not None and not run.steps and run.lead[1] == 1

        def make() -> tuple[torch.Tensor, torch.Tensor]:
            A, b, _ = _compose(run, bns, [p.double() for p in params], None)
            dt = params[0].dtype
            if fold:
                return conv.weight * A.diagonal().to(dt).view(-1, 1, 1, 1), b.to(dt)
            return A.to(dt)[:, :, None, None], b.to(dt)

        tensors = [*params, *(t for bn in bns for t in (bn.running_mean, bn.running_var))]
        if fold:
            tensors.append(conv.weight)
        A, b = self._cached(i, tensors, make)
        if fold:
            y = F.conv2d(x, A, b, conv.stride, conv.padding, conv.dilation, conv.groups)
        else:
            if conv is not None:
                x = conv(x)
            y = F.conv2d(x, A, b)
        return y.relu_() if run.relu else y

    def _cached(self, i, tensors, make):
        """``make()``, reused while none of ``tensors`` changed (never when a gradient is
        needed: then it is built with its autograd graph)."""
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return make()
        key = tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)
        hit = self._eval_cache.get(i)
        if hit is None or hit[0] != key:
            with torch.no_grad():
                hit = (key, make())
            self._eval_cache[i] = hit
        return hit[1]


class _NoCtx:
    """Stands in for the autograd context when a training-mode run needs no gradient."""

    def save_for_backward(self, *tensors):
        pass


class FusedBlock(FastBlock):
    """FastBlock on its fused path on every device and in both modes (``impl="fused"``).

    For several training processes sharing one GPU: the fused path is bound by the host, and
    the hosts' work overlaps across processes. plain8 IGCV2 C=144 on an H200: 2.4x the
    reference's aggregate images/s with 2 or 4 processes (1.0-1.4x alone; docs/performance.md).
    """

    def __init__(self, block: Block, *, path: str | None = "fused") -> None:
        super().__init__(block, path=path)


class GroupedBlock(FastBlock):
    """FastBlock on its grouped path in training (``impl="grouped"``; eval: as "auto").

    For calibrating and benchmarking that path on every block of a net.
    """

    def __init__(self, block: Block, *, path: str | None = "grouped") -> None:
        super().__init__(block, path=path)
