"""evaluators.folded: N nets folded into one module compute what the N nets compute."""

from __future__ import annotations

import pytest
import torch

import search_space as ss
from evaluators.folded import CONV1X1, FoldedNet, FoldedShuffle, fold_states, unfold_states
from search_space.modules import ChannelShuffle
from search_space.plan import net_plan

# Every kind the engine must train: Xception, IGCV2 L=3 (strict), a loose design (fixed branch
# counts), IGCV1 and IGCV2 I (group 3x3), a nonlinear block, and res20 nets with stride-2
# width-doubling transitions, residual pairs, per-stage K and a stem narrower than stage 1.
DESIGNS = ["plain8-c24-k1.24", "plain8-c36-k1.6.6", "plain8-c28-k1.g2.g2", "plain8-c12-k2.g2",
           "plain8-c12-k2.3.2", "plain8-c16-k1.4.4-relu", "res20-c8-k1.2.4/1.4.4/1.8.4",
           "res20-c16-k1.4.4-stem8"]
MODELS = 3


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _nets(design: str, dtype: torch.dtype, impl: str | None = None) -> list[torch.nn.Module]:
    nets = []
    for seed in range(MODELS):
        torch.manual_seed(seed)
        nets.append(ss.build(ss.parse(design), num_classes=10, impl=impl).to(dtype))
    return nets


def _folded(design: str, nets: list[torch.nn.Module], conv1x1: str) -> FoldedNet:
    plan = net_plan(ss.parse(design), 10)
    return FoldedNet.from_nets(plan, nets, conv1x1).to(next(nets[0].parameters()).dtype)


