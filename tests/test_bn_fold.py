"""The grouped path's folded BatchNorms (search_space.bn_fold) compute the reference ops:
``conv_bn`` against ``nn.BatchNorm2d`` [-> ChannelShuffle] -> ``conv2d(groups)`` ->
``nn.BatchNorm2d`` in float64 (outputs, gradients, running statistics) on random shapes of
the space, with and without the lead BatchNorm, from channel-major and shuffled-view
inputs; gradcheck; whole blocks and a net against ReferenceBlock; float32 error against
the float32 reference's own on post-BN-ReLU activations and on inputs with a large mean;
and the Gram matrix's cancellation guard."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import search_space as ss
from search_space import bn_fold, channel_order, kernels
from search_space.fast import FastBlock
from search_space.modules import ChannelShuffle, ReferenceBlock
from studies.presets import get_preset

KINDS = ("plain8-c144-k1.12.12", "plain8-c96-k2.g2", "plain8-c98-k2.7.7",
         "plain8-c64-k1.8.8-relu", "plain8-c24-kg2.1.g2-s2-t6-relu", "res20-c48-k2.g2",
         "res11-c16-k1.4.4-s3-relu", "plain8-c44-k1.g2.g2.g2.g2.g2", "plain8-c310-k1.2")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _bn(c: int, g: torch.Generator, dtype=torch.float64) -> nn.BatchNorm2d:
    """A BatchNorm with gamma, beta and running statistics away from 1 and 0 (values exact
    in float32, so that float32 copies hold the same parameters)."""
    bn = nn.BatchNorm2d(c).to(dtype)
    for t, lo, hi in ((bn.weight, 0.5, 1.5), (bn.bias, -0.5, 0.5), (bn.running_mean, -0.5, 0.5),
                      (bn.running_var, 0.5, 2.0)):
        t.data.copy_((torch.rand(c, generator=g, dtype=torch.float64) * (hi - lo) + lo).float())
    return bn


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1.0))


def _pair(c, k_in, k_out_groups, branches, lead, seed, dtype=torch.float64):
    """(reference modules, their copies in ``dtype``): [lead BN,] conv weight, BN."""
    g = torch.Generator().manual_seed(seed)
    groups = c // k_in
    cout = k_out_groups * groups
    w = (torch.randn(cout, k_in, 1, 1, generator=g, dtype=torch.float64) / k_in ** 0.5).float()
    ref = [_bn(c, g) if lead else None, w.double(), _bn(cout, g)]
    new = [None if m is None else (m.to(dtype).clone() if isinstance(m, torch.Tensor) else
                                   _copy_bn(m, dtype)) for m in ref]
    return ref, new, groups, branches


def _copy_bn(bn: nn.BatchNorm2d, dtype) -> nn.BatchNorm2d:
    out = nn.BatchNorm2d(bn.num_features).to(dtype)
    out.load_state_dict(bn.state_dict())
    return out


def _reference(z, ref, groups, branches, add_beta):
    bn0, w, bn = ref
    x = ChannelShuffle(branches)(bn0(z)) if bn0 is not None else z
    y = bn(F.conv2d(x, w, groups=groups))
    return y if add_beta else y - bn.bias.view(1, -1, 1, 1)


def _folded(z, new, groups, branches, add_beta, centre):
    """conv_bn on z channel-major (``centre``: minus an offset, as runs give it) or, without
    a lead, on the shuffled view of a channel-major tensor (as within a run)."""
    bn0, w, bn = new
    n, c, h, wd = z.shape
    s = z.detach().mean((0, 2, 3)) + 0.25 if centre else torch.zeros(c, dtype=z.dtype)
    x = channel_order.ChannelMajor.apply(z, s)
    if bn0 is None and branches > 1:  # z's channels are read through a shuffle's view
        x = channel_order.shuffled(x.view(c // branches, branches, -1).transpose(0, 1)
                                   .reshape(c, -1), branches)
    lead = None if bn0 is None else (bn0, branches)
    y = bn_fold.conv_bn(x, w, groups, bn, lead=lead, offset=s.double() if centre else None,
                        add_beta=add_beta)
    return y.reshape(-1, n, h, wd).transpose(0, 1)


CASES = [  # C, K_in, K_out a group, shuffle branches before, lead BN, add_beta, centre
    (12, 3, 3, 4, True, True, True), (12, 4, 2, 3, False, True, False),
    (16, 16, 16, 1, True, False, False), (18, 2, 2, 9, True, True, False),
    (24, 6, 12, 4, False, False, True), (10, 1, 1, 1, True, True, True),
    (36, 12, 12, 12, True, False, True), (20, 5, 5, 5, False, True, True),
    (12, 4, 2, 3, True, False, True), (8, 2, 6, 2, True, True, False)]


def _on(cpp: bool):
    """The C++ kernels on (skip where they do not build) or off."""
    if cpp and kernels.extension() is None:
        pytest.skip("the C++ kernels do not build here (tests/test_kernels.py says why)")
    return kernels.use(cpp)


@pytest.mark.parametrize("cpp", [True, False], ids=["group_gemm", "bmm"])
@pytest.mark.parametrize("c,k_in,k_out,branches,lead,add_beta,centre", CASES)
def test_conv_bn_is_batchnorm_shuffle_conv_batchnorm_in_float64(c, k_in, k_out, branches,
                                                               lead, add_beta, centre, cpp):
    """With the C++ group GEMMs (where they build) and with ATen's bmm."""
    with _on(cpp):
        _check_conv_bn(c, k_in, k_out, branches, lead, add_beta, centre)


