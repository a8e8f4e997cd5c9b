"""FastBlock computes the reference block's function: same parameters, outputs, gradients and
running statistics, for every block kind of the search space, in train and eval mode.

The truth is the reference in float64. FastBlock in float32 must agree with it within 1e-5 of
the largest magnitude of each quantity (2e-5 for whole nets, see there), or, where float32
itself cannot reach that (a weight gradient summing products of a zero-mean gradient and a
large-mean input cancels), be no worse than twice the float32 reference's own error.
FastBlock in float64 must agree to 1e-10 (the algebra). Inputs have a non-zero mean and BN
parameters and running statistics are randomised, so that no checked quantity is zero by
construction.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

import search_space as ss
from search_space import fast as fast_module
from search_space import fused_run
from search_space.fast import FastBlock, FusedBlock, segments
from search_space.modules import Net, ReferenceBlock


@pytest.fixture(autouse=True)
def _one_thread():
    """Small shapes gain nothing from threads, and on a busy machine every parallel region
    of thousands of tiny ops waits for a descheduled thread (10x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

SHIPPED_DEVICE_PATH = dict(fast_module.DEVICE_PATH)  # before any test changes it


@pytest.fixture(autouse=True)
def _fused_on_the_cpu(monkeypatch):
    """These tests hold the fused path's numbers to the reference's. The CPU's default path
    is "auto" (a path per block and batch shape), which for their tiny inputs may be either;
    test_auto_path_* below test that choice."""
    monkeypatch.setitem(fast_module.DEVICE_PATH, "cpu", ("fused", "fused"))


DESIGNS = {
    "igcv2-ii": "plain8-c144-k1.12.12",
    "xception": "plain8-c64-k1.64",
    "igcv2-star-res20": "res20-c216-k1.8.8.8-stem64",
    "igcv2-i": "plain8-c98-k2.7.7",
    "igcv1": "plain8-c96-k2.g2",
    "igcv1-res20": "res20-c48-k2.g2",
    "nonlinear": "plain8-c64-k1.8.8-relu",
    "per-stage-k": "res8-c64-k1.8.8/1.16.16/1.32.32",
    "mobilenet2": "mobilenet2-c32-kg1.1.g1-s2-t6-relu",
    "igcv3": "igcv3net-c32-kg2.1.g2-s2-t6-relu",
    "nonlinear-3x3-last": "res11-c16-k1.4.4-s3-relu",
    "igcv2-i-nonlinear": "plain8-c24-k2.3.4-relu",
}


def _blocks(design_id: str) -> list[ss.plan.Block]:
    """The distinct blocks of a design: stride-2 and width-changing ones, the second block of a
    residual pair (no end ReLU), expansion blocks and their t = 1 variant."""
    plan = ss.net_plan(ss.parse(design_id))
    seen, out = set(), []
    for b in plan.blocks:
        key = tuple((c.cin, c.cout, c.k, c.stride, c.groups) for c in b.convs), b.shuffle, b.relu
        if key not in seen:
            seen.add(key)
            out.append(b)
    if plan.skip == "pairs":  # the residual pair drops the second block's end ReLU
        out.append(replace(out[0], relu=out[0].relu[:-1] + (False,)))
    return out[:4]  # the first four cover every transition of these designs


BLOCK_CASES = [
    pytest.param(design_id, i, id=f"{kind}-{i}")
    for kind, design_id in DESIGNS.items()
    for i in range(len(_blocks(design_id)))
]


def _randomise(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str,
                  scale: float = 0.0) -> None:
    """max |actual - expected| <= tol * max(max |expected|, scale).

    ``scale`` covers tensors that are zero in exact arithmetic (the gradient of a BN shift
    followed by another BN): the reference's own rounding is then all that is left.
    """
    assert actual.shape == expected.shape, what
    ref = max(expected.abs().max().item(), scale)
    err = (actual.double() - expected.double()).abs().max().item()
    assert err <= tol * ref, f"{what}: max error {err:.3g} > {tol:g} * {ref:.3g}"


def _run(model: nn.Module, x: torch.Tensor, r: torch.Tensor, train: bool) -> list:
    """Output, input gradient, parameter gradients and buffers after one forward/backward."""
    model.train(train)
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    y = model(x)
    (y * r.to(y.dtype)).sum().backward()
    return [("output", y.detach()), ("input grad", x.grad)] + [
        (f"grad {n}", p.grad) for n, p in model.named_parameters()
    ] + [(f"buffer {n}", b) for n, b in model.named_buffers()]


def _compare(
    ref: nn.Module, fast: nn.Module, x: torch.Tensor, steps: int = 2, tol: float = 1e-5
) -> None:
    """Train ``steps`` times, then eval once, comparing everything after each step."""
    ref64, fast64 = copy.deepcopy(ref).double(), copy.deepcopy(fast).double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        shape = ref.eval()(x).shape  # eval mode: no running-statistics update
    for train in [True] * steps + [False]:
        r = torch.randn(shape, generator=g)
        truth = _run(ref64, x.double(), r, train)
        got = {name: _run(m, xx, r, train) for name, m, xx in
               (("ref32", ref, x), ("fast32", fast, x), ("fast64", fast64, x.double()))}
        scale = 1e-2 * max(t.abs().max().item() for n, t in truth if n.startswith("grad"))
        for k, (name, want) in enumerate(truth):
            what = f"{'train' if train else 'eval'} {name}"
            floor = scale if name.startswith("grad") else 0.0  # zero-by-algebra gradients
            _assert_close(got["fast64"][k][1], want, 1e-10, what + " (float64)", floor)
            ref_err = (got["ref32"][k][1].double() - want).abs().max().item()
            ref_rel = ref_err / max(want.abs().max().item(), floor, 1e-300)
            _assert_close(got["fast32"][k][1], want, max(tol, 2 * ref_rel), what, floor)


def _pair(block_or_plan, dtype=torch.float32, channels_last=False):
    torch.manual_seed(0)  # the reference's own initialisation draws from the global generator
    if isinstance(block_or_plan, ss.plan.Block):
        ref, fast = ReferenceBlock(block_or_plan), FastBlock(block_or_plan)
    else:
        ref, fast = Net(block_or_plan, ReferenceBlock), Net(block_or_plan, FastBlock)
    _randomise(ref)
    fast.load_state_dict(ref.state_dict())
    ref, fast = ref.to(dtype), fast.to(dtype)
    if channels_last:
        ref, fast = (m.to(memory_format=torch.channels_last) for m in (ref, fast))
    return ref, fast


def _input(cin: int, n: int, hw: int, dtype=torch.float32, channels_last=False):
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(n, cin, hw, hw, generator=g) + 1.5).to(dtype)  # a mean to centre away
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("design_id, i", BLOCK_CASES)
def test_block_matches_reference(design_id, i):
    block = _blocks(design_id)[i]
    cl = i % 2 == 0  # channels_last and NCHW inputs take different layout paths
    ref, fast = _pair(block, channels_last=cl)
    _compare(ref, fast, _input(block.cin, 4, 6, channels_last=cl))


