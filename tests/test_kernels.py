"""The C++ kernels of the grouped path (search_space/kernels.cpp, group_gemm.cpp) compute the
reference ops: gradcheck in float64 on small random shapes of the space; equality with
BatchNorm2d + ChannelShuffle (+ ReLU), running statistics included, with F.conv2d's depth-wise
3x3 convolution, and of the group GEMMs with torch.bmm/baddbmm on strided operands; whole
blocks against ReferenceBlock in float64; float32 closeness on a rung-sized shape (C = 144,
batch 64, 16x16). The build is shared by the module (one compile, ~90 CPU-s, cached across runs
in torch's extensions directory); without a C++ compiler or ninja the module is skipped (the
pure path is tests/test_grouped.py's)."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import search_space as ss
from search_space import kernels
from search_space.fast import FastBlock
from search_space.modules import ChannelShuffle, ReferenceBlock

LAYOUTS = [("nchw", "cp", 1, False), ("nchw", "nchw", 4, True), ("cp", "cp", 3, False),
           ("cp", "nchw", 4, True), ("cp", "nchw", 1, False), ("cp", "cp", 2, True)]


@pytest.fixture(scope="module", autouse=True)
def ext():
    from torch.utils.cpp_extension import is_ninja_available

    if shutil.which("c++") is None or not is_ninja_available():
        pytest.skip("no C++ compiler or ninja: the grouped path runs its pure-PyTorch kernels")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed build with a compiler present is a failure
        module = kernels.extension()
    assert module is not None
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(n)


def _inputs(layout: str, shape, seed: int, dtype=torch.float64):
    n, c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype) * 2 + 0.7
    return x, (x if layout == "nchw" else x.transpose(0, 1).reshape(c, -1).contiguous())


def _to_nchw(y: torch.Tensor, layout: str, shape) -> torch.Tensor:
    n, c, h, w = shape
    return y if layout == "nchw" else y.view(c, n, h, w).transpose(0, 1)


@pytest.mark.parametrize("src,dst,shuffle,relu", LAYOUTS)
def test_batchnorm_shuffle_passes_gradcheck(src, dst, shuffle, relu):
    shape = (3, 12, 2, 5)
    _, x = _inputs(src, shape, seed=shuffle)
    g = torch.Generator().manual_seed(7)
    weight = (torch.rand(12, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    bias = (torch.rand(12, generator=g, dtype=torch.float64) - 0.5).requires_grad_()

    def f(x, weight, bias):
        return kernels.BatchNormShuffle.apply(x, weight, bias, 1e-5, src, dst, shuffle, relu,
                                              shape)[0]

    assert torch.autograd.gradcheck(f, (x.requires_grad_(), weight, bias), eps=1e-6,
                                    atol=1e-7)


@pytest.mark.parametrize("src,dst,shuffle,relu", LAYOUTS)
def test_batchnorm_shuffle_is_batchnorm_then_channel_shuffle(src, dst, shuffle, relu):
    """Output, the three gradients and the running statistics, float64, to 1e-12."""
    shape = n, c, h, w = (5, 12, 3, 4)
    x, inp = _inputs(src, shape, seed=11)
    bn_ref = nn.BatchNorm2d(c).double()
    with torch.no_grad():
        bn_ref.weight.uniform_(0.5, 1.5)
        bn_ref.bias.uniform_(-0.5, 0.5)
        bn_ref.running_var.uniform_(0.5, 2.0)
    bn_new = nn.BatchNorm2d(c).double()
    bn_new.load_state_dict(bn_ref.state_dict())
    xr = x.clone().requires_grad_()
    ref = ChannelShuffle(shuffle)(bn_ref(xr))
    ref = ref.relu() if relu else ref
    xn = inp.clone().requires_grad_()
    out, mean, var = kernels.BatchNormShuffle.apply(xn, bn_new.weight, bn_new.bias, bn_new.eps,
                                                    src, dst, shuffle, relu, shape)
    with torch.no_grad():  # BatchNorm2d's update: momentum 0.1, unbiased variance
        bn_new.running_mean.lerp_(mean, 0.1)
        bn_new.running_var.lerp_(var * (n * h * w) / (n * h * w - 1), 0.1)
    gy = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    want = torch.autograd.grad(ref, (xr, bn_ref.weight, bn_ref.bias), gy)
    got = torch.autograd.grad(_to_nchw(out, dst, shape), (xn, bn_new.weight, bn_new.bias), gy)
    got = (_to_nchw(got[0], src, shape), *got[1:])
    assert torch.allclose(_to_nchw(out, dst, shape), ref, rtol=0, atol=1e-12)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12 * max(1.0, float(b.abs().max())))
    for name in ("running_mean", "running_var"):
        assert torch.allclose(getattr(bn_new, name), getattr(bn_ref, name), rtol=1e-12, atol=0)


def _random_dw_shapes(count: int, seed: int) -> list[tuple[int, int, int, int]]:
    """(N, C, H, W) drawn with widths the kernels treat apart: the rungs' 8, 16 and 32
    (whole 8-wide vectors, compile-time), odd ones (a vector and a scalar rest) and 1."""
    g = torch.Generator().manual_seed(seed)

    def pick(values):
        return values[int(torch.randint(len(values), (1,), generator=g))]

    return [(pick([1, 2, 3]), pick([1, 2, 5]), pick([1, 2, 3, 8, 9]),
             pick([1, 7, 8, 15, 16, 23, 32])) for _ in range(count)]


# rung widths, odd widths (7, 15, 33), W = 1, H = 1, N = 1 and C = 1, then random ones
DW_SHAPES = [(3, 5, 16, 16), (2, 3, 8, 8), (1, 2, 32, 32), (2, 4, 7, 33), (4, 3, 2, 2),
             (2, 3, 5, 7), (3, 2, 4, 15), (2, 3, 6, 1), (2, 3, 1, 6), (1, 2, 1, 16),
             (1, 1, 1, 1), *_random_dw_shapes(12, seed=2)]


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 3, 19), (2, 1, 1, 1), (2, 2, 3, 16),
                                   (1, 2, 4, 7), (1, 2, 3, 8)])
def test_depthwise3x3_passes_gradcheck(shape):
    g = torch.Generator().manual_seed(shape[3])
    x = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(shape[1], 1, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: kernels.DepthwiseConv3x3.apply(x, w)[0],
                                    (x, w), eps=1e-6, atol=1e-7)


def _dw_both(shape, dtype, seed=5):
    """(kernels, F.conv2d(groups=C)) pairs: output, input gradient, weight gradient, and the
    inputs (x, w, gy) they were computed from."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) + 0.7).to(dtype)
    w = torch.randn(shape[1], 1, 3, 3, generator=g, dtype=torch.float64).to(dtype)
    gy = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    xr, wr = x.double().requires_grad_(), w.double().requires_grad_()
    xn, wn = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref = F.conv2d(xr, wr, padding=1, groups=shape[1])
    out = kernels.DepthwiseConv3x3.apply(xn, wn)[0]
    pairs = [(out, ref), *zip(torch.autograd.grad(out, (xn, wn), gy),
                              torch.autograd.grad(ref, (xr, wr), gy.double()), strict=True)]
    return [(a.detach(), b.detach()) for a, b in pairs], (x.double(), w.double(), gy.double())


