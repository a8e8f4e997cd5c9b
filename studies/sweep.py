"""Run a planned sweep: Optuna proposes (studies.search), Ray Tune executes (this module).

Nothing here is a scheduler of our own: Tune decides when a trial starts (when its
resources are free), ASHA or FIFO decides whether it goes on, and the searcher only says
which (design, seed) comes next. Ray is imported here and in the modules this one imports,
never by ``studies.run`` at import time, so ``--dry-run`` and bad input stay fast.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import ray
from ray import tune
from ray.tune.schedulers import FIFOScheduler

from studies import study as st
from studies.estimate import SweepClock, SweepEstimate, TrialCosts, fmt_seconds
from studies.ledger import Ledger
from studies.plan import Plan
from studies.progress import Progress, write_summary
from studies.recorder import Recorder, make_asha
from studies.sampling import make_sampler
from studies.search import DesignSearcher
from studies.signals import Interrupts
from studies.store import RecordStore
from studies.trainable import run_trial
from studies.worker_deaths import tolerate_killed_workers

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep needs, resolved and validated by ``studies.run``."""

    plan: Plan
    fidelity: Any  # evaluators.Fidelity, overrides applied (its name is plan.fidelity)
    run_dir: Path  # absolute
    storage_url: str  # Optuna RDB URL
    num_classes: int  # of the dataset: describe() of stopped trials counts this FC
    input_size: int | None = None  # the dataset's image side, as evaluate builds the net
    data_dir: str | None = None  # absolute, the same path on every node
    scheduler: str = "fifo"  # "asha" | "fifo"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str | None = None  # an existing cluster; None = start Ray here
    costs: TrialCosts | None = None  # the cost model here: the ETA of the progress lines
    estimate: SweepEstimate | None = None  # of the trials to run, for the first line
    time_budget_s: float | None = None  # Tune stops every trial after this (--time-budget)
    budget_end: float | None = None  # --time-budget: the whole budget's end (monotonic)


