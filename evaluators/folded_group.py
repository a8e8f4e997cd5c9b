"""One design's seeds trained as one FoldedNet: the engine's options, the folded step, its
CUDA-graph capture and the group's failed models (the multi-model engine: multi_model;
epochs over groups: multi_trainer).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

import search_space as ss
from evaluators.evaluation import failure_reason
from evaluators.fidelity import Fidelity
from evaluators.folded import CONV1X1, FoldedNet, FoldedSGD
from evaluators.splits import Splits
from evaluators.train import zero_init_residuals
from search_space.plan import net_plan


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


class FoldedGroup:
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

    def fail(self, reason: str) -> None:
        """Fail every model of the group not failed already (a step or a pass raised)."""
        for m in range(self.models):
            self.failed.setdefault(m, reason)

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
