"""What benchmarks/engine_throughput.py times: the levers, the run's settings and JSON
(``Bench``), and one function per measurement -- the one-model path, the engine under a
lever, the folded net's forward rate, vmap against the folded net, and a profiled epoch.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import evaluators as ev
import search_space as ss
from evaluators.folded_group import EngineOptions
from evaluators.multi_trainer import MultiTrainer, accuracy_many
from evaluators.provenance import git_commit
from evaluators.runtime import torch_state
from evaluators.splits import Splits, make_splits
from evaluators.train import train_epochs
from studies.store import write_json_atomic

#: Levers timed per fig3 design (name -> EngineOptions fields, deterministic, batch factor).
LEVERS: dict[str, dict[str, Any]] = {  # "vmap" (below) is the other formulation
    "dense+graph": {"conv1x1": "dense", "cuda_graph": True},  # the engine's default
    "grouped": {"conv1x1": "grouped", "cuda_graph": False},
    "dense": {"conv1x1": "dense", "cuda_graph": False},
    "bmm": {"conv1x1": "bmm", "cuda_graph": False},
    "grouped+graph": {"conv1x1": "grouped", "cuda_graph": True},
    "dense+graph+deterministic": {"conv1x1": "dense", "cuda_graph": True, "deterministic": True},
    "dense+graph+batch4x": {"conv1x1": "dense", "cuda_graph": True, "batch_factor": 4},
    "vmap": {},  # time_vmap: torch.func over N reference nets against the folded net
}
DEFAULT_LEVER = "dense+graph"


class Bench:
    """The run's settings, budget and JSON (rewritten after every measurement)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.start = args, time.perf_counter()
        self.device = torch.device(args.device)
        cuda = self.device.type == "cuda"
        name = torch.cuda.get_device_name(self.device) if cuda else "cpu"
        self.out: dict[str, Any] = {
            "device": name, "device_type": self.device.type,
            "label": ("GPU measurement" if cuda else
                      "CPU run (a check that the benchmark works; not GPU numbers)"),
            "torch": torch.__version__, "commit": git_commit(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "config": {k: v for k, v in vars(args).items() if k != "out"},
            "baseline": [], "baseline_nondeterministic": [], "engine": [], "together": [],
            "vmap": [], "eval": [],
            "targets": {}, "profile": None, "skipped": [], "errors": [],
        }

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.start)

    def save(self) -> None:
        self.out["elapsed_s"] = round(time.perf_counter() - self.start, 1)
        write_json_atomic(self.args.out, self.out)

    def splits(self, batch: int) -> Splits:
        """Synthetic CIFAR-shaped data for ``--steps`` steps of ``batch`` images."""
        n = self.args.steps * batch
        data = ev.make_synthetic(n + batch, 2 * batch, resolution=self.args.resolution)
        fid = self.fidelity(batch)
        return make_splits(data, fid, self.device)

    def fidelity(self, batch: int, deterministic: bool = False) -> ev.Fidelity:
        n = self.args.steps * batch
        return ev.Fidelity(name="bench", batch_size=batch, epochs=self.args.epochs,
                           val_fraction=batch / (n + batch), eval_batch_size=500,
                           latency_reps=0, deterministic=deterministic)


def _median_epoch(walls: list[float]) -> float:
    return statistics.median(walls[1:]) if len(walls) > 1 else walls[0]


def time_baseline(bench: Bench, design: str, deterministic: bool = True) -> dict[str, Any]:
    """The one-model path (evaluate()'s: deterministic as every rung but proxy15, the
    default implementation), seed 0."""
    a = bench.args
    splits = bench.splits(a.batch)
    fid = bench.fidelity(a.batch, deterministic=deterministic)
    with torch_state(a.threads, bench.device, deterministic=deterministic):
        torch.manual_seed(0)
        model = ss.build(ss.parse(design), num_classes=10, input_size=32).to(bench.device)
        if bench.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        walls = [row["seconds"] for row in train_epochs(model, splits, fid, seed=0,
                                                          device=bench.device)]
    n = splits.train_images.shape[0]
    return {"design": design, "models": 1, "img_s": round(n / _median_epoch(walls), 1),
            "epoch_s": [round(w, 4) for w in walls]}


def time_engine(bench: Bench, designs: list[str], lever: str) -> dict[str, Any]:
    """The engine on ``designs`` (each with --seeds seeds) under ``lever``."""
    a, spec = bench.args, dict(LEVERS[lever])
    batch = a.batch * spec.pop("batch_factor", 1)
    deterministic = spec.pop("deterministic", False)
    splits = bench.splits(batch)
    groups = [(ss.parse(d), tuple(range(a.seeds))) for d in designs]
    with torch_state(a.threads, bench.device, deterministic=deterministic):
        trainer = MultiTrainer(groups, splits, bench.fidelity(batch, deterministic),
                               input_size=32, device=bench.device,
                               options=EngineOptions(**spec))
        walls = [rows[0][2]["seconds"] * trainer.models for rows in trainer.epochs() if rows]
        failed = {f"{g.design.id} s{g.seeds[m]}": r for g in trainer.groups
                  for m, r in g.failed.items()}
    if failed or len(walls) < a.epochs:
        raise RuntimeError(f"models failed: {failed}")
    n = splits.train_images.shape[0] * trainer.models
    return {"designs": designs, "lever": lever, "models": trainer.models,
            "cuda_graph": all(g.use_graph for g in trainer.groups),  # False: capture failed
            "batch_per_model": batch, "img_s": round(n / _median_epoch(walls), 1),
            "epoch_s": [round(w, 4) for w in walls],
            "warmup_extra_s": round(walls[0] - _median_epoch(walls), 3)}