def _check_conv_bn(c, k_in, k_out, branches, lead, add_beta, centre):
    ref, new, groups, branches = _pair(c, k_in, k_out, branches, lead, seed=c + k_in)
    g = torch.Generator().manual_seed(7)
    z = torch.randn(3, c, 4, 5, generator=g, dtype=torch.float64) * 2 + 0.7
    zr, zn = z.clone().requires_grad_(), z.clone().requires_grad_()
    for m in (ref[1], new[1]):
        m.requires_grad_()
    want = _reference(zr, ref, groups, branches, add_beta)
    got = _folded(zn, new, groups, branches, add_beta, centre)
    gy = torch.randn(want.shape, generator=g, dtype=torch.float64)
    leaves = [lambda p: p[1]] + [lambda p, i=i, a=a: getattr(p[i], a) for i in (2, 0)
                                 for a in ("weight", "bias") if lead or i]
    dr = torch.autograd.grad(want, [zr] + [f(ref) for f in leaves], gy)
    dn = torch.autograd.grad(got, [zn] + [f(new) for f in leaves], gy)
    assert _rel(got, want) < 1e-12
    for a, b in zip(dn, dr, strict=True):
        assert _rel(a, b) < 1e-11
    if not add_beta:  # beta cancels in the next BatchNorm: no gradient, given as zeros
        assert torch.equal(dn[3], torch.zeros(c // k_in * k_out, dtype=torch.float64))
    for m_new, m_ref in ((new[2], ref[2]), (new[0], ref[0])):
        if m_ref is not None:
            for a, b in zip(m_new.buffers(), m_ref.buffers(), strict=True):
                assert torch.allclose(a.double(), b.double(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cpp", [True, False], ids=["group_gemm", "bmm"])
@pytest.mark.parametrize("lead,add_beta,shift,write", [
    (True, True, 0.0, None), (False, False, 0.0, None), (True, False, 30.0, None),
    (False, True, 30.0, None), (True, True, 0.0, (3, True)), (False, True, 30.0, (2, False)),
    (False, True, 0.0, (1, True))])
def test_conv_bn_passes_gradcheck(lead, add_beta, shift, write, cpp):
    """Also with a mean 30 sd (``shift``): the exactly centred Gram matrix's branch; and
    writing the output shuffled, with and without the ReLU (``write``)."""
    g = torch.Generator().manual_seed(3)
    c, k_in, groups = 6, 3, 2
    x = (torch.randn(c, 2 * 3 * 4, generator=g, dtype=torch.float64)
         + shift * torch.randn(c, 1, generator=g, dtype=torch.float64)).requires_grad_()
    w = torch.randn(c, k_in, 1, 1, generator=g, dtype=torch.float64, requires_grad=True)
    gamma, beta, gamma0, beta0 = (torch.rand(c, generator=g, dtype=torch.float64) + 0.5
                                  for _ in range(4))
    params = [t.requires_grad_() for t in (gamma, beta, gamma0, beta0)]
    xg = x.detach().view(groups, k_in, -1)
    assert (bn_fold.group_stats(xg)[0] is not xg) == bool(shift)  # centred exactly or not
    cfg = (groups, 1e-5, (3, 1e-5) if lead else None, add_beta, write, None, None)

    def f(x, w, gamma, beta, gamma0, beta0):
        return bn_fold.ConvBN.apply(x, w, gamma, beta, gamma0 if lead else None,
                                    beta0 if lead else None, cfg)[0]

    with _on(cpp):
        assert torch.autograd.gradcheck(f, (x, w, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_centring_keeps_the_covariance_where_the_gram_matrix_cancels(monkeypatch):
    """Channels with |mean| 30 sd in float32: the covariance to 3e-6 of the float64 one (in
    units of the variances); without the exact centring (CENTRE_RATIO infinite) the float32
    Gram matrix loses over 30 times that."""
    g = torch.Generator().manual_seed(0)
    x64 = (torch.randn(4, 6, 64 * 256, generator=g, dtype=torch.float64)
           + 30 * torch.randn(4, 6, 1, generator=g, dtype=torch.float64))
    x = x64.float()
    want = bn_fold.group_stats(x.double())[3]
    sd = want.diagonal(dim1=1, dim2=2).sqrt()
    scale = sd[:, :, None] * sd[:, None, :]
    err = float(((bn_fold.group_stats(x)[3] - want) / scale).abs().max())
    assert err < 3e-6
    monkeypatch.setattr(bn_fold, "CENTRE_RATIO", float("inf"))
    raw = float(((bn_fold.group_stats(x)[3] - want) / scale).abs().max())
    assert raw > 30 * err


def _block_step(design: str, batch: int, side: int, dtype, shift: float, seed: int = 1,
                fold: bool | None = True, relu_input: bool = False, cm: bool = False):
    """Worst relative difference of FastBlock's grouped path (``fold``) in ``dtype`` from
    the float64 reference over two training steps: outputs, input and parameter
    gradients, running statistics. ``cm``: the input channel-major, as a folded run hands
    it to the next."""
    block = ss.net_plan(ss.parse(design), 10).blocks[0]
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ref = ReferenceBlock(block).double()
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.load_state_dict(_bn(m.num_features, g).state_dict())
    new = FastBlock(block, path="grouped" if fold is not None else "reference")
    new.fold = fold
    new.load_reference_state(ref)
    new.to(dtype)
    worst = 0.0
    hw = max(1, side * block.convs[-1].hw_out // block.convs[0].hw_in)
    for _ in range(2):
        x = torch.randn(batch, block.cin, side, side, generator=g, dtype=torch.float64)
        x = (x * 0.8 + 0.3).relu() if relu_input else x + shift
        x = x.to(dtype).double()  # exact in dtype: the input's own rounding is not measured
        gy = torch.randn(batch, block.cout, hw, hw, generator=g, dtype=torch.float64)
        xn = x.to(dtype)
        if cm:
            xn = xn.transpose(0, 1).contiguous().transpose(0, 1)
        xr, xn = x.clone().requires_grad_(), xn.requires_grad_()
        yr, yn = ref(xr), new(xn)
        yr.backward(gy)
        yn.backward(gy.to(dtype))
        pairs = [(yn, yr), (xn.grad, xr.grad)]
        pairs += [(a.grad, b.grad) for a, b in zip(new.parameters(), ref.parameters(),
                                                    strict=True)]
        pairs += [(a, b) for a, b in zip(new.buffers(), ref.buffers(), strict=True)
                  if a.is_floating_point()]
        worst = max([worst] + [_rel(a, b) for a, b in pairs])
        assert all(torch.equal(a, b) for a, b in zip(new.buffers(), ref.buffers(), strict=True)
                   if not a.is_floating_point())
        for m in (ref, new):
            m.zero_grad()
    return worst


@pytest.mark.parametrize("cm", [False, True], ids=["nchw", "channel_major"])
@pytest.mark.parametrize("cpp", [True, False], ids=["group_gemm", "bmm"])
@pytest.mark.parametrize("design", KINDS)
def test_folded_block_is_the_reference_in_float64(design, cpp, cm):
    """Input NCHW (a net's first block) or channel-major (as a folded run writes it)."""
    with _on(cpp):
        assert _block_step(design, batch=3, side=6, dtype=torch.float64, shift=0.7,
                           cm=cm) < 1e-10


def test_folded_runs_hand_each_other_channel_major_tensors():
    """A folded run's output is (C, N, H, W) storage seen as NCHW, which the next run's
    depth-wise kernel reads in place (no layout copy); where the block ends in a 1x1
    convolution's run it is written with the ReLU and the shuffle."""
    if kernels.extension() is None:
        pytest.skip("the C++ kernels do not build here (tests/test_kernels.py says why)")
    block = ss.net_plan(ss.parse("plain8-c24-k1.6.4"), 10).blocks[0]
    fast = FastBlock(block, path="grouped").double()
    fast.fold = True
    x = torch.randn(4, block.cin, 6, 6, dtype=torch.float64)
    ref = ReferenceBlock(block).double()
    ref.load_state_dict(fast.state_dict())
    y = fast(x)
    assert kernels.channel_major(y) and not kernels.channel_major(x)
    z = fast(y)
    assert kernels.channel_major(z)
    assert _rel(z, ref(ref(x))) < 1e-12


@pytest.mark.parametrize("design,taken", [("plain8-c144-k1.12.12", 1), ("plain8-c24-k1.6.4", 1),
                                          ("plain8-c64-k1.8.8-relu", 1),
                                          ("plain8-c160-k1.4.4.4.4", 0)])
def test_linked_steps_change_no_value(design, taken, monkeypatch):
    """A run's step hands the next its input Gram matrix and sums (``bn_fold.Link``,
    ``group_nn_gram``): a float32 training step's outputs, gradients and running statistics
    equal those computed without, bit for bit; they are taken at every middle step where
    the shuffle after it is a view (K_l equal to its branches; at c160-k1.4.4.4.4, 4 input
    channels a group against 40 branches, the next step's input is a copy)."""
    if kernels.extension() is None:
        pytest.skip("the C++ kernels do not build here (tests/test_kernels.py says why)")
    block = ss.net_plan(ss.parse(design), 10).blocks[0]
    hits = []
    take = bn_fold.Link.take
    monkeypatch.setattr(bn_fold.Link, "take",
                        lambda self, xg: hits.append(take(self, xg)) or hits[-1])

    def step(linked: bool):
        torch.manual_seed(3)
        fast = FastBlock(block, path="grouped")
        fast.fold = True
        x = torch.randn(8, block.cin, 8, 8, generator=torch.Generator().manual_seed(4))
        x.requires_grad_()
        with monkeypatch.context() as m:
            if not linked:
                m.setattr(bn_fold, "_linked", lambda *operands: None)
            y = fast(x)
            y.backward(torch.ones_like(y).cumsum(1))
        return [y, x.grad, *(p.grad for p in fast.parameters()), *fast.buffers()]

    unlinked = step(False)
    hits.clear()
    linked = step(True)
    assert sum(h is not None for h in hits) == taken * (len(block.convs) - 2)
    assert all(torch.equal(a, b) for a, b in zip(linked, unlinked, strict=True))


def test_folded_random_designs_of_the_presets_in_float64():
    rng = random.Random(25)
    ids = sorted({d for p in ("fig3", "table2", "table40k") for d in get_preset(p).design_ids})
    for design in rng.sample(ids, 6):
        batch, side = rng.choice((1, 2, 5)), rng.choice((2, 4, 6))
        assert _block_step(design, batch, side, torch.float64, shift=0.7,
                           seed=rng.randrange(1000)) < 1e-10, design


@pytest.mark.parametrize("cpp,cm", [(True, False), (True, True), (False, False)],
                         ids=["group_gemm", "group_gemm-channel_major", "bmm"])
@pytest.mark.parametrize("shift,relu_input", [(0.0, True), (50.0, False)])
def test_folded_block_in_float32_as_close_as_the_float32_reference(shift, relu_input, cpp, cm):
    """plain8-c144-k1.12.12 at the rungs' shape (batch 64, 16x16): post-BN-ReLU inputs, and
    inputs of mean 50 (the 3x3 convolution's output then has |mean| up to ~80, 30 sd); the
    products on the C++ group GEMMs and on ATen's bmm (the float32 sums differ); the input
    NCHW or channel-major (as the previous folded run writes it: the depth-wise kernel's
    centring then takes the first eight images' means)."""
    kw = {"design": "plain8-c144-k1.12.12", "batch": 64, "side": 16,
          "dtype": torch.float32, "shift": shift, "relu_input": relu_input}
    own = _block_step(**kw, fold=None)  # the float32 reference's own error
    with _on(cpp):
        assert _block_step(**kw, cm=cm) <= max(1e-5, 2 * own)


def test_folded_without_the_cpp_kernels(monkeypatch):
    """IGCBENCH_KERNELS=0 (kernels.use(False)): the folded path runs on ATen alone."""
    monkeypatch.setattr(kernels.DepthwiseConv3x3, "apply",
                        lambda *a: (_ for _ in ()).throw(AssertionError))
    with kernels.use(False):
        assert _block_step("plain8-c24-k1.6.4", 3, 6, torch.float64, shift=0.7) < 1e-10


def test_folded_net_trains_as_the_reference():
    """One SGD step with weight decay in float64: the same state after it (a folded
    BatchNorm's cancelled beta gets a zero gradient, not None, so it decays as the
    reference's does)."""
    design = ss.parse("plain8-c24-k1.6.4")
    torch.manual_seed(0)
    ref = ss.build(design, num_classes=10, impl="reference").double()
    new = ss.build(design, num_classes=10, impl="grouped").double()
    new.load_state_dict(ref.state_dict())
    for m in new.modules():
        if isinstance(m, FastBlock):
            m.fold = True
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    y = torch.tensor([1, 2, 3, 4])
    for net in (ref, new):
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        F.cross_entropy(net(x), y).backward()
        opt.step()
    for (name, a), (_, b) in zip(new.state_dict().items(), ref.state_dict().items(),
                                 strict=True):
        if a.is_floating_point():
            assert _rel(a, b) < 1e-10, name