@pytest.mark.parametrize("kind", ["igcv2-ii", "igcv1-res20", "per-stage-k", "nonlinear"])
def test_whole_net_matches_reference(kind):
    """Residual pairs with stride-2 transitions, zero-padded skips, stem and classifier."""
    plan = ss.net_plan(ss.parse(DESIGNS[kind]), 10)
    ref, fast = _pair(plan, channels_last=True)
    # Rounding accumulates through 8-20 layers: the float32 reference itself is off by up to
    # 1e-5 at the stem, so a whole net gets 2e-5 (each block alone is held to 1e-5).
    _compare(ref, fast, _input(3, 2, 16, channels_last=True), steps=1, tol=2e-5)


def test_same_parameters_and_state_both_ways():
    for design_id in DESIGNS.values():
        plan = ss.net_plan(ss.parse(design_id))
        ref, fast = Net(plan, ReferenceBlock), Net(plan, FastBlock)
        shapes = {k: v.shape for k, v in ref.state_dict().items()}
        assert {k: v.shape for k, v in fast.state_dict().items()} == shapes, design_id
        params = ss.describe(ss.parse(design_id))["params"]
        assert sum(p.numel() for p in fast.parameters()) == params, design_id
        ref.load_state_dict(fast.state_dict())  # and back
    block = ss.net_plan(ss.parse("plain8-c144-k1.12.12")).blocks[0]
    ref, fast = _pair(block)
    fast2 = FastBlock(block)
    fast2.load_reference_state(ref)
    assert all(torch.equal(a, b) for a, b in zip(fast2.state_dict().values(),
                                                  ref.state_dict().values(), strict=True))


def test_build_selects_fast_by_default_and_reference_by_name():
    d = ss.parse("plain8-c64-k1.8.8")
    assert ss.DEFAULT_IMPL == "fast"
    assert isinstance(ss.build(d).blocks[0], FastBlock)
    assert type(ss.build(d, impl="reference").blocks[0]) is ReferenceBlock