def time_eval(bench: Bench, design: str) -> dict[str, Any]:
    """Forward-only images/s of the folded net (validation and test passes)."""
    a = bench.args
    splits = bench.splits(a.batch)
    with torch_state(a.threads, bench.device, deterministic=False):
        trainer = MultiTrainer([(ss.parse(design), tuple(range(a.seeds)))], splits,
                               bench.fidelity(a.batch), input_size=32, device=bench.device,
                               options=EngineOptions())
        images = splits.train_images
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            accuracy_many(trainer.groups[0].net, images, splits.train_labels, splits,
                          batch_size=500)
            times.append(time.perf_counter() - t0)
    return {"design": design, "models": a.seeds,
            "img_s": round(a.seeds * images.shape[0] / min(times), 1)}


def time_vmap(bench: Bench, design: str) -> dict[str, Any]:
    """Formulation (b) against (a): forward, backward and SGD on fixed batches, N models."""
    from torch.func import functional_call, stack_module_state

    from evaluators.folded import FoldedNet
    from search_space.plan import net_plan

    a, dev = bench.args, bench.device
    cuda = dev.type == "cuda"
    nets = []
    for seed in range(a.seeds):
        torch.manual_seed(seed)
        nets.append(ss.build(ss.parse(design), num_classes=10, impl="reference").to(dev))
    x = torch.randn(a.seeds, a.batch, 3, a.resolution, a.resolution, device=dev)
    y = torch.randint(0, 10, (a.seeds, a.batch), device=dev)
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def vmapped() -> torch.Tensor:
        out = torch.vmap(lambda p, b, xi: functional_call(base, (p, b), (xi,)))(
            params, buffers, x)
        return F.cross_entropy(out.flatten(0, 1).float(), y.flatten())

    folded = FoldedNet.from_nets(net_plan(ss.parse(design), 10), nets, "grouped").to(dev)
    xf = x.permute(1, 0, 2, 3, 4).reshape(a.batch, -1, a.resolution, a.resolution)
    if cuda:
        folded = folded.to(memory_format=torch.channels_last)
        xf = xf.contiguous(memory_format=torch.channels_last)

    def foldedf() -> torch.Tensor:
        return F.cross_entropy(folded(xf).flatten(0, 1).float(), y.t().flatten())

    rates = {}
    with torch_state(a.threads, dev, deterministic=False):
        for name, fn, ps in (("vmap", vmapped, list(params.values())),
                             ("folded", foldedf, list(folded.parameters()))):
            rates[name] = round(a.seeds * a.batch / _step_time(fn, ps, a.steps, cuda), 1)
    return {"design": design, "models": a.seeds, "img_s": rates,
            "vmap_over_folded": round(rates["vmap"] / rates["folded"], 3)}


def _step_time(loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor], steps: int,
               cuda: bool) -> float:
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)
    times = []
    for i in range(steps + 3):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profile_epoch(bench: Bench, design: str, lever: str = "dense") -> dict[str, Any]:
    """torch.profiler's top operations over one epoch (after a warm-up epoch). An eager
    lever by default: inside a CUDA graph the operations are not attributed."""
    from torch.profiler import ProfilerActivity, profile

    a, cuda = bench.args, bench.device.type == "cuda"
    splits = bench.splits(a.batch)
    spec = dict(LEVERS[lever])
    with torch_state(a.threads, bench.device, deterministic=False):
        trainer = MultiTrainer([(ss.parse(design), tuple(range(a.seeds)))], splits,
                               bench.fidelity(a.batch), input_size=32, device=bench.device,
                               options=EngineOptions(**spec))
        epochs = trainer.epochs()
        next(epochs)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            next(epochs)
        wall = time.perf_counter() - t0
    events = prof.key_averages()

    def self_time(e: Any, device: bool) -> float:
        names = (("self_device_time_total", "self_cuda_time_total") if device
                 else ("self_cpu_time_total",))
        return next((float(getattr(e, n)) for n in names if hasattr(e, n)), 0.0) / 1000

    on_device = cuda
    top = sorted(events, key=lambda e: self_time(e, on_device), reverse=True)[:15]
    total = sum(self_time(e, on_device) for e in events)
    return {
        "design": design, "lever": lever, "epoch_wall_ms": round(1000 * wall, 1),
        "sorted_by": "self device ms" if on_device else "self CPU ms",
        "total_self_ms": round(total, 1),
        "host_ms": round(sum(self_time(e, False) for e in events), 1),
        "top": [{"op": e.key, "self_ms": round(self_time(e, on_device), 2),
                 "share": round(self_time(e, on_device) / total, 3) if total else None,
                 "calls": e.count, "self_cpu_ms": round(self_time(e, False), 2)}
                for e in top],
    }
