"""evaluators.multi_model: N seeds (and several designs) at once equal the one-model path."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from torch import nn

import evaluators as ev
import search_space as ss
from evaluators import folded_group as fg
from evaluators import multi_model as mm
from evaluators import multi_trainer as mt
from evaluators.augment import crop_flip
from evaluators.folded import FoldedSGD, unfold_states
from evaluators.splits import make_splits
from evaluators.train import make_optimizer, train_epochs

CPU = torch.device("cpu")
SMOKE = ev.get_fidelity("smoke")
# 400 images (360 train: 6 steps of 64, the last a short batch of 40; 40 val), 2 epochs
SMALL = dataclasses.replace(SMOKE, name="smoke-small", train_size=400, test_size=100, epochs=2)
SEEDS = (0, 1, 2)
# plain8 Xception, IGCV2 L=3, a loose design (fixed branch counts), and res20 (stride-2
# width-doubling transitions, residual pairs, per-stage K). "dense" is the engine's default.
# The other layouts of the group 1x1 convolutions run in the slow suite (every mode is held
# to the separate nets step by step in tests/test_folded.py).
CASES = [("plain8-c24-k1.24", "dense"), ("plain8-c36-k1.6.6", "dense"),
         ("plain8-c28-k1.g2.g2", "dense"), ("res20-c8-k1.2.4/1.4.4/1.8.4", "dense")] + [
    pytest.param(*case, marks=pytest.mark.slow)
    for case in (("plain8-c36-k1.6.6", "grouped"), ("res20-c8-k1.2.4/1.4.4/1.8.4", "grouped"),
                 ("plain8-c28-k1.g2.g2", "bmm"))]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def splits():
    return make_splits(ev.load_dataset("synthetic", None), SMALL, CPU)


class _Float64(nn.Module):
    """The one-model net in float64 behind train_epochs' float32 input."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.double())


def _one_model(design: str, seed: int, splits, fidelity, dtype=torch.float32):
    """evaluate()'s path: seed, build, train_epochs. Returns (curve, trained net)."""
    torch.manual_seed(seed)
    net = ss.build(ss.parse(design), num_classes=10, input_size=32)
    model = _Float64(net) if dtype == torch.float64 else net
    return list(train_epochs(model, splits, fidelity, seed=seed, device=CPU)), net


def _trainer(trials, splits, fidelity=SMALL, **options) -> mt.MultiTrainer:
    groups = [(ss.parse(d), seeds) for d, seeds in trials]
    return mt.MultiTrainer(groups, splits, fidelity, input_size=32, device=CPU,
                           options=mm.EngineOptions(**options))


def _curves(trainer: mt.MultiTrainer) -> dict[tuple[str, int], list[dict]]:
    out: dict[tuple[str, int], list[dict]] = {}
    for rows in trainer.epochs():
        for g, m, row in rows:
            out.setdefault((g.design.id, g.seeds[m]), []).append(row)
    return out


@pytest.mark.parametrize(("design", "conv1x1"), CASES)
def test_training_equals_the_one_model_path_float64(splits, design, conv1x1):
    """Same init, data order, augmentation, loss, SGD and schedule: in float64 (the loss in
    float32, as train_epochs computes it) curves and weights agree to rounding, over two
    epochs of 6 steps each, the last one a short batch of 40 images."""
    seeds = SEEDS if design == "plain8-c36-k1.6.6" else SEEDS[:2]  # 3 seeds for IGCV2 L=3
    trainer = _trainer([(design, seeds)], splits, conv1x1=conv1x1, dtype=torch.float64)
    curves = _curves(trainer)
    states = unfold_states(trainer.groups[0].net.state_dict(), len(seeds))
    for m, seed in enumerate(seeds):
        ref, net = _one_model(design, seed, splits, SMALL, torch.float64)
        mine = curves[design, seed]
        assert [r["epoch"] for r in mine] == [1, 2]
        for a, b in zip(mine, ref, strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)  # a float32
            assert (a["train_acc"], a["val_acc"]) == (b["train_acc"], b["val_acc"])
        for key, value in net.state_dict().items():
            assert torch.allclose(states[m][key], value, rtol=1e-8, atol=1e-10), key
    assert curves[design, 0] != curves[design, 1]  # the seeds really differ


def test_records_equal_evaluate_within_float32_rounding():
    design = "plain8-c16-k1.4.4"
    many = mm.evaluate_many([(design, (0, 1))], "smoke", "synthetic", device="cpu")
    for r in many:
        one = ev.evaluate(design, "smoke", "synthetic", seed=r.seed, device="cpu")
        assert (r.design_id, r.fidelity, r.dataset, r.status) == (design, "smoke", "synthetic",
                                                                 "ok")
        assert r.design == one.design
        config = dict(r.fidelity_config)
        assert config.pop("engine") == {"name": "multi_model", "conv1x1": "dense",
                                        "cuda_graph": False, "streams": False}
        assert config == one.fidelity_config
        assert len(r.curve) == len(one.curve) == SMOKE.epochs
        assert r.val_acc > 0.4 and r.test_acc > 0.4  # learnt, as the one-model path does
        assert r.latency_b1_ms > 0 and r.latency_b64_ms > 0
        assert r.wall_s == many[0].wall_s  # each record's share of the one process


