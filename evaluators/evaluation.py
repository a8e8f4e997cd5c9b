"""evaluate(): train one design at one fidelity on one dataset with one seed -> Result.

(The module is not called ``evaluate``: ``evaluators.evaluate`` is this function, and a
submodule of that name would replace it on the package once imported.)

Example:
    >>> import evaluators as ev
    >>> r = ev.evaluate("plain8-c64-k1.64", fidelity="smoke", dataset="synthetic", seed=0)
    >>> r.status, r.val_acc > 0.5, r.commit_dirty in (True, False)
    ('ok', True, True)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

import search_space as ss
from evaluators.catalog import dataset_spec
from evaluators.checkpoint import EpochCheckpoint
from evaluators.data import Dataset, load_dataset
from evaluators.errors import Diverged
from evaluators.fidelity import Fidelity, get_fidelity
from evaluators.latency import measure_latency
from evaluators.record import Result, describe_info, make_result
from evaluators.runtime import device_name, torch_state
from evaluators.splits import make_splits
from evaluators.train import accuracy, train_epochs, zero_init_residuals

Progress = Callable[[dict[str, Any]], object]


def evaluate(design: ss.Design | str, fidelity: Fidelity | str = "smoke",
             dataset: str = "synthetic", seed: int = 0, data_dir: Path | str | None = None,
             *, threads: int | None = None, device: torch.device | str | None = None,
             progress: Progress | None = None, checkpoint: Path | str | None = None) -> Result:
    """Train ``design`` as ``fidelity`` says and return its result record.

    A failed trial does not raise: it returns ``status="failed"`` with the reason
    (``diverged: loss=nan at epoch E step S``, ``out of memory: ...``,
    ``error: ExcType: message``) and the curve up to the failure. What does raise is a bad
    request, before any training: an unknown fidelity, dataset or design id (ValueError) or
    missing or corrupt data (:class:`evaluators.DatasetError`).

    Args:
        design: a ``search_space.Design`` or its id, e.g. "plain8-c144-k1.12.12".
        fidelity: a registered name (see ``FIDELITIES``) or a ``Fidelity``; override fields
            with ``dataclasses.replace(get_fidelity("cpu"), lr=0.05)``.
        dataset: one of "synthetic", "cifar10", "cifar100", "tinyimagenet".
        seed: seeds the initial weights, data order and augmentation; on CPU the same seed
            gives the same curve exactly.
        data_dir: directory holding (or receiving) the dataset; default ``$IGCBENCH_DATA``
            or ``./data``.
        threads: torch CPU threads for this trial (the CPUs it was given); default
            ``fidelity.threads``, else torch's setting. Restored afterwards.
        device: "cpu", "cuda", "cuda:1", ...; default CUDA when available.
        progress: called with a copy of each epoch's curve row (epoch, train_loss,
            train_acc, val_acc, seconds) as soon as the epoch ends. Exceptions it raises are
            NOT caught: they propagate out of evaluate() (Ray Tune stops trials this way).
            A resumed trial calls it for the restored epochs too, first, in order.
        checkpoint: a file for per-epoch checkpoints (evaluators.checkpoint): written
            after every epoch; if it holds a valid checkpoint of this trial (same design,
            dataset, seed, fidelity config, device kind), training resumes after its epoch
            and the result equals an uninterrupted run's (``wall_s`` adds the interrupted
            runs' training time). Left in place: remove it with
            ``evaluators.remove_checkpoint`` once the record is stored.

    Returns:
        The :class:`Result`; its ``design`` holds ``search_space.describe()`` of the net
        actually trained (``num_classes`` of the dataset).
    """
    start = time.perf_counter()
    design, fidelity, dev, threads = _request(design, fidelity, dataset, device, threads)
    with torch_state(threads, dev, deterministic=fidelity.deterministic):
        data = load_dataset(dataset, data_dir)
        # The net is built for the dataset's own image size (64: stride-2 stem for Tiny
        # ImageNet); a fidelity's smaller resolution feeds it smaller images.
        info = describe_info(design, data.num_classes, data.resolution)
        curve: list[dict[str, Any]] = []
        outcome: dict[str, Any] = {}
        ckpt = None if checkpoint is None else EpochCheckpoint(
            Path(checkpoint), {"design_id": design.id, "dataset": dataset,
                               "num_classes": data.num_classes})
        for row in _trial(design, info["input_size"], data, fidelity, seed, dev, outcome,
                          ckpt):
            curve.append(row)
            if progress is not None:
                progress(dict(row))
    return _result(info, fidelity, dataset, seed, threads, dev, curve, outcome,
                   start, ckpt.resumed_s if ckpt else 0.0)


def _request(design: ss.Design | str, fidelity: Fidelity | str, dataset: str,
             device: torch.device | str | None,
             threads: int | None) -> tuple[ss.Design, Fidelity, torch.device, int]:
    """evaluate()'s design, fidelity, device and thread count resolved; ValueError for an
    unknown design id, fidelity or dataset, before any training."""
    design = ss.parse(design) if isinstance(design, str) else design
    fidelity = get_fidelity(fidelity) if isinstance(fidelity, str) else fidelity
    dataset_spec(dataset)  # ValueError: unknown
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return design, fidelity, dev, threads or fidelity.threads or torch.get_num_threads()


def _result(info: dict[str, Any], fidelity: Fidelity, dataset: str, seed: int, threads: int,
            device: torch.device, curve: list[dict[str, Any]], outcome: dict[str, Any],
            start: float, resumed_s: float) -> Result:
    """The record of one trial; ``wall_s`` is the time since ``start`` plus ``resumed_s``,
    the training time of the interrupted runs it resumed."""
    reason = outcome.get("reason")
    return make_result(
        info, fidelity=fidelity.name, fidelity_config={**fidelity.to_dict(), "threads": threads},
        dataset=dataset, seed=seed, reason=reason, curve=curve,
        val_acc=curve[-1]["val_acc"] if curve and reason is None else None,
        test_acc=outcome.get("test_acc"), wall_s=time.perf_counter() - start + resumed_s,
        latency=outcome.get("latency"), device=device_name(device),
        torch_version=torch.__version__)


def _trial(design: ss.Design, input_size: int, data: Dataset, fidelity: Fidelity, seed: int,
           device: torch.device, outcome: dict[str, Any],
           checkpoint: EpochCheckpoint | None = None) -> Iterator[dict[str, Any]]:
    """Yield curve rows; on return ``outcome`` holds test_acc and latency, or a reason.

    The data go to the device inside the trial, so that running out of device memory there
    is a failed record too.

    Every exception of the trial itself becomes ``outcome["reason"]``; exceptions thrown by
    the consumer (the progress callback) are raised outside this generator and propagate.
    """
    model = None
    try:
        splits = make_splits(data, fidelity, device)
        torch.manual_seed(seed)
        model = ss.build(design, num_classes=splits.num_classes, input_size=input_size)
        if fidelity.zero_init_residual:
            zero_init_residuals(model)
        model = model.to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        yield from train_epochs(model, splits, fidelity, seed=seed, device=device,
                                checkpoint=checkpoint)
        outcome["test_acc"] = accuracy(model, splits.test_images, splits.test_labels, splits,
                                       batch_size=fidelity.eval_batch_size)
        if fidelity.latency_reps:
            resolution = fidelity.latency_resolution or input_size
            outcome["latency"] = measure_latency(
                model, resolution, device=device, warmup=fidelity.latency_warmup,
                reps=fidelity.latency_reps)
    except Exception as exc:  # a failed trial is a record, not an exception
        outcome["reason"] = failure_reason(exc)
    finally:
        del model, data
        if device.type == "cuda":
            torch.cuda.empty_cache()


def failure_reason(exc: BaseException) -> str:
    """The ``reason`` of a failed record: diverged, out of memory, or error."""
    message = " ".join(str(exc).split())[:500]  # one line, bounded (CUDA OOM is long)
    if isinstance(exc, Diverged):
        return f"diverged: {message}"
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or (
            isinstance(exc, RuntimeError) and "out of memory" in message.lower()):
        return f"out of memory: {message}"
    return f"error: {type(exc).__name__}: {message}"