@pytest.mark.parametrize("shape", DW_SHAPES)
def test_depthwise3x3_is_conv2d(shape):
    """Output and both gradients against F.conv2d(groups=C), float64, to 1e-12."""
    for a, b in _dw_both(shape, torch.float64)[0]:
        assert torch.allclose(a, b, rtol=0, atol=1e-12 * max(1.0, float(b.abs().max())))


@pytest.mark.parametrize("shape", DW_SHAPES)
def test_depthwise3x3_in_float32_is_conv2d_to_rounding(shape):
    """float32 against the float64 convolution of the same values, within the rounding
    bound of each sum: |error| <= m u |terms| (u = 2^-24) for a sum of m products, m = 9 +
    1 for the output (forward, input gradient); for the weight gradient a lane sums at most
    H * W products of a plane in float, then double across planes (one more rounding)."""
    pairs, (x, w, gy) = _dw_both(shape, torch.float32)
    c, u = shape[1], 2.0 ** -24
    absx = F.conv2d(x.abs(), w.abs(), padding=1, groups=c)
    absdx = F.conv2d(gy.abs(), w.abs().flip(2, 3), padding=1, groups=c)
    absdw = torch.ops.aten.convolution_backward(gy.abs(), x.abs(), w, None, [1, 1], [1, 1],
                                                [1, 1], False, [0, 0], c,
                                                [False, True, False])[1]
    bounds = [10 * u * absx, 10 * u * absdx, (shape[2] * shape[3] + 2) * u * absdw]
    for (a, b), bound in zip(pairs, bounds, strict=True):
        assert bool(((a.double() - b).abs() <= bound).all()), float((a.double() - b).abs().max())


