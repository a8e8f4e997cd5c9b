"""The driver's ledger: which planned trials are recorded, running, finished or given up.

Only the driver process holds a ledger. The searcher (:mod:`studies.search`) asks it which
(design, seed) pairs are free and registers the trials it starts; the Tune callbacks
(:mod:`studies.recorder`) hand it each trial's outcome, and it writes the record (store
first, then the Optuna study) and keeps the counts the progress display shows.

Order of writes for a finished trial: the record file (atomic), then the Optuna trial. A
crash between the two leaves a record without its trial; the next driver's
:func:`studies.study.reconcile` adds it. A crash before the record leaves a RUNNING Optuna
trial with no heartbeat (failed as stale later) and no record, so the trial runs again.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from evaluators.record import describe_info, is_stopped, stopped_result
from studies import study as st
from studies.plan import Plan
from studies.store import RecordStore

#: The reason's prefix of a trial whose worker Ray's memory monitor killed
#: (studies.worker_deaths): interrupted the first time, a failed record the second.
OOM_KILLED = "out of memory: killed by Ray's memory monitor"


@dataclass
class Running:
    """A trial this driver started (its Optuna trial is RUNNING)."""

    key: str
    design_id: str
    seed: int
    optuna_trial_id: int
    optuna_number: int
    tune_trial_id: str
    checkpoint: str | None = None  # its per-epoch checkpoint file (RUN_DIR/checkpoints/)
    started: float | None = None  # monotonic time Tune started it; None while pending
    curve: list[dict[str, Any]] = field(default_factory=list)
    device: str = "unknown"  # as the trainable reports it
    torch_version: str = "unknown"  # of the worker, as the trainable reports it


@dataclass(frozen=True)
class Finished:
    """One outcome of this run: ok, failed (a record), stopped (ASHA) or error (no record)."""

    key: str
    design_id: str
    seed: int
    outcome: str  # "ok" | "failed" | "stopped" | "error" | "interrupted"
    val_acc: float | None
    reason: str | None
    seconds: float  # from Tune's start of the trial to its end


class Ledger:
    """State of one sweep in the driver. Not thread-safe: Tune calls it from one thread."""

    def __init__(self, plan: Plan, store: RecordStore, study: optuna.Study,
                 storage: optuna.storages.BaseStorage, *, fidelity: Any, num_classes: int,
                 input_size: int | None = None, checkpoint_dir: Path | None = None):
        self.plan, self.store, self.study, self.storage = plan, store, study, storage
        self.fidelity, self.num_classes, self.input_size = fidelity, num_classes, input_size
        self.checkpoint_dir = checkpoint_dir
        # Around each record's write and tell: a second Ctrl-C waits for it (studies.signals).
        self.guard: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
        # True once the sweep is ending on a signal: trials ending without a record then are
        # interrupted (the same command resumes them), not errors.
        self.interrupted: Callable[[], bool] = lambda: False
        self.pairs = plan.all_pairs()
        self.interval = storage.get_heartbeat_interval() or st.heartbeat_s()  # seconds
        self.t0 = time.monotonic()
        st.fail_stale(study)
        self.recorded_before = self.recorded_keys()
        with store.lock():
            before = [(k, r) for k in sorted(self.recorded_before)
                      if (r := store.read(k)) is not None]
            self.reconciled = st.reconcile(study, iter(before), plan.design_ids)
        # The best so far counts a resumed sweep's earlier records too, not only this run's.
        self.best_before = _best_record((k, r) for k, r in before if k in self.pairs)
        self.running: dict[str, Running] = {}  # by Tune trial id
        self.peak_running = 0  # most trials seen running at once: the sweep's parallelism
        self.finished: list[Finished] = []
        self.given_up: set[str] = set()  # errored or interrupted here: not retried this run
        self.stopped_by_scheduler: dict[str, int] = {}  # Tune trial id -> epoch
        self._elsewhere: set[str] = set()
        self._elsewhere_at = -math.inf
        self._heartbeat_at = -math.inf

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks and searcher into tuner.pkl (for Tuner.restore, which
        # we do not use: a re-run resumes from the store). A ledger holds open database
        # handles and only makes sense in its driver, so only the plan travels.
        return {"plan": self.plan}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.plan = state["plan"]

    # --- what is free -------------------------------------------------------------------

    def recorded_keys(self) -> set[str]:
        """Planned keys with a record in the store (this driver's, earlier or another's)."""
        return self.store.keys() & self.pairs.keys()

    def running_keys(self) -> set[str]:
        return {r.key for r in self.running.values()}

    def running_elsewhere(self) -> set[str]:
        """Keys another live driver is running (a RUNNING Optuna trial with a fresh
        heartbeat). Refreshed at most every heartbeat interval: it costs a query."""
        now = time.monotonic()
        if now - self._elsewhere_at >= self.interval:
            st.fail_stale(self.study)
            ours = {r.optuna_trial_id for r in self.running.values()}
            self._elsewhere = {k for k, tid in st.running_keys(self.study).items()
                               if tid not in ours}
            self._elsewhere_at = now
        return self._elsewhere

    def is_free(self, key: str) -> bool:
        """True when ``key`` is planned and nobody has recorded it, runs it (this driver or
        another live one) or gave it up in this run."""
        return (key in self.pairs and key not in self.running_keys()
                and key not in self.given_up and key not in self.running_elsewhere()
                and not self.store.has(key))

    def target_keys(self) -> set[str] | None:
        """The keys a grid/random sweep must record; None for tpe/nsga2 (any planned key
        counts towards the target)."""
        if self.plan.adaptive:
            return None
        return {self.plan.key(d, s) for d, s in self.plan.ordered_pairs()}

    def to_start(self) -> int:
        """Trials still to start to reach the plan's target. Keys another live driver is
        running count as started: that driver will record them."""
        claimed = (self.recorded_keys() | self.running_keys() | self.given_up
                   | (self.running_elsewhere() & self.pairs.keys()))
        target = self.target_keys()
        if target is None:
            return max(0, self.plan.target - len(claimed))
        return len(target - claimed)

    def waiting_on_others(self) -> bool:
        """True while keys this sweep still needs are running in another driver (a live
        one, or a killed one whose heartbeat is not yet stale): wait, then take over."""
        others = self.running_elsewhere() - self.recorded_keys()
        target = self.target_keys()
        return bool(others & (self.pairs.keys() if target is None else target))

    def complete(self) -> bool:
        """Every trial of the target is recorded."""
        target = self.target_keys()
        if target is None:
            return len(self.recorded_keys()) >= self.plan.target
        return target <= self.recorded_keys()

    # --- trial lifecycle ----------------------------------------------------------------

    def checkpoint_path(self, key: str) -> str | None:
        """Where the trial of ``key`` keeps its per-epoch checkpoint (None: it keeps none)."""
        return None if self.checkpoint_dir is None else str(self.checkpoint_dir / f"{key}.pt")

    def remove_stale_checkpoints(self) -> int:
        """Remove the checkpoints of keys that have a record (a trial ASHA stopped may have
        written one more epoch after its record); the others are resumable. Returns how
        many went."""
        if self.checkpoint_dir is None or not self.checkpoint_dir.is_dir():
            return 0
        from evaluators import remove_checkpoint

        gone = 0
        for path in self.checkpoint_dir.glob("*.pt"):
            if self.store.has(path.stem):
                remove_checkpoint(path)
                gone += 1
        return gone

    def register(self, run: Running) -> None:
        self.running[run.tune_trial_id] = run
        self.storage.record_heartbeat(run.optuna_trial_id)

    def started(self, tune_trial_id: str) -> None:
        if tune_trial_id in self.running:
            self.running[tune_trial_id].started = time.monotonic()
            self.peak_running = max(self.peak_running, sum(
                r.started is not None for r in self.running.values()))

    def epoch(self, tune_trial_id: str, row: dict[str, Any], device: str | None,
              torch_version: str | None = None) -> None:
        run = self.running.get(tune_trial_id)
        if run is not None:
            run.curve.append(row)
            run.device = device or "unknown"
            run.torch_version = torch_version or "unknown"

    def heartbeat(self) -> None:
        """Tell the storage our RUNNING trials are alive (once per heartbeat interval)."""
        now = time.monotonic()
        if now - self._heartbeat_at < self.interval:
            return
        self._heartbeat_at = now
        for run in self.running.values():
            self.storage.record_heartbeat(run.optuna_trial_id)

    def finish(self, tune_trial_id: str, record: dict[str, Any] | None,
               error: str | None = None, interrupted: bool = False) -> Finished | None:
        """Record the outcome of a trial: its record (or a stopped record built here when
        ASHA stopped it), or, with no record, an error that leaves the key to a re-run."""
        run = self.running.pop(tune_trial_id, None)
        if run is None:
            return None
        seconds = time.monotonic() - (run.started or time.monotonic())
        if record is None and tune_trial_id in self.stopped_by_scheduler:
            record = self._stopped_record(run, self.stopped_by_scheduler[tune_trial_id],
                                          seconds)
        memory_killed = record is None and (error or "").startswith(OOM_KILLED)
        if memory_killed and self._killed_before(run.key):
            record = {  # twice: the design does not fit this machine
                **self._stopped_record(run, len(run.curve), seconds),
                "reason": f"{error}; twice, so it is recorded as failed"}
        if record is None:
            self.given_up.add(run.key)
            reason = error or "interrupted before it finished"
            st.fail_trial(self.storage, run.optuna_trial_id, reason)
            cut_off = interrupted or memory_killed or (self.interrupted() and error is None)
            done = Finished(run.key, run.design_id, run.seed,
                            "interrupted" if cut_off else "error", None, reason, seconds)
        else:
            with self.guard(), self.store.lock():
                self.store.write(record)
                st.tell_record(self.study, run.optuna_trial_id, record, run.key,
                               self.plan.design_ids)
                if run.checkpoint:  # the record holds the trial now
                    from evaluators import remove_checkpoint

                    remove_checkpoint(run.checkpoint)
            outcome = "stopped" if is_stopped(record) else record["status"]
            done = Finished(run.key, run.design_id, run.seed, outcome, record.get("val_acc"),
                            record.get("reason"), seconds)
        self.finished.append(done)
        return done

    def abandon_all(self, reason: str = "the sweep ended before the trial did; "
                                        "the same command runs it again") -> None:
        """Fail the Optuna trials of everything still registered (the sweep is ending).

        Shown as ``interrupted``, not ``error``: nothing went wrong with these trials (a
        Ctrl-C or the end of the run cut them off), and the same command runs them again.
        """
        for tune_trial_id in list(self.running):
            self.finish(tune_trial_id, None, reason, interrupted=True)

    def _stopped_record(self, run: Running, epoch: int, seconds: float) -> dict[str, Any]:
        """The record of a trial ASHA stopped: its curve so far, no final accuracy."""
        return stopped_result(
            describe_info(run.design_id, self.num_classes, self.input_size),
            fidelity=self.plan.fidelity, fidelity_config=self.fidelity.to_dict(),
            dataset=self.plan.dataset, seed=run.seed, curve=run.curve, epoch=epoch,
            wall_s=seconds, device=run.device, torch_version=run.torch_version).to_dict()

    def _killed_before(self, key: str) -> bool:
        """An earlier Optuna trial of ``key`` ended killed by Ray's memory monitor."""
        return any(t.user_attrs.get(st.KEY_ATTR) == key
                   and str(t.user_attrs.get("error", "")).startswith(OOM_KILLED)
                   for t in self.study.get_trials(deepcopy=False,
                                                  states=(optuna.trial.TrialState.FAIL,)))

    # --- for the progress display and the summary ----------------------------------------

    def counts(self) -> dict[str, int]:
        """ok/failed/stopped/error/interrupted this run, running/pending now, recorded before."""
        out = {k: 0 for k in ("ok", "failed", "stopped", "error", "interrupted")}
        for f in self.finished:
            out[f.outcome] += 1
        out["running"] = sum(r.started is not None for r in self.running.values())
        out["pending"] = len(self.running) - out["running"]
        out["before"] = len(self.recorded_before)
        return out

    def best(self) -> Finished | None:
        """The ok trial with the highest val_acc, this run's or an earlier run's record."""
        oks = [f for f in self.finished if f.outcome == "ok" and f.val_acc is not None]
        if self.best_before is not None:
            oks.append(self.best_before)
        return max(oks, key=lambda f: f.val_acc) if oks else None


def _best_record(records: Iterable[tuple[str, dict[str, Any]]]) -> Finished | None:
    """The ok record (key, record) with the highest val_acc, as a Finished (or None)."""
    oks = [(k, r) for k, r in records
           if r.get("status") == "ok" and r.get("val_acc") is not None]
    if not oks:
        return None
    k, r = max(oks, key=lambda kr: float(kr[1]["val_acc"]))
    return Finished(key=k, design_id=r["design_id"], seed=int(r["seed"]),
                    outcome="ok", val_acc=float(r["val_acc"]), reason=None,
                    seconds=float(r.get("wall_s", 0.0)))
