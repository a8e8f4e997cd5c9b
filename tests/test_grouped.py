"""The grouped training path (search_space.grouped) computes the reference block's function:
outputs, input and parameter gradients and running statistics, in float64 to 1e-10 of each
quantity's largest magnitude, on block kinds of the space and on random designs of the
presets; its two kernels alone against ``nn.Conv2d(groups)`` and ``BatchNorm2d`` +
``ChannelShuffle``; and FastBlock takes it where the rule says."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import search_space as ss
from search_space import fast as fast_module
from search_space import kernels
from search_space.fast import FastBlock, GroupedBlock
from search_space.grouped import _BatchNormShuffle, group_conv1x1
from search_space.modules import ChannelShuffle, ReferenceBlock
from studies.presets import get_preset

KINDS = ("plain8-c144-k1.12.12", "plain8-c64-k1.64", "plain8-c96-k2.g2", "plain8-c98-k2.7.7",
         "plain8-c64-k1.8.8-relu", "plain8-c24-kg2.1.g2-s2-t6-relu", "res20-c48-k2.g2",
         "res11-c16-k1.4.4-s3-relu", "plain8-c44-k1.g2.g2.g2.g2.g2")


@pytest.fixture(autouse=True)
def _one_thread_pure_path():
    """One thread, and the pure-PyTorch kernels (tests/test_kernels.py tests the C++ ones)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with kernels.use(False):
        yield
    torch.set_num_threads(n)


def _randomise(block: nn.Module, seed: int) -> None:
    """BN parameters and running statistics away from their initial 1 and 0."""
    g = torch.Generator().manual_seed(seed)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t, lo, hi in ((m.weight, 0.5, 1.5), (m.bias, -0.5, 0.5),
                              (m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0)):
                t.data.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) * (hi - lo) + lo)


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference over the largest magnitude of ``b``, or over 1 where that is
    smaller: a BN's bias gradient before another BN is 0 by construction (rounding only)."""
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1.0))


def _check_block(block, batch: int, side: int, seed: int, dtype=torch.float64,
                 path: str = "grouped") -> float:
    """Worst relative difference of FastBlock's ``path`` against the float64 reference over
    two training steps' outputs, gradients and running statistics."""
    torch.manual_seed(seed)
    ref = ReferenceBlock(block).double()
    _randomise(ref, seed)
    new = FastBlock(block, path=path).to(dtype)
    new.fold = False  # the unfolded grouped path (tests/test_bn_fold.py: the folded one)
    new.load_reference_state(ref)
    new.to(dtype)
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _ in range(2):
        x = torch.randn(batch, block.cin, side, side, generator=g, dtype=torch.float64) + 0.7
        gy = torch.randn(batch, block.cout, block.convs[-1].hw_out * side // block.convs[0].hw_in,
                         block.convs[-1].hw_out * side // block.convs[0].hw_in, generator=g,
                         dtype=torch.float64)
        xr, xn = x.clone().requires_grad_(), x.to(dtype).requires_grad_()
        yr, yn = ref(xr), new(xn)
        yr.backward(gy)
        yn.backward(gy.to(dtype))
        pairs = [(yn, yr), (xn.grad, xr.grad)]
        pairs += [(a.grad, b.grad) for a, b in zip(new.parameters(), ref.parameters(),
                                                    strict=True)]
        pairs += [(a, b) for a, b in zip(new.buffers(), ref.buffers(), strict=True)
                  if a.is_floating_point()]
        worst = max([worst] + [_max_rel(a.double(), b) for a, b in pairs])
        assert all(torch.equal(a, b) for a, b in zip(new.buffers(), ref.buffers(), strict=True)
                   if not a.is_floating_point())  # num_batches_tracked
        for m in (ref, new):
            m.zero_grad()
    return worst


@pytest.mark.parametrize("design", KINDS)
def test_grouped_path_is_the_reference_in_float64(design):
    for block in {(b.cin, b.cout, b.convs[0].hw_in): b
                  for b in ss.net_plan(ss.parse(design), 10).blocks}.values():
        assert _check_block(block, batch=3, side=min(8, block.convs[0].hw_in), seed=1) < 1e-10