def _channel_major(x: torch.Tensor) -> torch.Tensor:
    """x's values in (C, N, H, W) storage, seen as (N, C, H, W)."""
    return x.transpose(0, 1).contiguous().transpose(0, 1)


@pytest.mark.parametrize("cm_in", [False, True], ids=["nchw_in", "cm_in"])
@pytest.mark.parametrize("shape", DW_SHAPES[:12])
def test_depthwise3x3_centred_channel_major_is_conv2d(shape, cm_in):
    """With ``centre``: the output channel-major (the folded runs' layout), minus shift,
    each channel's mean over the first min(N, 8) images of the output; the input
    gradient in the input's layout; all against F.conv2d(groups=C) in float64."""
    g = torch.Generator().manual_seed(shape[0] * 31 + shape[3])
    x = torch.randn(shape, generator=g, dtype=torch.float64) + 0.7
    w = torch.randn(shape[1], 1, 3, 3, generator=g, dtype=torch.float64)
    gy = _channel_major(torch.randn(shape, generator=g, dtype=torch.float64))
    xn = (_channel_major(x) if cm_in else x).requires_grad_()
    wn, xr, wr = w.clone().requires_grad_(), x.clone().requires_grad_(), w.clone().requires_grad_()
    y, shift = kernels.DepthwiseConv3x3.apply(xn, wn, True)
    ref = F.conv2d(xr, wr, padding=1, groups=shape[1])
    want_shift = ref.detach()[: min(shape[0], 8)].mean((0, 2, 3))
    assert kernels.channel_major(y) or shape[0] == 1
    assert torch.allclose(shift, want_shift, rtol=0, atol=1e-12)
    assert torch.allclose(y + shift.view(1, -1, 1, 1), ref, rtol=0, atol=1e-12)
    dx, dw = torch.autograd.grad(y, (xn, wn), gy)
    dxr, dwr = torch.autograd.grad(ref, (xr, wr), gy)
    assert dx.stride() == xn.stride()
    assert torch.allclose(dx, dxr, rtol=0, atol=1e-12) and torch.allclose(dw, dwr, rtol=0,
                                                                          atol=1e-11)


def test_depthwise3x3_channel_major_passes_gradcheck():
    g = torch.Generator().manual_seed(4)
    x = _channel_major(torch.randn(3, 2, 4, 5, generator=g, dtype=torch.float64))
    w = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    def conv(x, w):  # the shift is a constant (no gradient): y + shift is the convolution
        y, shift = kernels.DepthwiseConv3x3.apply(x, w, True)
        return y + shift.view(1, -1, 1, 1)

    assert torch.autograd.gradcheck(conv, (x.requires_grad_(), w), eps=1e-6, atol=1e-7)