def test_segments_of_the_paper_blocks():
    blk = ss.net_plan(ss.parse("plain8-c144-k1.12.12")).blocks[0]
    (run,) = segments(blk)  # depth-wise 3x3, then BN-P-W-BN-P-W-BN-P as one affine map
    assert (run.spatial, run.lead, run.relu) == (0, (1, 1), True)
    assert [(g, groups) for _, _, g, groups in run.steps] == [(12, 12), (12, 12)]
    nonlinear = ss.net_plan(ss.parse("plain8-c64-k1.8.8-relu")).blocks[0]
    assert [(r.spatial, len(r.steps), r.relu) for r in segments(nonlinear)] == [
        (0, 0, True), (None, 2, True)]
    expansion = ss.net_plan(ss.parse("mobilenet2-c32-kg1.1.g1-s2-t6-relu")).blocks[1]
    assert [(r.spatial, len(r.steps), r.relu) for r in segments(expansion)] == [
        (None, 1, True), (3, 0, True), (None, 1, False)]


def test_no_grad_training_forward_updates_running_stats_like_reference():
    block = _blocks("plain8-c98-k2.7.7")[0]
    ref, fast = _pair(block)
    x = _input(block.cin, 4, 8)
    with torch.no_grad():
        _assert_close(fast.train()(x), ref.train()(x), 1e-5, "output")
    for (name, a), b in zip(fast.named_buffers(), ref.buffers(), strict=True):
        _assert_close(a.double(), b.double(), 1e-5, name)


def test_cumulative_momentum_and_eval_cache_follows_parameter_changes():
    block = _blocks("plain8-c144-k1.12.12")[0]
    ref, fast = _pair(block)
    for m in (*ref.modules(), *fast.modules()):
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative moving average
    x = _input(block.cin, 4, 8)
    for _ in range(3):
        fast.train()(x)
        ref.train()(x)
    with torch.no_grad():
        _assert_close(fast.eval()(x), ref.eval()(x), 1e-5, "eval after cumulative stats")
        for m in (ref, fast):  # an in-place update, as an optimizer step makes
            m[3].weight.mul_(-0.5)
            m[6].running_var.add_(1.0)
        _assert_close(fast(x), ref(x), 1e-5, "eval after in-place parameter change")
        other = ReferenceBlock(block).eval()
        fast.load_state_dict(other.state_dict())
        _assert_close(fast(x), other(x), 1e-5, "eval after load_state_dict")


def test_autocast_bfloat16_runs_and_stays_near_reference():
    block = _blocks("res20-c216-k1.8.8.8-stem64")[0]
    ref, fast = _pair(block)
    x = _input(block.cin, 4, 8)
    for train in (True, False):
        ref.train(train), fast.train(train)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yr, yf = ref(x), fast(x)
        assert yf.dtype == yr.dtype == torch.bfloat16
        _assert_close(yf.float(), yr.float(), 5e-2, f"bf16 train={train}")
    xg = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast.train()(xg).float().square().mean().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_device_path_picks_the_forward_per_mode(monkeypatch):
    """DEVICE_PATH[device] = (training, eval) path: CUDA's choice, tried on the CPU."""
    monkeypatch.setitem(fast_module.DEVICE_PATH, "cpu", ("reference", "fused"))
    fused_runs = []
    apply = fused_run.TrainRun.apply
    monkeypatch.setattr(fused_run.TrainRun, "apply",
                        lambda x, run, *a: fused_runs.append(run) or apply(x, run, *a))
    block = _blocks("plain8-c144-k1.12.12")[0]
    ref, fast = _pair(block)
    x = _input(block.cin, 2, 4)
    assert torch.equal(fast.train()(x), ref.train()(x))  # the reference's own ops, bitwise
    assert fused_runs == []
    with torch.no_grad():
        _assert_close(fast.eval()(x), ref.eval()(x), 1e-5, "eval on the fused path")
    fused = ss.build(ss.parse("plain8-c64-k1.64"), impl="fused").blocks[0]
    assert isinstance(fused, FusedBlock) and fused.path == "fused"
    fused_runs.clear()
    fused.train()(_input(64, 2, 4))
    assert len(fused_runs) == 1


def test_reference_path_is_the_reference_forward():
    block = _blocks("plain8-c64-k1.64")[0]
    ref, fast = _pair(block)
    fast.path = "reference"
    x = _input(block.cin, 2, 4)
    assert torch.equal(fast.eval()(x), ref.eval()(x))
    with pytest.raises(ValueError, match="path"):
        FastBlock(block, path="gpu")
    assert copy.deepcopy(fast).path == "reference"