def test_random_designs_of_the_presets_in_float64():
    """Random designs of fig3, table2 and table 1.1, random batch and side."""
    rng = random.Random(24)
    ids = sorted({d for p in ("fig3", "table2", "table40k") for d in get_preset(p).design_ids})
    for design in rng.sample(ids, 6):
        block = ss.net_plan(ss.parse(design), 10).blocks[0]
        batch, side = rng.choice((1, 2, 5)), rng.choice((2, 4, 6))
        assert _check_block(block, batch, side, seed=rng.randrange(1000)) < 1e-10, design


def test_grouped_path_in_float32_is_as_close_to_float64_as_the_float32_reference():
    """As tests/test_fast.py holds the fused path: within 1e-5 of the float64 reference, or
    no worse than twice the float32 reference's own error where float32 cannot reach it."""
    for design in ("plain8-c144-k1.12.12", "plain8-c64-k1.g8.g8"):
        block = ss.net_plan(ss.parse(design), 10).blocks[0]
        kw = {"batch": 8, "side": 8, "seed": 3, "dtype": torch.float32}
        own = _check_block(block, path="reference", **kw)
        assert _check_block(block, **kw) <= max(1e-5, 2 * own), design


def test_group_conv1x1_is_conv2d_with_groups():
    g = torch.Generator().manual_seed(0)
    for cin, cout, groups in ((12, 12, 3), (8, 16, 4), (16, 8, 2), (6, 6, 1), (10, 10, 10)):
        x = torch.randn(2, cin, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
        w = torch.randn(cout, cin // groups, 1, 1, generator=g, dtype=torch.float64,
                        requires_grad=True)
        ref = F.conv2d(x, w, groups=groups)
        xc = x.transpose(0, 1).reshape(cin, -1)  # channel-major (C, N*H*W)
        out = group_conv1x1(xc, w, groups).view(cout, 2, 3, 5).transpose(0, 1)
        gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
        dx_ref, dw_ref = torch.autograd.grad(ref, (x, w), gy)
        dx, dw = torch.autograd.grad(out, (x, w), gy)
        assert _max_rel(out, ref) < 1e-12 and _max_rel(dx, dx_ref) < 1e-12
        assert _max_rel(dw, dw_ref) < 1e-12


@pytest.mark.parametrize("src,dst,shuffle,relu", [
    ("nchw", "cp", 1, False), ("nchw", "nchw", 4, True), ("cp", "cp", 3, False),
    ("cp", "nchw", 4, True), ("cp", "nchw", 1, False)])
def test_batchnorm_shuffle_is_batchnorm_then_channel_shuffle(src, dst, shuffle, relu):
    n, c, h, w = 3, 12, 2, 5
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 2 + 1
    bn_ref, bn_new = nn.BatchNorm2d(c).double(), nn.BatchNorm2d(c).double()
    _randomise(bn_ref, 2)
    bn_new.load_state_dict(bn_ref.state_dict())
    xr = x.clone().requires_grad_()
    ref = ChannelShuffle(shuffle)(bn_ref(xr))
    ref = ref.relu() if relu else ref
    xn = x.clone().requires_grad_()
    inp = xn if src == "nchw" else xn.transpose(0, 1).reshape(c, -1)
    out = _BatchNormShuffle.apply(inp, bn_new.weight, bn_new.bias, bn_new, src, dst, shuffle,
                                  relu, (n, c, h, w))
    if dst == "cp":
        out = out.view(c, n, h, w).transpose(0, 1)
    gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    want = torch.autograd.grad(ref, (xr, bn_ref.weight, bn_ref.bias), gy)
    got = torch.autograd.grad(out, (xn, bn_new.weight, bn_new.bias), gy)
    assert _max_rel(out, ref) < 1e-12
    assert all(_max_rel(a, b) < 1e-12 for a, b in zip(got, want, strict=True))
    for a, b in zip(bn_new.buffers(), bn_ref.buffers(), strict=True):
        assert torch.allclose(a.double(), b.double(), rtol=1e-12, atol=0)


def test_fastblock_takes_the_grouped_path_where_the_rule_says(monkeypatch):
    from search_space.work import choose_path, fold_pays

    monkeypatch.setitem(fast_module.DEVICE_PATH, "cpu", ("auto", "auto"))
    block = ss.net_plan(ss.parse("plain8-c310-k1.2"), 10).blocks[0]
    assert choose_path(block, training=True, batch=64, scale=1 / 4) == "grouped"
    calls = []
    real = fast_module.grouped_run
    monkeypatch.setattr(fast_module, "grouped_run",
                        lambda m, run, x, fold: calls.append((run, fold)) or real(m, run, x,
                                                                                  fold=fold))
    fb = FastBlock(block).train()
    fb(torch.randn(64, 310, 16, 16))
    assert fb.chosen_path(64, 16) == "grouped" and len(calls) == len(fb.runs)
    # K_in = 2: the BatchNorms fold into the 1x1 convolution (search_space.work.fold_pays)
    assert [f for _, f in calls] == [fold_pays(block, r) for r in fb.runs] == [
        bool(r.steps) for r in fb.runs]
    calls.clear()
    with torch.no_grad():  # eval: the grouped path is training-only; eval takes the rule's
        fb.eval()(torch.randn(2, 310, 16, 16))
    assert not calls and fb.chosen_path(2, 16) in ("fused", "reference")


def test_grouped_impl_builds_a_net_that_trains_as_the_reference():
    """A whole net, impl="grouped", one SGD step in float64: the same weights after it."""
    design = ss.parse("plain8-c24-k1.6.4")
    torch.manual_seed(0)
    ref = ss.build(design, num_classes=10, impl="reference").double()
    new = ss.build(design, num_classes=10, impl="grouped").double()
    new.load_state_dict(ref.state_dict())
    assert all(isinstance(b, GroupedBlock) for b in new.blocks)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    y = torch.tensor([1, 2, 3, 4])
    for net in (ref, new):
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        F.cross_entropy(net(x), y).backward()
        opt.step()
    for (name, a), (_, b) in zip(new.state_dict().items(), ref.state_dict().items(),
                                 strict=True):
        if a.is_floating_point():
            assert _max_rel(a, b) < 1e-10, name


@pytest.mark.parametrize("cpp", [True, False], ids=["kernels", "aten"])
def test_fast_stem_is_the_reference_stem(cpp):
    """FastBlock nets' stem (``fast.FastStem``): conv -> BatchNorm -> ReLU as nn.Sequential
    computes it, in float64, two training steps (output, input and parameter gradients,
    running statistics), written channel-major where the kernels build; eval unchanged.
    (The module's fixture turns the kernels off: here they are on for ``cpp``.)"""
    with kernels.use(cpp):
        if cpp and kernels.extension() is None:
            pytest.skip("the C++ kernels do not build here (tests/test_kernels.py says why)")
    torch.manual_seed(3)
    ref = ss.build(ss.parse("plain8-c24-k1.6.4"), num_classes=10, impl="reference").stem.double()
    new = ss.build(ss.parse("plain8-c24-k1.6.4"), num_classes=10, impl="fast").stem.double()
    assert isinstance(new, fast_module.FastStem) and type(ref) is nn.Sequential
    new.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(5)
    with kernels.use(cpp):
        for _ in range(2):
            x = torch.randn(3, 3, 8, 8, generator=g, dtype=torch.float64)
            xr, xn = x.clone().requires_grad_(), x.clone().requires_grad_()
            yr, yn = ref(xr), new(xn)
            assert kernels.channel_major(yn) == cpp
            gy = torch.randn(yr.shape, generator=g, dtype=torch.float64)
            yr.backward(gy)
            yn.backward(gy)
            pairs = [(yn, yr), (xn.grad, xr.grad),
                     *((a.grad, b.grad) for a, b in zip(new.parameters(), ref.parameters(),
                                                        strict=True)),
                     *((a, b) for a, b in zip(new.buffers(), ref.buffers(), strict=True))]
            for a, b in pairs:
                assert _max_rel(a.double(), b.double()) < 1e-12
        new.eval()
        ref.eval()
        ref.load_state_dict(new.state_dict())  # running statistics equal to rounding above
        x = torch.randn(3, 3, 8, 8, generator=g, dtype=torch.float64)
        assert torch.equal(new(x), ref(x))
