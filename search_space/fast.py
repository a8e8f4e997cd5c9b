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
reference function with group-major batched GEMMs instead of one dense GEMM, its BatchNorms
folded into them where ``work.fold_pays`` says (``search_space.bn_fold``).

Statistics are composed in float64 from float32 Gram matrices. ``tests/test_fast.py`` holds
the outputs, gradients and running statistics to 1e-5 of the float64 reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from .fused_run import NoCtx, TrainRun, compose
from .grouped import bn_relu, grouped_run
from .modules import ReferenceBlock
from .plan import Block, segments
from .plan import Run as _Run
from .work import PATHS, choose_path, fold_pays

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


class FastStem(nn.Sequential):
    """A net's stem (conv, BatchNorm, ReLU): the same modules and function. In CPU training
    where the C++ kernels build, the BatchNorm and ReLU are ``kernels.BatchNormShuffle``
    (one pass for the statistics, one for the output: ATen's NCHW BatchNorm and its
    backward took about 10 ms a step of ``plain8-c144-k1.12.12`` at 16x16), written
    channel-major where ``channel_major`` (a FastBlock net's: the first block's depth-wise
    kernel then reads its input in place, as the later blocks' do), else NCHW (the
    multi-model engine's ``FoldedNet``, whose N models' stems must compute as the one
    model's does). Elsewhere nn.Sequential's."""

    def __init__(self, *modules: nn.Module, channel_major: bool = True) -> None:
        super().__init__(*modules)
        self.channel_major = channel_major

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn, _ = self
        if not (self.training and kernels.usable(x)):
            return super().forward(x)
        return bn_relu(conv(x), bn, self.channel_major)


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

    #: the stem a net of these blocks takes (``modules.Net``)
    stem_cls = FastStem

    def __init__(self, block: Block, *, path: str | None = None) -> None:
        super().__init__(block)
        if path not in (None, *PATHS, "auto"):
            raise ValueError(f"path {path!r}; accepted: None, {', '.join(map(repr, PATHS))},"
                             " 'auto'")
        self.path = path
        #: the grouped path folds the run's BatchNorms into its 1x1 convolutions
        #: (``search_space.bn_fold``): True, False, or None where ``work.fold_pays`` says
        self.fold: bool | None = None
        self.block_plan = block
        self.runs = segments(block)
        self._fold_rule = tuple(fold_pays(block, r) for r in self.runs)  # fixed by the design
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
            for run, rule in zip(self.runs, self._fold_rule, strict=True):
                x = grouped_run(self, run, x, fold=rule if self.fold is None else self.fold)
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
                return TrainRun.apply(x, run, conv, bns, *params)
            with torch.no_grad():
                return TrainRun.forward(NoCtx(), x, run, conv, bns, *params)
        return self._eval_run(i, run, conv, bns, params, x)

    def _eval_run(self, i, run, conv, bns, params, x) -> torch.Tensor:
        """Eval mode: the run as one dense kernel with its BNs folded in (running statistics);
        a BN alone after a spatial conv folds into that conv's kernel and bias instead."""
        fold = conv is not None and not run.steps and run.lead[1] == 1

        def make() -> tuple[torch.Tensor, torch.Tensor]:
            A, b, _ = compose(run, bns, [p.double() for p in params], None)
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
