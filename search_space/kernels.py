"""C++ kernels of the grouped training path, compiled on first use (``kernels.cpp``).

Why: the grouped path's BatchNorm (statistics, affine, shuffle, ReLU) and its depth-wise 3x3
convolution ran far below this CPU's limits in ATen (docs/performance.md, issue 24).
``kernels.cpp`` does BatchNorm channel by channel so that a channel's values stay in cache
between passes, and the 3x3 plane by plane in memory order, 8-wide vectors along a row.

How it is built: ``torch.utils.cpp_extension.load`` with the machine's C++ compiler and
``ninja``, the first time a process asks for it, cached in torch's extensions directory
(keyed on the source and the flags; ``TORCH_EXTENSIONS_DIR`` moves it). Nothing is built at
``pip install``, so pip's build isolation never needs (or pulls) a torch. Portable flags
only (``-O3``), so a cached build may be shared by the machines of a cluster; the hot loops
are compiled twice (GCC's ``target_clones``: x86-64-v3 and baseline) and the loader picks
one per machine. Where there is no compiler or the build fails, :func:`extension` warns
once, in one line, and returns None: the grouped path then takes its pure-PyTorch kernels.
``IGCBENCH_KERNELS=0`` in the environment, or :func:`use` (False), turns the kernels off;
both paths compute the same function (tests/test_kernels.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.autograd.function import once_differentiable

#: the extension's sources (with the header ``simd.h`` they include)
SOURCES = [Path(__file__).with_name(n) for n in ("kernels.cpp", "group_gemm.cpp")]
CFLAGS = ["-O3"]
_state: dict[str, Any] = {"enabled": os.environ.get("IGCBENCH_KERNELS", "1") != "0",
                          "group_gemms": True}


def extension() -> Any | None:
    """The compiled module, building it on the first call; None where it cannot be built
    (one warning line) or the kernels are turned off."""
    if not _state["enabled"]:
        return None
    if "module" not in _state:
        _state["module"] = _build()
    return _state["module"]


def _build() -> Any | None:
    compiler = os.environ.get("CXX", "c++")
    try:
        if shutil.which(compiler) is None:  # before torch's own multi-line compiler warning
            raise RuntimeError(f"no C++ compiler {compiler!r} on PATH")
        from torch.utils.cpp_extension import is_ninja_available, load

        _ninja_on_path()
        if not is_ninja_available():  # torch's load builds with ninja (pip install ninja)
            raise RuntimeError("no ninja on PATH")

        return load(name="igcbench_kernels", sources=[str(s) for s in SOURCES], extra_cflags=CFLAGS,
                    verbose=False)
    except Exception as e:  # noqa: BLE001 - any build failure means: take the pure path
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        warnings.warn(f"igcbench C++ kernels unavailable ({first}); using the pure-PyTorch "
                      "grouped path", RuntimeWarning, stacklevel=3)
        return None


def _ninja_on_path() -> None:
    """Put the ``ninja`` package's binary (a dependency) on PATH: a venv used without
    activating it has its bin/ off PATH, where torch's build looks."""
    try:
        import ninja
    except ImportError:
        return
    path = os.environ.get("PATH", "")
    if ninja.BIN_DIR not in path.split(os.pathsep):
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + path


def usable(x: torch.Tensor) -> bool:
    """Whether the kernels take ``x``: a CPU float32 or float64 tensor, and the extension
    built (or None: then the caller's pure path)."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and extension() is not None)


def group_gemms(*operands: torch.Tensor) -> Any | None:
    """The compiled module where its group GEMMs (``group_gemm.cpp``) take every operand
    (:func:`usable`, unit pixel stride) and :func:`use_group_gemms` has not turned them off;
    else None: the caller's ``bmm``."""
    if not _state["group_gemms"] or not all(usable(t) and t.stride(-1) == 1 for t in operands):
        return None
    return extension()


@contextlib.contextmanager
def _switched(key: str, value: Any) -> Iterator[None]:
    before = _state[key]
    _state[key] = value
    try:
        yield
    finally:
        _state[key] = before


def use(enabled: bool) -> contextlib.AbstractContextManager[None]:
    """Within the block, the grouped path takes (True) or skips (False) the C++ kernels."""
    return _switched("enabled", enabled)