def test_records_train_as_evaluate_to_float32_rounding_before_it_grows():
    """The two engines' float32 losses and accuracies agree to rounding over a few steps.
    Over smoke's 16 steps an epoch at lr 0.1 rounding grows chaotically: folding seeds 0-7
    into one net instead of 0-1 moved seed 1's epoch-1 loss by 7e-4, and seeds 1, 3, 5 and
    7 then differed from the one-model path by 3e-4 to 1.2e-3 (at 600 images, 9 steps, one
    seed of eight by 7e-5). At 300 images (5 steps) all eight were within 2e-7. Exactness
    over whole runs is the float64 test's."""
    design, seeds = "plain8-c16-k1.4.4", (0, 1, 2, 3)
    short = ev.with_changes(SMOKE, train_size=300, epochs=1)
    for r in mm.evaluate_many([(design, seeds)], short, "synthetic", device="cpu"):
        one = ev.evaluate(design, short, "synthetic", seed=r.seed, device="cpu")
        assert r.curve[0]["train_loss"] == pytest.approx(one.curve[0]["train_loss"], rel=1e-6)
        assert r.curve[0]["val_acc"] == one.curve[0]["val_acc"]


def test_several_designs_side_by_side_train_as_each_alone(splits):
    trials = [("plain8-c24-k1.24", (0, 1)), ("res20-c8-k1.2.4/1.4.4/1.8.4", (3,))]
    together = _trainer(trials, splits)
    curves = _curves(together)
    assert together.models == 3
    for (design, seeds), g in zip(trials, together.groups, strict=True):
        alone = _trainer([(design, seeds)], splits)
        alone_curves = _curves(alone)
        for seed in seeds:
            assert _without_seconds(curves)[design, seed] == _without_seconds(
                alone_curves)[design, seed]
        for a, b in zip(g.net.parameters(), alone.groups[0].net.parameters(), strict=True):
            assert torch.equal(a, b)


def test_a_diverged_model_fails_alone_and_the_others_train_on(splits):
    design = "plain8-c36-k1.6.6"
    trainer = _trainer([(design, SEEDS)], splits, dtype=torch.float64)
    with torch.no_grad():  # seed 1's classifier blows up: its loss is inf/nan at step 1
        trainer.groups[0].net.classifier[1].weight[1].fill_(float("inf"))
    curves = _curves(trainer)
    g = trainer.groups[0]
    assert list(g.failed) == [1]
    assert g.failed[1].startswith("diverged: loss=") and g.failed[1].endswith(
        "at epoch 1 step 1")
    assert (design, 1) not in curves
    for m in (0, 2):
        ref, _ = _one_model(design, SEEDS[m], splits, SMALL, torch.float64)
        assert [r["val_acc"] for r in curves[design, SEEDS[m]]] == [r["val_acc"] for r in ref]
        assert curves[design, SEEDS[m]][-1]["train_loss"] == pytest.approx(
            ref[-1]["train_loss"], rel=1e-9)


def test_divergence_records_match_evaluate():
    huge = dataclasses.replace(SMOKE, name="smoke-lr1e6", lr=1e6, latency_reps=0)
    many = mm.evaluate_many([("plain8-c16-k1.4.4", (0, 1))], huge, "synthetic", device="cpu")
    for r in many:
        one = ev.evaluate("plain8-c16-k1.4.4", huge, "synthetic", seed=r.seed, device="cpu")
        # Which step first overflows depends on rounding (as between implementations): the
        # record's shape and the epoch are the one-model path's.
        assert (r.status, r.curve, r.val_acc, r.test_acc) == ("failed", (), None, None)
        assert (r.status, r.curve, r.val_acc, r.test_acc) == (
            one.status, one.curve, one.val_acc, one.test_acc)
        pattern = r"diverged: loss=(nan|inf|-inf) at epoch 1 step [1-6]"
        assert re.fullmatch(pattern, r.reason) and re.fullmatch(pattern, one.reason)


def test_an_error_in_one_group_fails_its_records_only(monkeypatch):
    real = fg.FoldedGroup._step

    def step(self, x, y):
        if self.design.id == "plain8-c16-k1.4.4":
            raise RuntimeError("planted")
        return real(self, x, y)

    monkeypatch.setattr(fg.FoldedGroup, "_step", step)
    fid = dataclasses.replace(SMOKE, epochs=1, latency_reps=0)
    rs = mm.evaluate_many([("plain8-c16-k1.4.4", (0,)), ("plain8-c24-k1.24", (0,))], fid,
                          "synthetic", device="cpu")
    assert [(r.status, r.reason) for r in rs] == [
        ("failed", "error: RuntimeError: planted"), ("ok", None)]
    assert rs[1].test_acc is not None and len(rs[1].curve) == 1


