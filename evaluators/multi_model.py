"""The multi-model engine: train many small nets at once in one process, one record each.

The plain8/res nets are tiny for an H100-class GPU: trained one at a time, a step is a few
hundred small kernel launches and slow grouped-convolution kernels (docs/fidelities.md:
IGCV2 C=144 at 2,100 images/s on an H100). This engine trains N models of one design -- its
seeds -- as one :class:`~evaluators.folded.FoldedNet` (the model axis folded into channels),
and several designs side by side, each such group on its own CUDA stream. Per model it is the
one-model path of ``evaluate()``/``train_epochs`` exactly, within float rounding:

- the same initial weights (``torch.manual_seed(seed)`` then ``search_space.build``), folded;
- the same data order and augmentation: one CPU generator per seed, drawn in the same order
  (the epoch's permutation, then per step the crop offsets and flips);
- the loss is the sum of the N per-model mean cross-entropies, so each model's gradient is
  its own; SGD (Nesterov, weight decay) is elementwise, so one step over the folded
  parameters is N independent steps; the learning-rate schedule is ``train.lr_factor``;
- BatchNorm statistics per channel are per model (``folded``'s docstring).

``tests/test_multi_model.py`` holds curves, weights and records to the one-model path's.

GPU levers (``EngineOptions``; ``benchmarks/engine_throughput.py`` measures each):
``conv1x1`` (how group 1x1 convolutions run), ``cuda_graph`` (each training step captured
once and replayed: one launch instead of hundreds, the step's host cost gone), ``streams``
(groups of several designs overlap on the GPU), and ``Fidelity.deterministic``.

Time. A record's ``wall_s`` and its curve's ``seconds`` are its share of the process: the
wall time divided by the number of models trained together, so that summing records still
gives GPU time.

Example:
    >>> EngineOptions(conv1x1="grouped").record(torch.device("cpu"))  # CUDA levers: off
    {'name': 'multi_model', 'conv1x1': 'grouped', 'cuda_graph': False, 'streams': False}
    >>> rs = evaluate_many([("plain8-c16-k1.4.4", (0, 1))], "smoke")  # doctest: +SKIP
    >>> [(r.seed, r.status, len(r.curve)) for r in rs]  # doctest: +SKIP
    [(0, 'ok', 4), (1, 'ok', 4)]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

import search_space as ss
from evaluators.catalog import dataset_spec
from evaluators.data import load_dataset
from evaluators.evaluation import failure_reason
from evaluators.fidelity import Fidelity, get_fidelity
from evaluators.folded_group import EngineOptions
from evaluators.latency import measure_latency
from evaluators.multi_trainer import MultiTrainer, Progress, Trials
from evaluators.record import Result, describe_info, make_result
from evaluators.runtime import device_name, torch_state
from evaluators.splits import make_splits


def evaluate_many(trials: Trials, fidelity: Fidelity | str = "smoke", dataset: str = "synthetic",
                  data_dir: Path | str | None = None, *, threads: int | None = None,
                  device: torch.device | str | None = None,
                  options: EngineOptions | None = None,
                  progress: Progress | None = None) -> list[Result]:
    """Train every (design, seed) of ``trials`` at once; one :class:`Result` each, in order.

    Each design's seeds train as one FoldedNet; several designs train side by side. The
    records are ``evaluate()``'s for the same arguments (within float rounding), except
    ``wall_s`` and the curve's ``seconds`` (the shares of the process: module docstring)
    and ``fidelity_config["engine"]`` (what ran: ``EngineOptions.record``).

    Raises:
        ValueError: before any training, for an unknown fidelity, dataset or design id, a
            design without seeds, or a (design, seed) given twice.
    """
    start = time.perf_counter()
    groups = [(ss.parse(d) if isinstance(d, str) else d, tuple(seeds)) for d, seeds in trials]
    keys = [(d.id, s) for d, seeds in groups for s in seeds]
    if not groups or any(not seeds for _, seeds in groups) or len(set(keys)) < len(keys):
        raise ValueError(f"trials {[(d.id, s) for d, s in groups]}: need at least one design, "
                         "each with at least one seed, no (design, seed) twice")
    fidelity = get_fidelity(fidelity) if isinstance(fidelity, str) else fidelity
    dataset_spec(dataset)  # ValueError: unknown
    options = options or EngineOptions()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    threads = threads or fidelity.threads or torch.get_num_threads()
    engine = options.record(dev)
    outcomes: dict[tuple[str, int], dict[str, Any]] = {
        k: {"curve": [], "engine": engine} for k in keys}
    with torch_state(threads, dev, deterministic=fidelity.deterministic):
        data = load_dataset(dataset, data_dir)
        infos = {d.id: describe_info(d, data.num_classes, data.resolution) for d, _ in groups}
        size = next(iter(infos.values()))["input_size"]
        _train(groups, data, fidelity, size, dev, options, outcomes, progress)
        del data
    share = (time.perf_counter() - start) / len(keys)
    config = {**fidelity.to_dict(), "threads": threads}
    return [_record(infos[d], fidelity.name, {**config, "engine": outcomes[d, s]["engine"]},
                    dataset, s, outcomes[d, s], share, dev) for d, s in keys]


def _train(groups: list[tuple[ss.Design, tuple[int, ...]]], data: Any, fidelity: Fidelity,
           input_size: int, device: torch.device, options: EngineOptions,
           outcomes: dict[tuple[str, int], dict[str, Any]], progress: Progress | None) -> None:
    """Fill ``outcomes`` (curve, and test_acc and latency or a reason) of every model.

    The trial's own exceptions become reasons; the progress callback's propagate."""
    trainer = None
    try:
        splits = make_splits(data, fidelity, device)
        trainer = MultiTrainer(groups, splits, fidelity, input_size=input_size, device=device,
                               options=options)
    except Exception as exc:
        for outcome in outcomes.values():
            outcome["reason"] = failure_reason(exc)
        return
    try:
        for rows in trainer.epochs():
            for g, m, row in rows:
                outcomes[g.design.id, g.seeds[m]]["curve"].append(row)
                if progress is not None:
                    progress(g.design.id, g.seeds[m], dict(row))
        for (g, m), acc in trainer.test_accuracies().items():
            outcomes[g.design.id, g.seeds[m]]["test_acc"] = acc
        if fidelity.latency_reps:
            _measure_latencies(trainer, fidelity, outcomes)
        for g in trainer.groups:
            for m, reason in g.failed.items():
                outcomes[g.design.id, g.seeds[m]]["reason"] = reason
            if not g.use_graph:  # never asked for, or its capture failed
                for seed in g.seeds:
                    outcomes[g.design.id, seed]["engine"] = {
                        **outcomes[g.design.id, seed]["engine"], "cuda_graph": False}
    finally:
        del trainer
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _measure_latencies(trainer: MultiTrainer, fidelity: Fidelity,
                       outcomes: dict[tuple[str, int], dict[str, Any]]) -> None:
    """Inference latency of each model alive, as its one-model net (as evaluate() measures)."""
    resolution = fidelity.latency_resolution or trainer.input_size
    for g in trainer.groups:
        if not g.alive():
            continue
        try:
            for m, net in enumerate(trainer.nets(g)):
                if m not in g.failed:
                    outcomes[g.design.id, g.seeds[m]]["latency"] = measure_latency(
                        net, resolution, device=trainer.device,
                        warmup=fidelity.latency_warmup, reps=fidelity.latency_reps)
        except Exception as exc:
            g.fail(failure_reason(exc))


def _record(info: dict[str, Any], fidelity: str, config: dict[str, Any], dataset: str,
            seed: int, outcome: dict[str, Any], wall_s: float, device: torch.device) -> Result:
    """The record of one model (no latency or accuracy when it failed)."""
    failed = "reason" in outcome
    curve = outcome["curve"]
    return make_result(
        info, fidelity=fidelity, fidelity_config=config, dataset=dataset, seed=seed,
        reason=outcome.get("reason"), curve=curve,
        val_acc=curve[-1]["val_acc"] if curve and not failed else None,
        test_acc=None if failed else outcome.get("test_acc"), wall_s=wall_s,
        latency=None if failed else outcome.get("latency"), device=device_name(device),
        torch_version=torch.__version__)
