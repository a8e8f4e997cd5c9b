"""The multi-model engine's training machinery: the folded optimiser, CUDA-graph capture,
groups of designs on streams, batched augmentation and the trainer (see multi_model).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

import search_space as ss
from evaluators.augment import CIFAR_PAD, TINY_SCALE, normalize, scale_crop_flip
from evaluators.evaluation import failure_reason
from evaluators.fidelity import Fidelity
from evaluators.folded import CONV1X1, FoldedNet, FoldedSGD, unfold_states
from evaluators.splits import Splits
from evaluators.train import lr_factor, zero_init_residuals
from search_space.plan import net_plan

CHECK_EVERY_CUDA = 50  # steps between loss-finiteness checks on GPU (each one syncs), as train
Trials = Sequence[tuple["ss.Design | str", Sequence[int]]]  # (design, its seeds), one group each
Progress = Callable[[str, int, dict[str, Any]], object]  # (design id, seed, curve row)


@dataclass(frozen=True)
class EngineOptions:
    """How the engine computes; none of it changes what a model learns beyond rounding.

    Attributes:
        conv1x1: "grouped", "dense" or "bmm" (``evaluators.folded``). Default "dense": one
            GEMM per model and layer, shuffles folded into weights (no copies).
        cuda_graph: capture each training step as a CUDA graph and replay it (CUDA only).
        streams: give each group its own CUDA stream when several train together (CUDA only).
        dtype: parameter dtype; None = float32. Tests use torch.float64.
    """

    conv1x1: str = "dense"
    cuda_graph: bool = True
    streams: bool = True
    dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.conv1x1 not in CONV1X1:
            raise ValueError(f"conv1x1={self.conv1x1!r}; accepted: {', '.join(CONV1X1)}")

    def record(self, device: torch.device) -> dict[str, Any]:
        """What ran, for the records' ``fidelity_config["engine"]`` (CUDA levers off on CPU)."""
        cuda = device.type == "cuda"
        return {"name": "multi_model", "conv1x1": self.conv1x1,
                "cuda_graph": self.cuda_graph and cuda, "streams": self.streams and cuda}


@dataclass
class _Graph:
    """One captured training step and its static inputs and outputs."""

    graph: Any  # torch.cuda.CUDAGraph
    x: torch.Tensor
    y: torch.Tensor
    loss: torch.Tensor
    correct: torch.Tensor