def use_group_gemms(enabled: bool) -> contextlib.AbstractContextManager[None]:
    """Within the block, the folded products take (True) or skip (False) the C++ group GEMMs
    alone, the other kernels as :func:`use` says (``benchmarks.group_gemm`` compares them)."""
    return _switched("group_gemms", enabled)


@contextlib.contextmanager
def swapped(module: Any) -> Iterator[None]:
    """Within the block, the grouped path calls ``module``: another build of the kernels
    with the same functions (benchmarks.depthwise times an earlier kernels.cpp with it)."""
    before = extension()
    _state["module"] = module
    try:
        yield
    finally:
        _state["module"] = before


class BatchNormShuffle(torch.autograd.Function):
    """BatchNorm in training (batch statistics; biased variance returned for the
    running-statistics update) -> ChannelShuffle(g) -> [ReLU], from a contiguous input in
    layout ``src`` ("cp": (C, N*H*W) channel-major, or "nchw") to a new tensor in ``dst``.

    ``apply(x, weight, bias, eps, src, dst, g, relu, shape) -> (y, mean, var)``; mean and
    var carry no gradient. ``shape``: (N, C, H, W).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, src, dst, g, relu, shape):
        n, c, h, w = shape
        flags = (src == "cp", dst == "cp", g)
        y, mean, var, invstd = extension().bn_forward(
            x.contiguous(), weight.detach(), bias.detach(), n, c, h * w, *flags, relu, eps)
        y = y.view(c, n * h * w) if dst == "cp" else y.view(n, c, h, w)
        ctx.save_for_backward(x, weight, mean, invstd, y if relu else None)
        ctx.cfg = (n, c, h * w, *flags)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, _gmean, _gvar):
        x, weight, mean, invstd, y = ctx.saved_tensors
        dx, dw, db = extension().bn_backward(gy.contiguous(), y, x.contiguous(), weight,
                                             mean, invstd, *ctx.cfg)
        return (dx.view(x.shape), dw.to(weight.dtype), db.to(weight.dtype),
                None, None, None, None, None, None)


class DepthwiseConv3x3(torch.autograd.Function):
    """``F.conv2d(x, weight, padding=1, groups=C)`` for a (C, 1, 3, 3) weight, stride 1:
    forward, input gradient (the output gradient convolved with the flipped kernel) and
    weight gradient in C++, on NCHW or channel-major ``x`` (:func:`channel_major`).

    ``apply(x, weight, centre) -> (y, shift)``: y NCHW, or with ``centre`` channel-major
    and minus ``shift`` (C,) float64, each channel's mean over the first min(N, 8) images
    (a constant, no gradient: the folded runs' centring, ``search_space.bn_fold``); shift
    is empty without ``centre``. The input gradient takes x's layout.
    """

    @staticmethod
    def forward(ctx, x, weight, centre=False):
        x = x if channel_major(x) else x.contiguous()
        ctx.save_for_backward(x, weight)
        y, shift = extension().dw_conv(x, weight.detach(), False, centre, centre)
        ctx.mark_non_differentiable(shift)
        return y, shift

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, _gshift):
        x, weight = ctx.saved_tensors
        gy = gy if channel_major(gy) else gy.contiguous()
        dx = None
        if ctx.needs_input_grad[0]:
            dx = extension().dw_conv(gy, weight, True, channel_major(x), False)[0]
        dw = extension().dw_weight(gy, x).to(weight.dtype) if ctx.needs_input_grad[1] else None
        return dx, dw, None


def channel_major(x: torch.Tensor) -> bool:
    """Whether an (N, C, H, W) tensor is the (C, N, H, W) contiguous storage seen as NCHW
    (``x.permute(1, 0, 2, 3)`` contiguous): the layout the grouped path's folded runs
    hand each other (``search_space.grouped``)."""
    return x.dim() == 4 and x.shape[0] > 1 and x.permute(1, 0, 2, 3).is_contiguous()


def is_depthwise3x3(conv: torch.nn.Conv2d) -> bool:
    """Whether :class:`DepthwiseConv3x3` computes ``conv`` (one 3x3 filter per channel,
    stride 1, padding 1, no dilation, no bias)."""
    return (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == conv.in_channels
            == conv.out_channels and conv.bias is None and conv.padding_mode == "zeros")