def test_training_after_a_first_pass_under_inference_mode():
    """The fused path's cached helper tensors made under torch.inference_mode (a latency
    measurement before any training in the process) must not break a later training step."""
    fused_run._eye.cache_clear()
    fused_run._shuffle_perm.cache_clear()
    torch.manual_seed(0)
    net = ss.build(ss.parse("plain8-c16-k1.4.4"), num_classes=10)
    x = torch.randn(4, 3, 8, 8)
    with torch.inference_mode():
        net.eval()(x)
    net.train()(x).sum().backward()  # raised "Inference tensors cannot be saved for backward"
    assert all(p.grad is not None for p in net.parameters())


def _count_fused_runs(monkeypatch) -> list:
    runs = []
    apply = fused_run.TrainRun.apply
    monkeypatch.setattr(fused_run.TrainRun, "apply",
                        lambda x, run, *a: runs.append(run) or apply(x, run, *a))
    return runs


def test_auto_path_follows_the_rule_per_block_and_batch_shape(monkeypatch):
    """On the CPU FastBlock asks search_space.work.choose_path, per (mode, batch, size)."""
    from search_space.work import choose_path

    monkeypatch.setitem(fast_module.DEVICE_PATH, "cpu", ("auto", "auto"))
    narrow = _blocks("plain8-c200-k1.g2.g2.g2.g2.g2")[0]
    wide = _blocks("plain8-c1504-k1.16.16.16")[0]
    fast_narrow, fast_wide = FastBlock(narrow), FastBlock(wide)
    # At 8x8 and batch 64 (the time budget's rungs): fused for C=200 with K=100; for C=1504
    # with K=16 (37 s fused against 0.43 s a training step on the reference path:
    # docs/performance.md) the grouped path in training, the reference path in eval.
    assert fast_narrow.train().chosen_path(64, 8) == "fused"
    assert fast_wide.train().chosen_path(64, 8) == "grouped"
    assert fast_wide.eval().chosen_path(500, 8) == "reference"
    # The composition is paid once per step: one image alone does not pay for it.
    assert fast_narrow.train().chosen_path(1, 8) == "grouped"
    for blk, mode in ((narrow, True), (wide, True), (wide, False)):
        for batch, side in ((64, 8), (1, 8), (64, 32)):
            want = choose_path(blk, training=mode, batch=batch, scale=(side / 32) ** 2)
            assert FastBlock(blk).train(mode).chosen_path(batch, side) == want
    # The forward goes where the rule says: the fused run, the grouped kernels, or the
    # reference's own ops (bit for bit).
    runs = _count_fused_runs(monkeypatch)
    grouped = []
    real = fast_module.grouped_run
    monkeypatch.setattr(fast_module, "grouped_run",
                        lambda m, run, x, **kw: grouped.append(run) or real(m, run, x, **kw))
    ref, fast = _pair(narrow)
    x = _input(narrow.cin, 64, 8)
    fast.train()(x)
    assert len(runs) == len(fast.runs) and grouped == []
    runs.clear()
    x1 = _input(narrow.cin, 1, 8)
    y1, r1 = fast.train()(x1), ref.train()(x1)
    assert (y1 - r1).abs().max() <= 1e-5 * r1.abs().max()
    assert runs == [] and len(grouped) == len(fast.runs)
    grouped.clear()
    fast.path = "reference"
    assert torch.equal(fast.train()(x1), ref.train()(x1)) and runs == grouped == []


def test_auto_path_is_the_default_of_build_on_the_cpu(monkeypatch):
    assert SHIPPED_DEVICE_PATH["cpu"] == ("auto", "auto")
    assert SHIPPED_DEVICE_PATH["cuda"] == ("reference", "fused")
    monkeypatch.setitem(fast_module.DEVICE_PATH, "cpu", SHIPPED_DEVICE_PATH["cpu"])
    net = ss.build(ss.parse("plain8-c16-k1.4.4"), num_classes=10)
    assert all(b.path is None for b in net.blocks)  # DEVICE_PATH decides, per device
    runs = _count_fused_runs(monkeypatch)
    net.train()(torch.randn(64, 3, 8, 8))
    assert len(runs) == 6  # C=16 at batch 64: every block fused
    with pytest.raises(ValueError, match="'auto'"):
        FastBlock(net.blocks[0].block_plan, path="gpu")