def run_sweep(cfg: SweepConfig, *, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    """Run what is left of ``cfg.plan``; print the summary (``out``, default stdout) and the
    progress (``err``, default stderr). Returns 0 when every planned trial has a record, 1
    when some ended without one (interrupted, crashed workers): run the command again;
    130 after Ctrl-C, 143 after SIGTERM (studies.signals), the summary printed either way."""
    out = out or sys.stdout
    err = err or sys.stderr
    t0 = time.monotonic()
    interrupts = Interrupts()
    with interrupts.installed():
        ledger = _open_ledger(cfg, err)
        ledger.guard, ledger.interrupted = interrupts.critical, lambda: interrupts.interrupted
        todo = ledger.to_start()
        plan = cfg.plan
        estimate = f"; estimate: {cfg.estimate.describe()} ({cfg.estimate.source})" \
            if cfg.estimate is not None and todo else ""
        seeds = f"{len(plan.seeds)} seed{'s' if len(plan.seeds) > 1 else ''}"
        err.write(f"{plan.target} planned trials ({len(plan.design_ids)} designs x {seeds}, "
                  f"{plan.search}), {len(ledger.recorded_before)} recorded already, {todo} "
                  f"to run; fidelity {plan.fidelity}, dataset {plan.dataset}, scheduler "
                  f"{cfg.scheduler}{estimate}\n")
        if ledger.waiting_on_others():
            err.write("some keys are RUNNING in another driver (or a killed one): waiting for "
                      f"their records, or {st.stale_after_s()} s without a heartbeat\n")
        ledger.remove_stale_checkpoints()
        if (todo or ledger.waiting_on_others()) and not interrupts.interrupted:
            try:
                _run_tune(cfg, ledger, err, interrupts)
            except KeyboardInterrupt:  # a second signal: stopped at once, records kept
                err.write(f"\n{interrupts.describe()} again: stopped at once\n")
        ledger.remove_stale_checkpoints()
        _write_end(cfg, ledger, out, time.monotonic() - t0, interrupts)
    if interrupts.exit_status is not None:
        return interrupts.exit_status
    return 0 if ledger.complete() else 1


def _open_ledger(cfg: SweepConfig, err: TextIO) -> Ledger:
    storage = st.open_storage(cfg.storage_url)
    plan = cfg.plan
    study = st.open_study(storage, plan.name, make_sampler(plan.search, plan.sampler_seed,
                                                           plan.target))
    ledger = Ledger(plan, RecordStore(cfg.run_dir), study, storage, fidelity=cfg.fidelity,
                    num_classes=cfg.num_classes, input_size=cfg.input_size,
                    checkpoint_dir=cfg.run_dir / "checkpoints")
    if ledger.reconciled:
        err.write(f"added {ledger.reconciled} record(s) of the store to the Optuna study, "
                  "which did not hold them (a crash, or records made under another study: "
                  "a time budget's probe)\n")
    return ledger


def _write_end(cfg: SweepConfig, ledger: Ledger, out: TextIO, seconds: float,
               interrupts: Interrupts) -> None:
    """The summary table, the counts of this run and where it all is."""
    records = [r for k in sorted(ledger.recorded_keys())
               if (r := ledger.store.read(k)) is not None]
    write_summary(records, out)
    c = ledger.counts()
    recorded = len(ledger.recorded_keys())
    took = fmt_seconds(seconds)
    if cfg.estimate is not None and cfg.estimate.trials:
        took += f" (estimated {fmt_seconds(cfg.estimate.total)})"
    out.write(f"this run: {c['ok']} ok, {c['failed']} failed, {c['stopped']} stopped, "
              f"{c['error'] + c['interrupted']} without a record; {recorded} of "
              f"{cfg.plan.target} planned trials recorded; {took}\n")
    if interrupts.interrupted:
        out.write(f"stopped by {interrupts.describe()}: the same command resumes the "
                  "interrupted trials from their last epoch\n")
    out.write(f"run directory: {cfg.run_dir}\n")
    out.flush()


def _run_tune(cfg: SweepConfig, ledger: Ledger, err: TextIO, interrupts: Interrupts) -> None:
    own_ray = init_ray(cfg.address)
    interrupts.install()  # again: ray.init takes SIGTERM for itself
    try:
        if interrupts.interrupted:  # a signal while Ray started
            return
        threads = max(1, math.floor(cfg.cpus_per_trial))
        trainable = tune.with_parameters(
            run_trial, fidelity=cfg.fidelity, dataset=cfg.plan.dataset,
            data_dir=cfg.data_dir, threads=threads,
            driver_node=ray.get_runtime_context().get_node_id() if cfg.address else None)
        resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
        scheduler = (make_asha(ledger, cfg.fidelity.epochs) if cfg.scheduler == "asha"
                     else FIFOScheduler())
        clock = None
        if cfg.costs is not None:
            clock = SweepClock(cfg.costs, cluster_slots(cfg.cpus_per_trial,
                                                        cfg.gpus_per_trial),
                               cfg.fidelity.epochs)
            clock.refit(r for k in ledger.recorded_keys()
                        if (r := ledger.store.read(k)) is not None)
        deadlines = None if cfg.budget_end is None or cfg.time_budget_s is None else (
            time.monotonic() + cfg.time_budget_s, cfg.budget_end)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            # reuse_actors: a worker imports torch once, not once per trial (seconds each on
            # a small CPU); a worker whose trial does not stop within 2 s is replaced.
            tune_config=tune.TuneConfig(search_alg=DesignSearcher(ledger), scheduler=scheduler,
                                        num_samples=-1, reuse_actors=True,
                                        time_budget_s=cfg.time_budget_s),
            run_config=tune.RunConfig(
                name=f"tune-{stamp}-{os.getpid()}",
                storage_path=str(cfg.run_dir / "ray"),  # Tune's files, apart from records/
                verbose=0, callbacks=[Recorder(ledger), Progress(ledger, err, clock, deadlines)],
                failure_config=tune.FailureConfig(max_failures=0)))
        # Tune's own console output (a configuration box and trial tables, printed even at
        # verbose=0 by its new output engine; a trial's traceback when it errs; "Trials did
        # not complete" when a sweep is interrupted) would interleave with our progress
        # lines, which say the same in one line each (a trial's traceback stays in its
        # error file, which its line names). The legacy engine at verbose=0 is silent.
        with _env(RAY_AIR_NEW_OUTPUT="0", TUNE_PRINT_ALL_TRIAL_ERRORS="0"), \
                _quiet("ray.tune"), tolerate_killed_workers():
            tuner.fit()
    finally:
        ledger.abandon_all()
        if own_ray:
            ray.shutdown()


