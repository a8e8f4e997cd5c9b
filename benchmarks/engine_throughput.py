"""Training throughput of the multi-model engine against the one-model path, per lever (JSON).

    python -m benchmarks.engine_throughput --device cuda --out engine_throughput_gpu.json
    python -m benchmarks.engine_throughput --device cpu --tiny --out engine_throughput_cpu.json

For each design of the presets (fig3: 6 designs, table2: 6) it times whole training epochs of
synthetic CIFAR-shaped data (``--steps`` steps of ``--batch`` images per model, the first
epoch a warm-up: cuDNN autotuning, CUDA-graph capture) through the code the runs use:

- ``baseline``: the one-model path, ``train_epochs`` as ``evaluate()`` runs it
  (deterministic, default implementation, bf16 + channels_last on CUDA); N sequential runs
  have its images/s in aggregate (``baseline_nondeterministic``: the same without
  deterministic kernels, last, on CUDA);
- the engine (``evaluators.multi_model``) with the design's ``--seeds`` seeds folded into
  one net, under each lever: the group 1x1 layout (grouped / dense / bmm), CUDA graphs,
  deterministic kernels on or off, 4x the batch per model; ``together``: all designs of the
  preset side by side in one process (one CUDA stream each);
- ``vmap``: the alternative formulation (``torch.func.stack_module_state`` + ``vmap`` over N
  reference nets), a bare forward-backward-SGD loop against the folded net's same loop.

Images/s count every model's images. Targets (issue 13), checked in ``targets``: fig3's
aggregate >= 50,000 img/s, and fig3 and table2 (3 seeds each) at the ``proxy15`` rung
(15 epochs of 45,000 images, 5,000 validation images an epoch, 10,000 test) projected from the
measured training and evaluation rates to finish within 600 s of one GPU. A missed target
gets a ``profile``: torch.profiler's top operations over one epoch of the slowest design.

``--budget-s`` bounds the run: a measurement that would not fit is listed under ``skipped``,
and the JSON is rewritten after every measurement, so a killed run leaves what it measured.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import evaluators as ev
import search_space as ss
from evaluators.evaluation import _torch_state
from evaluators.multi_trainer import EngineOptions, MultiTrainer, accuracy_many
from evaluators.record import git_commit
from evaluators.splits import Splits, make_splits
from evaluators.train import train_epochs
from studies.presets import get_preset
from studies.store import write_json_atomic

TARGET_IMG_S = 50_000  # fig3 aggregate training images/s (issue 13)
TARGET_PROXY_S = 600  # fig3 (and table2) at proxy15 on one GPU, seconds
PROXY = {"epochs": 15, "train": 45_000, "val": 5_000, "test": 10_000}  # the proxy15 rung
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
    with _torch_state(a.threads, bench.device, deterministic=deterministic):
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
    with _torch_state(a.threads, bench.device, deterministic=deterministic):
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
    with _torch_state(a.threads, bench.device, deterministic=False):
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
    with _torch_state(a.threads, dev, deterministic=False):
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
    with _torch_state(a.threads, bench.device, deterministic=False):
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


def targets(bench: Bench) -> dict[str, Any]:
    """The issue's targets from what was measured (rates per design and side by side)."""
    out: dict[str, Any] = {"assumptions": (
        f"proxy15 = {PROXY}; each design's seeds as one group, groups one after another "
        "(or side by side where measured); evaluation at the measured forward rate (3x the "
        "training rate where not measured); data loading and process start not counted")}
    a = bench.args
    for preset in a.presets:
        designs = list(get_preset(preset).design_ids)
        rates = {r["designs"][0]: r["img_s"] for r in bench.out["engine"]
                 if r["lever"] == DEFAULT_LEVER and len(r["designs"]) == 1
                 and r["designs"][0] in designs}
        if len(rates) < len(designs):
            out[preset] = {"measured": False, "missing": sorted(set(designs) - set(rates))}
            continue
        evals = {r["design"]: r["img_s"] for r in bench.out["eval"]}
        n = a.seeds
        train_images = n * PROXY["epochs"] * PROXY["train"]
        eval_images = n * (PROXY["epochs"] * PROXY["val"] + PROXY["test"])
        sequential = sum(train_images / rates[d] + eval_images / evals.get(d, 3 * rates[d])
                         for d in designs)
        aggregate = len(designs) * n / sum(n / rates[d] for d in designs)
        together = next((r["img_s"] for r in bench.out["together"]
                         if r["designs"] == designs), None)
        entry = {"measured": True, "aggregate_img_s_one_design_at_a_time": round(aggregate),
                 "aggregate_img_s_side_by_side": together,
                 "proxy15_projected_s_one_design_at_a_time": round(sequential)}
        if together:
            entry["proxy15_projected_s_side_by_side"] = round(
                len(designs) * train_images / together
                + sum(eval_images / evals.get(d, 3 * rates[d]) for d in designs))
        best_rate = max(aggregate, together or 0)
        best_s = min(sequential, entry.get("proxy15_projected_s_side_by_side", sequential))
        entry["proxy15_within_600_s"] = best_s <= TARGET_PROXY_S
        entry["proxy15_best_projected_s"] = round(best_s)
        if preset == "fig3":
            entry["aggregate_at_least_50000"] = best_rate >= TARGET_IMG_S
            entry["aggregate_over_target"] = round(best_rate / TARGET_IMG_S, 3)
        entry["slowest_design"] = min(rates, key=rates.get)
        out[preset] = entry
    return out