def test_depthwise3x3_splits_channels_across_threads_without_changing_a_bit():
    """Two threads take a range of channels each: the same values as one thread."""
    g = torch.Generator().manual_seed(9)
    x, gy = torch.randn(3, 7, 16, 16, generator=g), torch.randn(3, 7, 16, 16, generator=g)
    w = torch.randn(7, 1, 3, 3, generator=g)
    module = kernels.extension()
    one = [module.dw_forward(x, w, False), module.dw_forward(gy, w, True),
           module.dw_weight(gy, x)]
    torch.set_num_threads(2)
    try:
        two = [module.dw_forward(x, w, False), module.dw_forward(gy, w, True),
               module.dw_weight(gy, x)]
    finally:
        torch.set_num_threads(1)
    for a, b in zip(one, two, strict=True):
        assert torch.equal(a, b)


# (G, M, K, P): a group's output rows M and input rows K as in the space's group 1x1
# convolutions (1-64, with remainders of the 12-, 6- and 3-row register blocks), pixels with
# and without a remainder of the 8-wide vectors and the 256-pixel runs; products that
# prefetch and products that do not (group_gemm.cpp: PF_ROWS input rows, and for the cross
# products PF_PIXELS pixels: the last shape).
GEMM_SHAPES = [(1, 1, 1, 1), (3, 7, 5, 17), (12, 12, 12, 256), (2, 13, 2, 300), (4, 6, 3, 8),
               (1, 64, 64, 40), (5, 2, 24, 515), (46, 3, 3, 64), (8, 32, 16, 129),
               (2, 5, 4, 8203)]


def _operand(g, r, p, gen, dtype, strided):
    """A (G, R, P) operand, strided as a channel shuffle's view reads it, or contiguous."""
    if strided:
        return torch.randn(r, g, p, generator=gen, dtype=dtype).transpose(0, 1)
    return torch.randn(g, r, p, generator=gen, dtype=dtype)