def test_crop_flip_many_is_crop_flip_per_model():
    images = torch.randint(0, 256, (3, 5, 3, 8, 8), dtype=torch.uint8)
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    refs = [crop_flip(images[m], 2, torch.Generator().manual_seed(m)) for m in range(3)]
    assert torch.equal(mt.crop_flip_many(images, 2, gens), torch.stack(refs))
    assert torch.equal(gens[2].get_state(), _drawn(torch.Generator().manual_seed(2), 5, 2))


def _drawn(g: torch.Generator, b: int, pad: int) -> torch.Tensor:
    crop_flip(torch.zeros(b, 3, 8, 8, dtype=torch.uint8), pad, g)
    return g.get_state()


def test_folded_sgd_is_torch_sgd():
    torch.manual_seed(0)
    a = [torch.randn(5, 3, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    b = [nn.Parameter(p.detach().clone()) for p in a]  # ParameterList keeps these objects
    ours = FoldedSGD(a, SMOKE)
    theirs = make_optimizer(nn.ParameterList(b), SMOKE)
    for step, lr in enumerate((0.1, 0.1, 0.01, 0.001)):
        grads = [torch.randn(5, 3, dtype=torch.float64) for _ in a]
        for p, q, grad in zip(a, b, grads, strict=True):
            p.grad, q.grad = grad.clone(), grad.clone()
        ours.set_lr(lr)
        for group in theirs.param_groups:
            group["lr"] = lr
        ours.step()
        theirs.step()
        for p, q in zip(a, b, strict=True):
            assert torch.allclose(p, q, rtol=0, atol=1e-15), step


def test_bad_trials_are_refused_before_training():
    with pytest.raises(ValueError, match="no \\(design, seed\\) twice"):
        mm.evaluate_many([("plain8-c16-k1.4.4", (0, 0))], "smoke", "synthetic")
    with pytest.raises(ValueError, match="each with at least one seed"):
        mm.evaluate_many([("plain8-c16-k1.4.4", ())], "smoke", "synthetic")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        mm.evaluate_many([("plain8-c16-k1.4.4", (0,))], "smoke", "mnist")
    with pytest.raises(ValueError, match="conv1x1='gemm'"):
        mm.EngineOptions(conv1x1="gemm")


class _FakeGraph:
    """Stands in for a captured CUDA graph on the CPU: replay re-runs the step and writes its
    outputs into the tensors the capture returned, as a replay overwrites them. A capture
    runs nothing, so the fake undoes the step it ran to make those tensors."""

    def __init__(self, step, group):
        state = [*group.net.state_dict().values(), *group.sgd.momenta]
        saved = [t.clone() for t in state]
        self.step, self.out = step, step()
        with torch.no_grad():
            for t, v in zip(state, saved, strict=True):
                t.copy_(v)

    def replay(self):
        for static, new in zip(self.out, self.step(), strict=True):
            static.copy_(new)


def test_graph_capture_leaves_training_as_eager(splits, monkeypatch):
    """The graphed step's bookkeeping on the CPU (CUDA's capture itself needs a GPU): the
    warm-up steps are undone, the static inputs and outputs carry every step, and the short
    last batch runs eagerly; the weights are then the eager run's, bit for bit."""
    captures = []
    trials = [("plain8-c28-k1.g2.g2", (0, 1))]
    eager = _trainer(trials, splits)
    graphed = _trainer(trials, splits)
    graphed.groups[0].use_graph = True

    def graph_of(step):
        fake = _FakeGraph(step, graphed.groups[0])
        captures.append(fake)
        return fake, fake.out

    monkeypatch.setattr(fg, "_warm_up", lambda step, device, times=3: [
        step() for _ in range(times)])
    monkeypatch.setattr(fg, "_graph_of", graph_of)
    assert _without_seconds(_curves(graphed)) == _without_seconds(_curves(eager))
    assert len(captures) == 1  # the 64-image step; the 40-image one ran eagerly
    for a, b in zip(graphed.groups[0].net.state_dict().values(),
                    eager.groups[0].net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _without_seconds(curves: dict) -> dict:
    return {k: [{f: v for f, v in row.items() if f != "seconds"} for row in rows]
            for k, rows in curves.items()}


def test_a_failed_capture_trains_on_eagerly_from_where_it_was(splits, monkeypatch):
    def fail(step):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(fg, "_warm_up", lambda step, device, times=3: [
        step() for _ in range(times)])
    monkeypatch.setattr(fg, "_graph_of", fail)
    trials = [("plain8-c24-k1.24", (0, 1))]
    eager = _trainer(trials, splits)
    graphed = _trainer(trials, splits)
    graphed.groups[0].use_graph = True
    with pytest.warns(UserWarning, match="no CUDA graph, training eagerly"):
        curves = _curves(graphed)
    assert _without_seconds(curves) == _without_seconds(_curves(eager))
    assert graphed.groups[0].use_graph is False and not graphed.groups[0].failed
    for a, b in zip(graphed.groups[0].net.state_dict().values(),
                    eager.groups[0].net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