def _measure(bench: Bench, section: str, what: str, fn: Callable[[], dict]) -> None:
    """Run one measurement if the budget allows; record it, or the error, and save."""
    if bench.left() < bench.args.reserve_s:
        bench.out["skipped"].append(f"{section}: {what}")
        return
    try:
        row = fn()
    except Exception as exc:  # one failed measurement must not lose the others
        bench.out["errors"].append(f"{section}: {what}: {type(exc).__name__}: "
                                   + " ".join(str(exc).split())[:300])
    else:
        bench.out[section].append(row)
        print(section, json.dumps(row), flush=True)
        _add_ratio(bench, section, row)
    bench.save()


def _add_ratio(bench: Bench, section: str, row: dict) -> None:
    """Engine images/s over the one-model path's, for a single design measured both ways."""
    if section != "engine" or len(row["designs"]) != 1:
        return
    base = next((b["img_s"] for b in bench.out["baseline"] if b["design"] == row["designs"][0]),
                None)
    if base:
        row["over_baseline"] = round(row["img_s"] / base, 2)


def choose(out: dict[str, Any], preset: str, within_s: float) -> list[str]:
    """``benchmarks/proxy_gpu.py`` flags for ``preset``: the group 1x1 layout and CUDA graphs
    of the lever with the best aggregate over the first preset's designs (fig3), and all of
    ``preset``'s designs side by side when that measured faster and its projection fits in
    ``within_s``. The engine's defaults when nothing comparable was measured.
    """
    first = out["config"]["presets"][0]
    designs = set(get_preset(first).design_ids)
    rates: dict[str, dict[str, float]] = {}
    for r in out["engine"]:
        if len(r["designs"]) == 1 and r["designs"][0] in designs:
            rates.setdefault(r["lever"], {})[r["designs"][0]] = r["img_s"]
    plain = [lv for lv in LEVERS if set(LEVERS[lv]) <= {"conv1x1", "cuda_graph"}]
    aggregate = {lv: len(designs) / sum(1 / v for v in rates[lv].values())
                 for lv in plain if len(rates.get(lv, {})) == len(designs)}
    best = max(aggregate, key=aggregate.get, default=DEFAULT_LEVER)
    flags = ["--conv1x1", LEVERS[best]["conv1x1"]]
    if not LEVERS[best]["cuda_graph"]:
        flags.append("--no-cuda-graph")
    entry = out.get("targets", {}).get(preset, {})
    side = entry.get("proxy15_projected_s_side_by_side")
    alone = entry.get("proxy15_projected_s_one_design_at_a_time")
    if best == DEFAULT_LEVER and side and alone and side < 0.9 * alone and side < within_s:
        flags += ["--designs-per-batch", str(len(get_preset(preset).design_ids))]
    return flags


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, help="the JSON to write (required unless --choose)")
    p.add_argument("--choose", type=Path, metavar="JSON",
                   help="print proxy_gpu.py flags for --preset chosen from a measured JSON")
    p.add_argument("--preset", default="fig3", help="with --choose")
    p.add_argument("--within", type=float, default=float("inf"),
                   help="with --choose: seconds the preset's run may take")
    p.add_argument("--presets", nargs="+", default=["fig3", "table2"], metavar="PRESET",
                   help="preset names (default: fig3 table2)")
    p.add_argument("--seeds", type=int, default=3, help="models per design (its seeds)")
    p.add_argument("--batch", type=int, default=64, help="images per model per step")
    p.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    p.add_argument("--epochs", type=int, default=3, help="the first is a warm-up")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--budget-s", type=float, default=150.0)
    p.add_argument("--reserve-s", type=float, default=10.0,
                   help="start no measurement with less budget left than this")
    p.add_argument("--levers", nargs="+", default=list(LEVERS), metavar="LEVER",
                   help=f"a subset of {', '.join(LEVERS)} (the first two are "
                        "always measured: the engine's default and the one-model baseline)")
    p.add_argument("--tiny", action="store_true",
                   help="--resolution 8 --batch 8 --steps 2 --epochs 2: a check that "
                        "everything runs (CPU, tests)")
    p.add_argument("--markdown", type=Path, metavar="JSON",
                   help="print the docs/performance.md block of a measured JSON")
    args = p.parse_args(argv)
    if args.choose is not None:
        return _print_choice(args)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    if args.out is None:
        print("engine_throughput.py: error: --out is required", file=sys.stderr)
        return 2
    if args.tiny:
        args.resolution, args.batch, args.steps, args.epochs = 8, 8, 2, 2
    try:
        args.presets = [get_preset(name).name for name in args.presets]
        unknown = [lv for lv in args.levers if lv not in LEVERS]
        if unknown:
            raise ValueError(f"--levers {','.join(unknown)}: accepted {', '.join(LEVERS)}")
        for flag in ("seeds", "batch", "steps", "epochs", "resolution"):
            if getattr(args, flag) < 1:
                raise ValueError(f"--{flag} {getattr(args, flag)} must be >= 1")
    except ValueError as e:
        print(f"engine_throughput.py: error: {e}", file=sys.stderr)
        return 2
    args.threads = args.threads or torch.get_num_threads()
    bench = Bench(args)
    run(bench)
    bench.out["targets"] = targets(bench)
    missed = [k for k, v in bench.out["targets"].items() if isinstance(v, dict) and (
        v.get("proxy15_within_600_s") is False or v.get("aggregate_at_least_50000") is False)]
    if missed:
        slowest = bench.out["targets"][missed[0]]["slowest_design"]
        _measure_profile(bench, slowest)
    bench.save()
    print(json.dumps(bench.out["targets"], indent=1))
    return 0


