"""The Ray Tune trainable: one (design, seed) evaluated at one fidelity, reported per epoch.

It runs in a Ray worker, possibly on another machine, so it takes everything it needs from
its arguments and sends its result back through ``tune.report`` instead of writing files:
the driver owns the result store and the Optuna study (:mod:`studies.recorder`).

Reports, in order (each increments Tune's ``training_iteration``):

- one per finished epoch except the last: ``epoch``, ``val_acc``, ``train_loss``,
  ``train_acc``, ``seconds`` (what ASHA compares at its rungs), and the worker's ``device``
  and ``torch_version`` (what the record of a trial ASHA stops names);
- a final one after ``evaluate`` returns: the last epoch's numbers, ``status`` and
  ``record`` (the whole result record as a JSON string, so Tune does not flatten it).

The last epoch is reported only with the record because ASHA stops a trial as soon as it
reports ``epoch >= max_t``; reporting that epoch on its own would stop the trial before
its test accuracy, latency and record exist.

In-trial resume: the driver names a checkpoint file per trial (``config["checkpoint"]``,
``RUN_DIR/checkpoints/<key>.pt``), which ``evaluate`` writes after every epoch and resumes
from when the trial runs again (after Ctrl-C, SIGTERM or ``kill -9``); the restored epochs
are reported again first. The driver removes the file once the trial's record is written
(:class:`studies.ledger.Ledger`). On a cluster (``--address``) a trial on another node than
the driver's writes the file on its own node, which the driver cannot reach: unless the
run directory is on a file system the nodes share, that trial removes its checkpoint itself
when ``evaluate`` returns, just before its record is reported.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from evaluators.memory import release_memory

METRIC = "val_acc"  # what ASHA and the progress display rank trials by (maximised)
TIME_ATTR = "epoch"  # ASHA's clock: epochs of the fidelity, not Tune's report counter


def run_trial(config: dict[str, Any], *, fidelity: Any, dataset: str,
              data_dir: str | None, threads: int, driver_node: str | None = None) -> None:
    """Evaluate ``config["design_id"]`` with seed ``config["seed"]``; report to Tune.

    Args:
        config: the trial's config from :class:`studies.search.DesignSearcher`: ``key``,
            ``design_id``, ``seed``, ``checkpoint`` (a file path, or None) and the Optuna
            trial number (unused here).
        fidelity: an ``evaluators.Fidelity`` (overrides included).
        dataset: one of ``evaluators.DATASETS``.
        data_dir: absolute path of the data directory on every node, or None (synthetic,
            or the evaluators' default).
        threads: torch CPU threads, the CPUs Ray gave this trial.
        driver_node: the Ray node id of the driver on a cluster (``--address``), else None.
    """
    from ray import tune  # imported here: this module is importable without Ray

    import evaluators

    last_epoch = fidelity.epochs
    worker = _worker()

    def progress(row: dict[str, Any]) -> None:
        if row["epoch"] < last_epoch:
            tune.report({**_epoch_metrics(row), **worker})

    checkpoint = config.get("checkpoint")
    result = evaluators.evaluate(
        config["design_id"], fidelity=fidelity, dataset=dataset, seed=int(config["seed"]),
        data_dir=Path(data_dir) if data_dir else None, threads=threads, progress=progress,
        checkpoint=checkpoint)
    if checkpoint and driver_node and _node_id() != driver_node \
            and not Path(checkpoint).parent.parent.joinpath("run.json").is_file():
        evaluators.remove_checkpoint(checkpoint)  # the driver cannot see this node's disk
    final = _epoch_metrics(result.curve[-1]) if result.curve else {TIME_ATTR: 0}
    if not result.ok:
        # A failed trial has no accuracy; NaN keeps the metric present (Tune insists) while
        # ASHA's nanpercentile and the progress display ignore it.
        final[METRIC] = math.nan
    release_memory()  # before the record: the worker is reused for the next trial
    tune.report({**final, "status": result.status, "record": json.dumps(result.to_dict())})


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _worker() -> dict[str, str]:
    """The device evaluate() will pick, named as records name it, and the torch version."""
    import torch

    device = f"cuda:{torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu"
    return {"device": device, "torch_version": torch.__version__}


def _epoch_metrics(row: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: row[k] for k in ("train_loss", "train_acc", "val_acc", "seconds") if k in row}
    metrics[TIME_ATTR] = row["epoch"]
    metrics[METRIC] = _finite_or_nan(metrics.get(METRIC))
    return metrics


def _finite_or_nan(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan
