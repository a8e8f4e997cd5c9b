"""Tune callbacks and the scheduler hook that feed trial outcomes to the ledger.

Tune calls callbacks in the driver, in list order, from its one control thread; the
:class:`Recorder` goes first so that the progress display sees each outcome already counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from evaluators.record import CURVE_KEYS
from studies.ledger import Ledger
from studies.trainable import METRIC, TIME_ATTR
from studies.worker_deaths import memory_kill_reason


class Recorder(tune.Callback):
    """Hands each trial's epochs and outcome to the ledger; sends the heartbeats."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.ledger.heartbeat()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ledger.started(trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if "record" not in result:
            row = {k: result[k] for k in CURVE_KEYS if k in result}
            self.ledger.epoch(trial.trial_id, row, result.get("device"),
                              result.get("torch_version"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                          **info: Any) -> None:
        text = (trial.last_result or {}).get("record")
        self.ledger.finish(trial.trial_id, json.loads(text) if text else None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ledger.finish(trial.trial_id, None, error=_error_line(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.ledger.abandon_all()


class RecordingASHA(ASHAScheduler):
    """ASHA on val_acc over epochs that tells the ledger which trials it stopped early.

    The ledger needs to know: a trial that ends without a record was either stopped by
    ASHA (a ``stopped`` record, not run again) or interrupted (no record, run again).
    """

    def __init__(self, ledger: Ledger, *, max_t: int, grace_period: int,
                 reduction_factor: float):
        super().__init__(time_attr=TIME_ATTR, metric=METRIC, mode="max", max_t=max_t,
                         grace_period=grace_period, reduction_factor=reduction_factor)
        self.ledger = ledger

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and "record" not in result:
            self.ledger.stopped_by_scheduler[trial.trial_id] = int(result.get(TIME_ATTR, 0))
        return action


def make_asha(ledger: Ledger, epochs: int) -> RecordingASHA:
    """Rungs from epoch max(1, epochs // 16), a third surviving each (ASHA's usual eta=3).

    With 4 epochs (smoke, cpu) the rungs are epochs 1 and 3; with 30 (proxy) 1, 3, 9, 27.
    """
    return RecordingASHA(ledger, max_t=epochs, grace_period=max(1, epochs // 16),
                         reduction_factor=3)


def _error_line(trial: Any) -> str:
    """The last line of the trial's exception (the whole traceback is in its error file),
    or the out-of-memory reason when Ray's memory monitor killed its worker."""
    text = ""
    try:  # the driver's copy: Tune syncs it to the storage path (get_error) only later
        where = getattr(trial, "error_file", None)
        text = Path(where).read_text() if where else ""
        if not text:
            error = trial.get_error()
            text = str(error) if error is not None else ""
    except Exception:  # reading the error file failed: say where it is instead
        pass
    killed = memory_kill_reason(" ".join(text.split()))
    if killed:
        return killed
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    where = getattr(trial, "error_file", None)
    return "error: " + (lines[-1][:300] if lines else "trial failed") + (
        f" (see {where})" if where else "")