@pytest.mark.parametrize("strided", [False, True])
@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_group_nn_is_baddbmm(ext, shape, strided):
    g, m, k, p = shape
    gen = torch.Generator().manual_seed(m * 100 + k)
    x1, x2 = (_operand(g, r, p, gen, torch.float64, strided) for r in (k, m + 1))
    w1 = torch.randn(g, k, m, generator=gen, dtype=torch.float64).transpose(1, 2)  # any strides
    w2 = torch.randn(g, m, m + 1, generator=gen, dtype=torch.float64)
    b = torch.randn(g, m, generator=gen, dtype=torch.float64)
    assert torch.allclose(ext.group_nn(w1, x1, None, None, None), torch.bmm(w1, x1),
                          rtol=1e-12, atol=1e-12)
    want = torch.baddbmm(b[..., None], w1, x1).baddbmm_(w2, x2)
    got = ext.group_nn(w1, x1, w2, x2, b)
    assert got.shape == want.shape and got.is_contiguous()
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    x32, w32, b32 = x1.float(), w1.float(), b.float()
    assert torch.allclose(ext.group_nn(w32, x32, None, None, b32),
                          torch.baddbmm(b32[..., None], w32, x32), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strided", [False, True])
@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_group_nt_is_bmm_with_the_row_sums(ext, shape, strided):
    g, m, k, p = shape
    gen = torch.Generator().manual_seed(m * 100 + k)
    a, b = (_operand(g, r, p, gen, torch.float64, strided) for r in (m, k))
    c, s = ext.group_nt(a, b, False)
    assert c.dtype == s.dtype == torch.float64
    assert torch.allclose(c, torch.bmm(a, b.transpose(1, 2)), rtol=1e-12, atol=1e-11)
    assert torch.allclose(s, a.sum(2), rtol=1e-12, atol=1e-11)
    gram, sums = ext.group_nt(a, a, True)  # the symmetric product: its upper half, mirrored
    assert torch.allclose(gram, torch.bmm(a, a.transpose(1, 2)), rtol=1e-12, atol=1e-11)
    assert torch.equal(gram, gram.transpose(1, 2)) and torch.equal(sums, s)
    # float32 operands: float sums over runs of 256 pixels (32 per lane), summed in double:
    # the error stays within float32 rounding of the terms' magnitudes, at any P
    a32 = a.float()
    a64 = a32.double()
    err = (ext.group_nt(a32, a32, True)[0] - torch.bmm(a64, a64.transpose(1, 2))).abs()
    assert (err <= 64 * 2.0 ** -24 * torch.bmm(a64.abs(), a64.abs().transpose(1, 2))).all()


@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_group_nn_writes_rows_of_a_table_with_the_relu(ext, shape):
    """``rows``: output (g, m) at flat row rows[g * M + m] (a channel shuffle's order), the
    ReLU in the store; NaN stays NaN, as torch.relu keeps it."""
    g, m, k, p = shape
    gen = torch.Generator().manual_seed(m * 10 + p)
    x = _operand(g, k, p, gen, torch.float64, True)
    w = torch.randn(g, m, k, generator=gen, dtype=torch.float64)
    b = torch.randn(g, m, generator=gen, dtype=torch.float64)
    rows = torch.randperm(g * m, generator=gen)
    want = torch.baddbmm(b[..., None], w, x).view(-1, p)
    got = ext.group_nn(w, x, None, None, b, rows, True).view(-1, p)
    assert torch.allclose(got[rows], want.relu(), rtol=1e-12, atol=1e-12)
    assert torch.allclose(ext.group_nn(w, x, None, None, b, rows, False).view(-1, p)[rows],
                          want, rtol=1e-12, atol=1e-12)
    x[0, 0, -1] = float("nan")
    w[0, 0, 0] = 1.0
    assert ext.group_nn(w, x, None, None, b, None, True)[0, 0, -1].isnan()


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_group_nt_masked_is_the_unshuffled_masked_gradient_and_its_cross(ext, shape, relu):
    """``group_nt_masked``: A = the (R1, R2, P) view's rows in order j = i1 * R2 + i2, zero
    where the mask is <= 0 (threshold_backward's rule: NaN passes), regrouped (G, M, P);
    and group_nt(A, B) of it, bit for bit (bn_fold's backward relies on both)."""
    g, m, n, p = shape
    gen = torch.Generator().manual_seed(g * 7 + m + p)
    r1 = next(d for d in (3, 2, 1) if (g * m) % d == 0)  # the shuffle's branches
    for dtype in (torch.float64, torch.float32):
        grad = torch.randn(g * m // r1, r1, p, generator=gen, dtype=dtype)  # the shuffled order
        out = torch.randn(g * m // r1, r1, p, generator=gen, dtype=dtype)
        out.view(-1)[:: 7] = float("nan")
        src, mask = grad.transpose(0, 1), out.transpose(0, 1)  # (R1, R2, P) views
        b = _operand(g, n, p, gen, dtype, True)
        a, c, s = ext.group_nt_masked(src, mask if relu else None, b, g)
        want = src.reshape(g, m, p)
        if relu:
            want = torch.ops.aten.threshold_backward(want, mask.reshape(g, m, p), 0)
        assert a.is_contiguous() and torch.equal(a, want)
        c_want, s_want = ext.group_nt(want, b, False)
        assert torch.equal(c, c_want) and torch.equal(s, s_want)
        if dtype == torch.float64:
            assert torch.allclose(c, torch.bmm(want, b.transpose(1, 2)), rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_group_nn_gram_is_group_nn_then_the_gram_matrix_bit_for_bit(ext, shape):
    """``group_nn_gram``: group_nn written into ``out`` and the Gram matrix with sums of a
    view of ``out`` (a channel shuffle's regrouping) in one pass: the same values as
    group_nn then group_nt(A, A, True), bit for bit (the folded runs rely on it)."""
    g, m, k, p = shape
    gen = torch.Generator().manual_seed(g + m * 3 + k * 5 + p)
    r = next(d for d in (3, 2, 1) if (g * m) % d == 0)
    for dtype in (torch.float64, torch.float32):
        x1, x2 = (_operand(g, rr, p, gen, dtype, True) for rr in (k, m + 1))
        w1, w2 = torch.randn(g, m, k, generator=gen), torch.randn(g, m, m + 1, generator=gen)
        bias = torch.randn(g, m, generator=gen, dtype=dtype)
        for terms in ((w1, x1, None, None), (w1, x1, w2, x2)):
            out = torch.empty(g, m, p, dtype=dtype)
            view = out.view(g * m // r, r, p).transpose(0, 1)  # (r, G M / r, P)
            gram, sums = ext.group_nn_gram(*terms, bias, out, view)
            assert torch.equal(out, ext.group_nn(*terms, bias))
            want = ext.group_nt(view, view, True)
            assert torch.equal(gram, want[0]) and torch.equal(sums, want[1])


def test_group_gemms_reject_what_they_do_not_compute(ext):
    x = torch.randn(2, 3, 16)
    with pytest.raises(RuntimeError, match="unit pixel stride"):
        ext.group_nn(torch.randn(2, 4, 3), x.transpose(1, 2).contiguous().transpose(1, 2),
                     None, None, None)
    with pytest.raises(RuntimeError, match=r"W1 \(G, M, K\)"):
        ext.group_nn(torch.randn(2, 4, 5), x, None, None, None)
    with pytest.raises(RuntimeError, match=r"rows, G \* M int64 row indices"):
        ext.group_nn(torch.randn(2, 4, 3), x, None, None, None, torch.arange(8) + 1, False)
    with pytest.raises(RuntimeError, match="sym needs B to be A"):
        ext.group_nt(x, x.clone(), True)
    with pytest.raises(RuntimeError, match=r"A \(G, M, P\) against B"):
        ext.group_nt(x, torch.randn(2, 3, 15), False)
    with pytest.raises(RuntimeError, match="in groups of 4"):
        ext.group_nt_masked(x, None, x, 4)
    with pytest.raises(RuntimeError, match="mask of src's shape"):
        ext.group_nt_masked(x, torch.randn(2, 3, 15), x, 2)
    w = torch.randn(2, 3, 3)
    with pytest.raises(RuntimeError, match="view of out with unit pixel stride"):  # A outside out
        ext.group_nn_gram(w, x, None, None, None, torch.empty(2, 3, 16), x)
    with pytest.raises(RuntimeError, match=r"out, a contiguous \(G, M, P\)"):
        ext.group_nn_gram(w, x, None, None, None, torch.empty(2, 3, 15), x)


def test_is_depthwise3x3_only_for_what_the_kernel_computes():
    assert kernels.is_depthwise3x3(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False))
    for conv in (nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 3, groups=8,
                                                                    bias=False),
                 nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),
                 nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False),
                 nn.Conv2d(8, 16, 3, padding=1, groups=8, bias=False),
                 nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False)):
        assert not kernels.is_depthwise3x3(conv), conv