class _Group:
    """The seeds of one design, trained as one FoldedNet."""

    def __init__(self, design: ss.Design, seeds: Sequence[int], splits: Splits,
                 fidelity: Fidelity, input_size: int, device: torch.device,
                 options: EngineOptions) -> None:
        self.design, self.seeds, self.device = design, tuple(seeds), device
        self.models = len(self.seeds)
        nets = []
        for seed in self.seeds:  # as evaluate()'s _trial: seed, then build
            torch.manual_seed(seed)
            net = ss.build(design, num_classes=splits.num_classes, input_size=input_size)
            if fidelity.zero_init_residual:
                zero_init_residuals(net)
            nets.append(net)
        plan = net_plan(design, splits.num_classes, input_size)
        net = FoldedNet.from_nets(plan, nets, options.conv1x1)
        net = net.to(device=device, dtype=options.dtype or torch.float32)
        if device.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.generators = [torch.Generator().manual_seed(seed) for seed in self.seeds]
        self.params = list(net.parameters())
        self.sgd = FoldedSGD(self.params, fidelity)
        cuda = device.type == "cuda"
        self.use_graph = options.cuda_graph and cuda  # False after a failed capture
        self.stream = torch.cuda.Stream(device) if cuda and options.streams else None
        self.graphs: dict[int, _Graph] = {}
        self.graph_grads: list[torch.Tensor | None] = []
        self.failed: dict[int, str] = {}  # model index -> reason

    def alive(self) -> bool:
        return len(self.failed) < self.models

    def context(self) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(self.stream) if self.stream is not None else (
            contextlib.nullcontext())

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward and SGD step on a (B, 3N, H, W) batch with (N, B) labels."""
        cuda = self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda, cache_enabled=False):
            logits = self.net(x.to(self.params[0].dtype))  # B x N x classes
        logits = logits.float()  # as train_epochs: the loss in float32
        # train_epochs' own call per model (N small kernels): the same rounding of each
        # model's gradient, where one call over B x classes x N would sum in another order.
        loss = torch.stack([F.cross_entropy(logits[:, m], y[m]) for m in range(self.models)])
        for p in self.params:
            p.grad = None
        loss.sum().backward()
        self.sgd.step()
        return loss.detach(), (logits.argmax(2) == y.t()).sum(0)

    def train_step(self, x: torch.Tensor, y: torch.Tensor,
                   lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of every model; per-model (loss, correct count)."""
        self.sgd.set_lr(lr)
        if not self.use_graph:
            return self._step(x, y)
        graph = self.graphs.get(x.shape[0])
        if graph is None:
            if self.graphs:  # a second shape (the epoch's last, short batch): run it eagerly
                return self._step(x, y)
            try:
                graph = self.graphs[x.shape[0]] = self._capture(x, y)
            except RuntimeError as exc:  # a step CUDA cannot capture: train on, eagerly
                self.use_graph = False
                warnings.warn(f"{self.design.id}: no CUDA graph, training eagerly "
                              f"({failure_reason(exc)})", stacklevel=2)
                return self._step(x, y)
        graph.x.copy_(x)
        graph.y.copy_(y)
        graph.graph.replay()
        return graph.loss, graph.correct

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> _Graph:
        """Warm up (cuDNN autotuning, autograd's buffers), restore every tensor the warm-up
        changed, and capture one step (the recipe of torch.cuda.graphs' documentation)."""
        state = [*self.params, *self.net.buffers(), *self.sgd.momenta]
        saved = [t.detach().clone() for t in state]
        x, y = x.clone(), y.clone()

        def restore() -> None:  # also when capturing fails: the eager step goes on from here
            with torch.no_grad():
                for t, v in zip(state, saved, strict=True):
                    t.copy_(v)
            for p in self.params:
                p.grad = None

        try:
            _warm_up(lambda: self._step(x, y), self.device)
            restore()
            graph, (loss, correct) = _graph_of(lambda: self._step(x, y))
        except BaseException:
            restore()
            raise
        # The graph writes these gradients on every replay: keep them alive with it, since an
        # eager step (short last batch) sets p.grad anew.
        self.graph_grads = [p.grad for p in self.params]
        return _Graph(graph, x, y, loss, correct)


def _warm_up(step: Callable[[], object], device: torch.device, times: int = 3) -> None:
    """Run ``step`` on a side stream, as a CUDA graph capture wants before it."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(times):
            step()
    torch.cuda.current_stream(device).wait_stream(side)


def _graph_of(step: Callable[[], Any]) -> tuple[Any, Any]:
    """``step`` captured as a CUDA graph (not run), and its outputs, which each replay
    overwrites in place."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    return graph, out