def cluster_slots(cpus_per_trial: float, gpus_per_trial: float = 0.0) -> int:
    """Trials the connected Ray runs at once: its CPUs (and GPUs) over a trial's share."""
    resources = ray.cluster_resources()
    slots = int(resources.get("CPU", 1) // cpus_per_trial)
    if gpus_per_trial > 0:
        slots = min(slots, int(resources.get("GPU", 0) // gpus_per_trial))
    return max(1, slots)


def init_ray(address: str | None) -> bool:
    """Connect to ``address`` or start Ray on this machine; True if we must shut it down.

    A Ray already initialised in this process (a test fixture, a notebook) is used as it is.
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Workers import evaluators and studies from this checkout (the same path on every
    # node of a cluster, or an installed igcbench).
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    # Workers' stdout/stderr stay in Ray's session logs: trial errors reach the progress
    # display through Tune, and a trial's failure reason is in its record.
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                  logging_level=logging.ERROR,
                                  runtime_env={"env_vars": {"PYTHONPATH": path}})
    if address is None:
        with _local_token_auth(), _sigterm_blocked_in_children():
            ray.init(num_cpus=os.cpu_count(), **kwargs)
        return True
    # Ray's C++ client logs every failed attempt to fd 2; the caller reports the failure in
    # one line instead.
    with _fd2_to_devnull():
        ray.init(address=address, **kwargs)
    return True


AUTH_TOKEN_FILE = Path.home() / ".ray" / "auth_token"  # where Ray keeps its default token


@contextlib.contextmanager
def _local_token_auth() -> Iterator[None]:
    """Token authentication for the Ray that a local sweep starts (around ``ray.init``).

    Ray 2.60's servers (GCS, raylet, workers, runtime-env agent) listen on every interface
    and no setting binds them to loopback (``_node_ip_address="127.0.0.1"`` is replaced by
    the machine's address); anyone who can reach this machine could run code in the sweep.
    So the local cluster must require Ray's token: ``ray.init()`` of a new cluster turns it
    on (and writes ``~/.ray/auth_token`` if there is none) unless ``RAY_AUTH_MODE`` says
    otherwise, so a ``RAY_AUTH_MODE`` other than ``token`` is dropped for the local start.
    A token file created here is made readable by its owner only. ``--address`` clusters
    keep their own settings (this is not used for them).
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        os.environ.pop("RAY_AUTH_MODE", None)
    token_file = None if {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ) \
        else AUTH_TOKEN_FILE
    had_token_file = token_file is not None and token_file.exists()
    yield
    if token_file is not None and not had_token_file and token_file.exists():
        token_file.chmod(0o600)  # Ray writes it with the umask's mode (often 0644)
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":  # a Ray without token auth
        logging.getLogger(__name__).warning(
            "Ray %s started without token authentication: its servers accept any client "
            "that can reach this machine (ray>=2.60 turns it on)", ray.__version__)


@contextlib.contextmanager
def _sigterm_blocked_in_children() -> Iterator[None]:
    """SIGTERM blocked in the processes the local Ray starts (around ``ray.init``).

    Ray's processes (GCS, raylet, and through the raylet every worker) run in the driver's
    process group, so a SIGTERM sent to the group (systemd, a batch scheduler, ``kill --
    -PGID``) would kill them under the driver, which then waits a minute for its GCS and
    dies with C++ errors. They inherit the signal mask of the thread that starts them (Ray
    blocks SIGINT so for them already): blocked, SIGTERM reaches only the driver, which
    stops the sweep and shuts its Ray down (``ray.shutdown`` then ends them with SIGKILL
    after a second's grace). The driver's own mask is restored after ``ray.init``.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    saved = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Logger ``name`` shows only CRITICAL messages inside (its level restored after)."""
    log = logging.getLogger(name)
    saved = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(saved)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _fd2_to_devnull() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