def _block_step(design: str, batch: int, side: int, dtype: torch.dtype):
    """(ReferenceBlock float64, FastBlock grouped in ``dtype``) after one training step:
    outputs, input gradients, parameter gradients and buffers, as pairs (new, reference)."""
    block = ss.net_plan(ss.parse(design), 10).blocks[0]
    torch.manual_seed(0)
    ref = ReferenceBlock(block).double()
    new = FastBlock(block, path="grouped")
    new.fold = False  # the C++ BatchNorm kernel's runs (the folded ones have none)
    new.load_reference_state(ref)
    new.to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, block.cin, side, side, generator=g, dtype=torch.float64) + 0.7
    xr, xn = x.clone().requires_grad_(), x.to(dtype).requires_grad_()
    yr, yn = ref(xr), new(xn)
    gy = torch.randn(yr.shape, generator=g, dtype=torch.float64)
    yr.backward(gy)
    yn.backward(gy.to(dtype))
    pairs = [(yn, yr), (xn.grad, xr.grad)]
    pairs += [(a.grad, b.grad) for a, b in zip(new.parameters(), ref.parameters(), strict=True)]
    pairs += [(a, b) for a, b in zip(new.buffers(), ref.buffers(), strict=True)
              if a.is_floating_point()]
    return [(a.detach().double(), b.detach()) for a, b in pairs]


def _worst(pairs) -> float:
    return max(float((a - b).abs().max() / b.abs().max().clamp(min=1.0)) for a, b in pairs)