def crop_flip_many(images: torch.Tensor, pad: int,
                   generators: Sequence[torch.Generator]) -> torch.Tensor:
    """``augment.crop_flip`` of each model's batch with that model's generator, in one gather.

    Args:
        images: N x B x C x H x W (uint8), model m's batch in ``images[m]``.
        pad: pixels of zero padding per side.
        generators: one per model, drawn as crop_flip draws (offsets y, x, then flips).

    Returns:
        N x B x C x H x W, equal to ``stack([crop_flip(images[m], pad, generators[m])])``.
    """
    n, b, c, h, w = images.shape
    draws = []
    for g in generators:
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=g)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=g)
        flip = torch.rand(b, generator=g) < 0.5
        draws.append(torch.stack([dy, dx, flip.long()]))
    dy, dx, flip = torch.stack(draws, 1).flatten(1).to(images.device)  # one copy to the device
    padded = F.pad(images.reshape(n * b, c, h, w), (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=images.device)
    cols = dx[:, None] + torch.arange(w, device=images.device)
    cols = torch.where(flip[:, None].bool(), cols.flip(1), cols)
    batch = torch.arange(n * b, device=images.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # NB x H x W x C
    return out.view(n, b, h, w, c).permute(0, 1, 4, 2, 3)


def _train_batch(splits: Splits, idx: torch.Tensor, generators: Sequence[torch.Generator],
                 cuda: bool) -> torch.Tensor:
    """The N models' augmented, normalised batches side by side: B x 3N x H x W."""
    images = splits.train_images[idx]  # N x B x 3 x H x W
    if splits.augmentation == "crop_flip":
        pad = max(1, round(CIFAR_PAD * images.shape[-1] / 32))  # as train._train_batch
        images = crop_flip_many(images, pad, generators)
    elif splits.augmentation == "scale_crop_flip":
        images = torch.stack([scale_crop_flip(im, TINY_SCALE, g)
                              for im, g in zip(images, generators, strict=True)])
    n, b, c, h, w = images.shape
    x = images.permute(1, 3, 4, 0, 2).reshape(b, h, w, n * c).permute(0, 3, 1, 2)
    x = normalize(x, splits.mean.repeat(n), splits.std.repeat(n))  # channels-last layout
    return x if cuda else x.contiguous()  # the CPU path trains NCHW, as train_epochs


@torch.inference_mode()
def accuracy_many(net: FoldedNet, images: torch.Tensor, labels: torch.Tensor,
                  splits: Splits, *, batch_size: int) -> list[float]:
    """Top-1 accuracy in [0, 1] of each of the N folded models (eval mode, no augmentation)."""
    cuda = images.device.type == "cuda"
    was_training = net.training
    net.eval()
    n = net.models
    dtype = next(net.parameters()).dtype
    correct = torch.zeros(n, dtype=torch.int64, device=images.device)
    for start in range(0, images.shape[0], batch_size):
        x = normalize(images[start:start + batch_size], splits.mean, splits.std)
        x = x.repeat(1, n, 1, 1).to(dtype)  # every model sees the same images
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = net(x)  # B x N x classes
        correct += (logits.argmax(2) == labels[start:start + batch_size, None]).sum(0)
    net.train(was_training)
    return [c / images.shape[0] for c in correct.tolist()]


class MultiTrainer:
    """Groups -- a design and its seeds, one FoldedNet each -- trained side by side, step by
    step, over one set of splits (every group has the same steps per epoch).

    Args:
        trials: (design, seeds) per group.
        splits: the data, on ``device`` (``evaluators.splits.make_splits``).
        fidelity: the training budget.
        input_size: the side the nets are built for (``describe()["input_size"]``).
        device: where to train.
        options: the engine's levers.

    A model whose loss turns non-finite is failed (``failed``), as ``train_epochs`` raises
    ``Diverged``; its slice of the folded tensors goes on computing, harmlessly, since no
    operation mixes models. An exception in a group's step fails that group's models.
    """

    def __init__(self, trials: Sequence[tuple[ss.Design, Sequence[int]]], splits: Splits,
                 fidelity: Fidelity, *, input_size: int, device: torch.device,
                 options: EngineOptions) -> None:
        self.splits, self.fidelity, self.device = splits, fidelity, device
        self.input_size = input_size
        self.groups = [_Group(d, seeds, splits, fidelity, input_size, device, options)
                       for d, seeds in trials]
        self.models = sum(g.models for g in self.groups)
        self.n = splits.train_images.shape[0]
        self.steps = math.ceil(self.n / fidelity.batch_size)
        self.sizes = torch.full((self.steps,), float(fidelity.batch_size), device=device)
        self.sizes[-1] = self.n - fidelity.batch_size * (self.steps - 1)

    def epochs(self) -> Iterator[list[tuple[_Group, int, dict[str, Any]]]]:
        """Train epoch by epoch; yield (group, model index, curve row) of each model alive.

        A row is ``train_epochs``'s: epoch, train_loss, train_acc, val_acc, and seconds --
        the epoch's wall time (validation included) divided by the models trained together.
        """
        if self.device.type == "cuda":
            for g in self.groups:
                if g.stream is not None:
                    g.stream.wait_stream(torch.cuda.current_stream(self.device))
        for epoch in range(1, self.fidelity.epochs + 1):
            live = [g for g in self.groups if g.alive()]
            if not live:
                return
            start = time.perf_counter()
            self._train_epoch(epoch, live)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            rows = self._rows(epoch, live)
            seconds = (time.perf_counter() - start) / self.models
            for _, _, row in rows:
                row["seconds"] = seconds
            yield rows

    def _train_epoch(self, epoch: int, live: list[_Group]) -> None:
        fid, bs, cuda = self.fidelity, self.fidelity.batch_size, self.device.type == "cuda"
        check_every = CHECK_EVERY_CUDA if cuda else 1  # on CPU a check is free
        for g in live:
            with g.context():
                g.orders = torch.stack([torch.randperm(self.n, generator=gen)
                                        for gen in g.generators]).to(self.device)
                g.losses = torch.zeros(self.steps, g.models, device=self.device)
                g.correct = torch.zeros(g.models, dtype=torch.int64, device=self.device)
        for step in range(self.steps):
            lr = fid.lr * lr_factor((epoch - 1) * self.steps + step, self.steps * fid.epochs,
                                    fid)
            for g in live:
                if not g.alive():
                    continue
                with g.context():
                    try:
                        idx = g.orders[:, step * bs:(step + 1) * bs]
                        x = _train_batch(self.splits, idx, g.generators, cuda)
                        loss, correct = g.train_step(x, self.splits.train_labels[idx], lr)
                        g.losses[step].copy_(loss)
                        g.correct += correct
                    except Exception as exc:  # a failed group is records, not an exception
                        _fail(g, failure_reason(exc))
            if (step + 1) % check_every == 0 or step + 1 == self.steps:
                for g in live:
                    if g.alive():
                        with g.context():  # read the losses on the stream that wrote them
                            _check_finite(g, step, check_every, epoch)

    def _rows(self, epoch: int, live: list[_Group]) -> list[tuple[_Group, int, dict]]:
        rows = []
        for g in live:
            if not g.alive():
                continue
            val = self._accuracies(g, self.splits.val_images, self.splits.val_labels)
            if val is None:
                continue
            correct = g.correct.tolist()
            for m in range(g.models):
                if m not in g.failed:
                    # train_epochs' sum (float32, over one model's steps), not a 2-D one
                    loss = (g.losses[:, m] * self.sizes).sum().item()
                    rows.append((g, m, {"epoch": epoch, "train_loss": loss / self.n,
                                        "train_acc": correct[m] / self.n,
                                        "val_acc": val[m]}))
        return rows

    def _accuracies(self, g: _Group, images: torch.Tensor,
                    labels: torch.Tensor) -> list[float] | None:
        try:
            return accuracy_many(g.net, images, labels, self.splits,
                                 batch_size=self.fidelity.eval_batch_size)
        except Exception as exc:
            _fail(g, failure_reason(exc))
            return None

    def test_accuracies(self) -> dict[tuple[_Group, int], float]:
        """Test accuracy of every model still alive (failures recorded in ``failed``)."""
        out = {}
        for g in self.groups:
            if g.alive():
                test = self._accuracies(g, self.splits.test_images, self.splits.test_labels)
                for m, acc in enumerate(test or []):
                    if m not in g.failed:
                        out[g, m] = acc
        return out

    def nets(self, g: _Group) -> list[torch.nn.Module]:
        """The group's models as ``search_space.build`` nets (float32, on the device)."""
        nets = []
        for state in unfold_states(g.net.state_dict(), g.models):
            net = ss.build(g.design, num_classes=self.splits.num_classes,
                           input_size=self.input_size)
            net.load_state_dict(state)
            net = net.to(self.device)
            if self.device.type == "cuda":
                net = net.to(memory_format=torch.channels_last)
            nets.append(net)
        return nets


def _fail(g: _Group, reason: str) -> None:
    for m in range(g.models):
        g.failed.setdefault(m, reason)


def _check_finite(g: _Group, step: int, window: int, epoch: int) -> None:
    """Fail each model whose loss was non-finite in the last ``window`` steps, naming the
    first such step as ``train_epochs`` does (``diverged: loss=nan at epoch E step S``)."""
    first = max(0, step + 1 - window)
    bad = ~torch.isfinite(g.losses[first:step + 1])  # window x N
    if not bool(bad.any()):
        return
    bad = bad.cpu()
    for m in range(g.models):
        if m not in g.failed and bool(bad[:, m].any()):
            at = first + int(bad[:, m].nonzero()[0, 0])
            value = g.losses[at, m].item()
            g.failed[m] = f"diverged: loss={value} at epoch {epoch} step {at + 1}"