def _inputs(dtype: torch.dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return [torch.randn(4, 3, 8, 8, generator=g).to(dtype) for _ in range(MODELS)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# "bmm" shares every layer but the group 1x1 convolutions with the others: three kinds do.
CASES = [(d, c) for d in DESIGNS for c in ("grouped", "dense")] + [
    (d, "bmm") for d in ("plain8-c36-k1.6.6", "plain8-c28-k1.g2.g2", DESIGNS[-2])]


@pytest.mark.parametrize(("design", "conv1x1"), CASES)
def test_train_step_equals_the_separate_nets_float64(design, conv1x1):
    nets = _nets(design, torch.float64, impl="reference")
    folded = _folded(design, nets, conv1x1)
    xs = [x.requires_grad_() for x in _inputs(torch.float64)]
    xf = torch.cat([x.detach() for x in xs], 1).requires_grad_()
    out = folded(xf)
    refs = [net(x) for net, x in zip(nets, xs, strict=True)]
    assert out.shape == (4, MODELS, 10)
    for m in range(MODELS):
        assert _rel(out[:, m], refs[m]) < 1e-12
    weights = torch.randn(4, MODELS, 10, dtype=torch.float64)  # a loss that weighs each output
    (out * weights).sum().backward()
    for m, ref in enumerate(refs):
        (ref * weights[:, m]).sum().backward()
    grads = unfold_states({k: p.grad for k, p in folded.named_parameters()}, MODELS)
    for m, net in enumerate(nets):
        # Relative to the net's largest gradient: some are zero up to rounding (a BN shift
        # followed by another BN), where an elementwise ratio would compare noise.
        scale = max(p.grad.abs().max().item() for p in net.parameters())
        for key, p in net.named_parameters():
            assert (grads[m][key] - p.grad).abs().max().item() < 1e-10 * scale, (m, key)
        assert _rel(xf.grad[:, 3 * m:3 * m + 3], xs[m].grad) < 1e-10
    # Running statistics moved per model, and eval mode uses them per model.
    states = unfold_states(folded.state_dict(), MODELS)
    for m, net in enumerate(nets):
        for key, value in net.state_dict().items():
            assert torch.allclose(states[m][key].double(), value.double(), rtol=0, atol=1e-12)
    folded.eval()
    with torch.no_grad():
        out = folded(xf)
        for m, net in enumerate(nets):
            assert _rel(out[:, m], net.eval()(xs[m])) < 1e-12


@pytest.mark.parametrize("conv1x1", CONV1X1)
def test_float32_matches_the_default_implementation(conv1x1):
    design = "res20-c8-k1.2.4/1.4.4/1.8.4"
    nets = _nets(design, torch.float32)  # the default impl (FastBlock; on a CPU, its rule's path)
    folded = _folded(design, nets, conv1x1)
    xs = _inputs(torch.float32)
    out = folded(torch.cat(xs, 1))
    out.square().sum().backward()
    grads = unfold_states({k: p.grad for k, p in folded.named_parameters()}, MODELS)
    for m, net in enumerate(nets):
        ref = net(xs[m])
        assert _rel(out[:, m], ref) < 2e-5
        ref.square().sum().backward()
        scale = max(p.grad.abs().max().item() for p in net.parameters())
        worst = max((grads[m][k] - p.grad).abs().max().item() for k, p in net.named_parameters())
        assert worst < 1e-4 * scale  # float32 rounding through 20 layers; a wrong layer is O(1)


@pytest.mark.parametrize("conv1x1", CONV1X1)
def test_models_do_not_mix(conv1x1):
    """A non-finite value in one model stays there (the engine fails that model alone)."""
    design = "plain8-c36-k1.6.6"
    folded = _folded(design, _nets(design, torch.float32), conv1x1)
    x = torch.cat(_inputs(torch.float32), 1)
    x[:, 3:6] = float("inf")
    out = folded(x)
    out.sum().backward()
    assert not torch.isfinite(out[:, 1]).any()
    assert torch.isfinite(out[:, [0, 2]]).all()
    for m in (0, 2):
        grads = unfold_states({k: p.grad for k, p in folded.named_parameters()}, MODELS)[m]
        assert all(torch.isfinite(g).all() for g in grads.values())


def test_state_dict_names_and_shapes_are_the_nets_folded():
    design = "res20-c16-k1.4.4-stem8"
    nets = _nets(design, torch.float32)
    folded = _folded(design, nets, "dense")
    ref = nets[0].state_dict()
    state = folded.state_dict()
    assert list(state) == list(ref)
    assert state["stem.0.weight"].shape == (MODELS * 8, 3, 3, 3)  # the stem is 8 wide
    assert state["classifier.1.weight"].shape == (MODELS, 10, 64)  # stage 3: 4 x 16
    assert state["blocks.0.first.0.weight"].shape == (MODELS * 8, 1, 3, 3)  # channel-wise
    back = unfold_states(fold_states([n.state_dict() for n in nets]), MODELS)
    for m, net in enumerate(nets):
        assert all(torch.equal(back[m][k], v) for k, v in net.state_dict().items())


def test_folded_shuffle_is_channel_shuffle_per_model_in_either_layout():
    x = torch.randn(2, MODELS * 12, 3, 3)
    want = torch.cat([ChannelShuffle(4)(part) for part in x.chunk(MODELS, 1)], 1)
    assert torch.equal(FoldedShuffle(MODELS, 4)(x), want)
    y = FoldedShuffle(MODELS, 4)(x.contiguous(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(y, want)


def test_bad_arguments_name_the_value():
    plan = net_plan(ss.parse("plain8-c24-k1.24"), 10)
    with pytest.raises(ValueError, match="conv1x1='gemm'; accepted: grouped, dense, bmm"):
        FoldedNet(plan, 2, "gemm")
    with pytest.raises(ValueError, match="not an ImageNet plan"):
        FoldedNet(net_plan(ss.parse("mobilenet2-c32-kg1.1.g1-s2-t6-relu")), 2)
    states = [n.state_dict() for n in _nets("plain8-c24-k1.24", torch.float32)]
    states[1]["stem.1.num_batches_tracked"] += 1
    with pytest.raises(ValueError, match="stem.1.num_batches_tracked differs"):
        fold_states(states)


def test_training_stem_is_each_models_own_to_the_bit():
    """FoldedNet's stem computes its BatchNorm and ReLU as the N one-model stems do
    (search_space.fast.FastStem: on the CPU in training the C++ BatchNorm kernel where it
    builds), in float32 bit for bit, given the same convolution outputs (ATen's grouped
    convolution of 3 models rounds otherwise than one model's, by up to 7e-7)."""
    torch.manual_seed(0)
    nets = _nets("plain8-c16-k1.4.4", torch.float32, impl="fast")
    folded = _folded("plain8-c16-k1.4.4", nets, "dense")
    for m in (folded, *nets):
        m.train()
    xs = [torch.randn(8, 3, 16, 16) for _ in nets]
    convs = [net.stem[0](x) for net, x in zip(nets, xs, strict=True)]
    folded.stem[0].forward = lambda x: torch.cat(convs, 1)  # the same convolution outputs
    ys = [net.stem(x) for net, x in zip(nets, xs, strict=True)]
    yf = folded.stem(torch.cat(xs, 1))
    c = ys[0].shape[1]
    for i, (y, net) in enumerate(zip(ys, nets, strict=True)):
        assert torch.equal(yf[:, i * c:(i + 1) * c], y)
        assert torch.equal(folded.stem[1].running_var[i * c:(i + 1) * c], net.stem[1].running_var)