def markdown(out: dict[str, Any]) -> str:
    """The doc block of a benchmark JSON (docs/performance.md): images/s per design and
    lever with the ratio to the one-model path, side by side, vmap, and the targets."""
    cfg = out["config"]
    levers = list(dict.fromkeys(r["lever"] for r in out["engine"] if len(r["designs"]) == 1))
    lines = [
        f"{out['label']}: {out['device']}, torch {out['torch']}, commit {out['commit'][:8]}, "
        f"{out['created']}. {cfg['seeds']} models per design, {cfg['batch']} images per model "
        f"and step at {cfg['resolution']}x{cfg['resolution']}, {cfg['steps']} steps an epoch, "
        f"the median epoch after the first; images/s of all models, (x) = over the one-model "
        f"path.", "",
        "| design | one model | one model, non-det. | " + " | ".join(levers) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in levers) + " |"]
    base = {b["design"]: b["img_s"] for b in out["baseline"]}
    nondet = {b["design"]: b["img_s"] for b in out.get("baseline_nondeterministic", [])}
    designs = list(dict.fromkeys(d for r in out["engine"] for d in r["designs"]))
    for d in designs:
        cells = []
        for lever in levers:
            row = next((r for r in out["engine"] if r["designs"] == [d] and r["lever"] == lever),
                       None)
            cells.append("" if row is None else f"{row['img_s']:,.0f}" + (
                f" ({row['over_baseline']:.2f}x)" if "over_baseline" in row else ""))
        one = f"{base[d]:,.0f}" if d in base else ""
        two = f"{nondet[d]:,.0f}" if d in nondet else ""
        lines.append(f"| `{d}` | {one} | {two} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in out["together"]:
        lines.append(f"- {len(r['designs'])} designs side by side ({r['models']} models, "
                     f"{r['lever']}): {r['img_s']:,.0f} img/s.")
    for r in out["vmap"]:
        lines.append(f"- vmap over {r['models']} reference nets of `{r['design']}`: "
                     f"{r['img_s']['vmap']:,.0f} img/s against the folded net's "
                     f"{r['img_s']['folded']:,.0f} ({r['vmap_over_folded']:.2f}x), "
                     "forward-backward-SGD on fixed batches.")
    for preset, t in out["targets"].items():
        if isinstance(t, dict) and t.get("measured"):
            agg = (f"aggregate {t['aggregate_img_s_one_design_at_a_time']:,} img/s one design "
                   "at a time")
            if t.get("aggregate_at_least_50000") is not None:
                agg += f" ({t['aggregate_over_target']:.3f} of the 50,000 target)"
            lines.append(f"- {preset} at proxy15, projected: "
                         f"{t['proxy15_best_projected_s']:,} s (target 600 s); {agg}.")
    if out["skipped"] or out["errors"]:
        lines.append(f"- Not measured (budget): {len(out['skipped'])}; errors: "
                     f"{len(out['errors'])} (the JSON lists them).")
    return "\n".join(lines)


def _print_choice(args: argparse.Namespace) -> int:
    """``--choose``: the engine's defaults when the JSON is missing or unreadable (a
    benchmark that crashed must not stop the proxy run)."""
    try:
        out = json.loads(args.choose.read_text())
        get_preset(args.preset)
        flags = choose(out, args.preset, args.within)
    except (OSError, ValueError, KeyError, ZeroDivisionError) as exc:
        print(f"engine_throughput.py: no choice from {args.choose} ({exc!r}); defaults",
              file=sys.stderr)
        flags = ["--conv1x1", "dense"]
    print(" ".join(flags))
    return 0


def _measure_profile(bench: Bench, design: str) -> None:
    if bench.left() < bench.args.reserve_s / 2:
        bench.out["skipped"].append(f"profile: {design}")
        return
    try:
        bench.out["profile"] = profile_epoch(bench, design)
    except Exception as exc:
        bench.out["errors"].append(f"profile: {design}: {type(exc).__name__}: {exc}"[:400])


def run(bench: Bench) -> None:
    """Every measurement, most wanted first (the budget cuts from the end): per preset the
    engine's default and the one-model path per design, forward rates and all designs side
    by side; then the other levers on the first preset's designs; then vmap."""
    presets = {name: list(get_preset(name).design_ids) for name in bench.args.presets}
    for name, designs in presets.items():
        for d in designs:
            _measure(bench, "engine", f"{d} {DEFAULT_LEVER}",
                     lambda d=d: time_engine(bench, [d], DEFAULT_LEVER))
        for d in designs:
            _measure(bench, "baseline", d, lambda d=d: time_baseline(bench, d))
        for row in bench.out["engine"]:
            _add_ratio(bench, "engine", row)
        for d in designs:
            _measure(bench, "eval", d, lambda d=d: time_eval(bench, d))
        _measure(bench, "together", f"{name} {DEFAULT_LEVER}",
                 lambda designs=designs: time_engine(bench, designs, DEFAULT_LEVER))
    first = presets[bench.args.presets[0]]
    for lever in [lv for lv in bench.args.levers if lv not in (DEFAULT_LEVER, "vmap")]:
        for d in first:
            _measure(bench, "engine", f"{d} {lever}",
                     lambda d=d, lever=lever: time_engine(bench, [d], lever))
    if "vmap" in bench.args.levers:
        _measure(bench, "vmap", first[1], lambda d=first[1]: time_vmap(bench, d))
    if bench.device.type == "cuda":  # the one-model path without deterministic kernels
        for d in first:
            _measure(bench, "baseline_nondeterministic", d,
                     lambda d=d: time_baseline(bench, d, deterministic=False))


if __name__ == "__main__":
    sys.exit(main())