@pytest.mark.parametrize("design", ["plain8-c24-k1.6.4", "plain8-c24-kg2.1.g2-s2-t6-relu",
                                    "plain8-c96-k2.g2"])
def test_grouped_block_with_the_kernels_is_the_reference_in_float64(design):
    assert _worst(_block_step(design, batch=3, side=6, dtype=torch.float64)) < 1e-10


def test_rung_sized_block_in_float32_is_close_to_float64():
    """plain8-c144-k1.12.12's block at the rungs' shape (batch 64, 16x16): as close to the
    float64 reference as the pure grouped path in float32 (the bound test_grouped holds)."""
    with kernels.use(False):
        pure = _worst(_block_step("plain8-c144-k1.12.12", 64, 16, torch.float32))
    assert _worst(_block_step("plain8-c144-k1.12.12", 64, 16, torch.float32)) <= max(
        1e-5, 2 * pure)


def test_use_false_takes_the_pure_path(monkeypatch):
    calls = []
    monkeypatch.setattr(kernels.BatchNormShuffle, "apply",
                        lambda *a: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    block = ss.net_plan(ss.parse("plain8-c24-k1.6.4"), 10).blocks[0]
    with kernels.use(False):
        assert kernels.extension() is None
        FastBlock(block, path="grouped").train()(torch.randn(2, 24, 4, 4))
    assert not calls


def test_without_a_compiler_the_pure_path_runs_after_one_warning_line(tmp_path):
    """A build that fails (CXX names no compiler, an empty extensions directory): one
    RuntimeWarning line, and the grouped path trains on its pure-PyTorch kernels."""
    import os
    import subprocess
    import sys

    code = ("import warnings, torch, search_space as ss\n"
            "from search_space.fast import FastBlock\n"
            "from search_space import kernels\n"
            "warnings.simplefilter('always')\n"
            "b = ss.net_plan(ss.parse('plain8-c24-k1.6.4'), 10).blocks[0]\n"
            "for _ in range(2):\n"
            "    FastBlock(b, path='grouped').train()(torch.randn(2, 24, 4, 4)).sum().backward()\n"
            "print('ran', kernels.extension())\n")
    env = {**os.environ, "CXX": str(tmp_path / "no-such-c++"),
           "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ran None"
    lines = [ln for ln in out.stderr.splitlines() if "C++ kernels unavailable" in ln]
    assert len(lines) == 1 and "using the pure-PyTorch grouped path" in lines[0]


def test_usable_only_for_cpu_float_tensors():
    assert kernels.usable(torch.zeros(2)) and kernels.usable(torch.zeros(2, dtype=torch.float64))
    assert not kernels.usable(torch.zeros(2, dtype=torch.bfloat16))
    assert not kernels.usable(torch.zeros(2, device="meta"))
    with kernels.use(False):
        assert not kernels.usable(torch.zeros(2))


@pytest.mark.parametrize("argv,message", [
    (["--reps", "0"], "--reps 0: accepted: an integer >= 1"),
    (["--out", "/no/such/dir/d.json"], "--out '/no/such/dir/d.json': directory"),
    (["--baseline", "no-such-rev"], "--baseline 'no-such-rev': accepted: a git revision"),
])
def test_depthwise_benchmark_bad_cli_input_exits_2_with_one_line(argv, message, capsys):
    from benchmarks import depthwise

    with pytest.raises(SystemExit) as e:
        depthwise.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_depthwise_benchmark_quick_run_times_each_kernel_against_aten(tmp_path):
    import json

    from benchmarks import depthwise

    out = tmp_path / "d.json"
    assert depthwise.main(["--quick", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["shapes"]
    assert row["shape"] == [8, 16, 8, 8] and row["flops"] == 18 * 8 * 16 * 8 * 8
    for op in ("forward", "dgrad", "wgrad"):
        cpp, aten = row["ops"][op]["cpp"], row["ops"][op]["aten"]
        assert cpp["over_aten"] == pytest.approx(aten["ms"] / cpp["ms"])
        assert len(cpp["samples_ms"]) == 3 and cpp["ms"] > 0
