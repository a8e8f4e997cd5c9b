"""``python studies/run.py --budget 0.65M --time-budget 1h``: the sweep fitted to a wall clock.

Successive halving over named rungs (``studies.halving`` plans, this module runs): every
design (that fits memory) is trained at the cheapest rung, the best quarter by validation
accuracy at the next, and so on; each rung is one Ray Tune run of ``studies.sweep`` (FIFO,
one record per trial, resumable by key) with a hard stop (Tune's ``time_budget_s``) at the
time left. Between rungs the cost model's scale is refitted to the records just made and
the next rung re-planned to the time left: fewer designs when the machine runs slower than
predicted, more (up to half) when faster. At the end: how many designs were trained at
which rung, and the best design with a 95% interval of its test accuracy.

Why not Tune's ASHA or HyperBand (docs/studies.md says more): ASHA promotes the first
trials to reach a rung without comparison (the first one at each rung always continues),
so on two workers the first designs of the list run to the top while most have not been
seen, and a hard stop can then leave no trial finished at the top; Tune's synchronous
HyperBand needs pausable (checkpointed) trials and runs several brackets. Rungs as separate
Tune runs keep every rung's results complete records, let each rung have its own data sizes,
and let the plan follow the measured speed. Tune still runs every trial.

State: ``RUN_DIR/time_budget.json`` (the ladder, each rung's designs once decided, what was
skipped and why, the answer), rewritten atomically after each decision. The same command
again keeps the decided rungs and their records and spends its own budget on what is left.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import search_space as ss
from evaluators.cost_model import DATASET_SIZES, predict_seconds, refit
from evaluators.fidelity import Fidelity, with_changes
from evaluators.memory import trial_memory_bytes
from evaluators.record import trial_key, utc_now, write_json_atomic
from studies import halving as hv
from studies.plan import Plan
from studies.progress import fmt_seconds
from studies.store import RecordStore

STATE_FILE = "time_budget.json"
TRIAL_OVERHEAD_S = 1.0  # per trial, beyond its record's wall_s: Tune handing it to a worker
RUNG_OVERHEAD_S = 10.0  # per rung: starting the Tune run and its workers (each imports
#                         torch); measured 4-9 s on the 2-core machine, then refitted per rung
SETUP_RESERVE_S = 10.0  # the final report, Ray's shutdown
CONFIDENCE = 0.95
_TUNE_SIGINT = "TUNE_DISABLE_SIGINT_HANDLER"
MEMORY_ENV = "IGCBENCH_TRIAL_MEMORY_GB"  # per-trial memory limit; default: a share of the
#                                          machine's available memory (see trial_memory_limit)


@dataclasses.dataclass
class Rung:
    """One rung of this sweep: a ladder index, its fidelity, and the designs it trains."""

    ladder: int
    fidelity: Fidelity
    designs: list[str]
    decided: str  # how the designs were chosen, for the report

    def to_dict(self) -> dict[str, Any]:
        return {"ladder": self.ladder, "fidelity": self.fidelity.name,
                "fidelity_config": self.fidelity.to_dict(), "designs": self.designs,
                "decided": self.decided}


def run_time_budget(request: Any, argv: list[str], *, out: TextIO | None = None,
                    err: TextIO | None = None, started: float | None = None) -> int:
    """Run the time-budgeted sweep of a validated ``studies.run.Request``.

    ``started``: ``time.monotonic()`` when the command started (the budget counts from
    there; default now). Returns 0 when a best design is named, 1 otherwise (interrupted,
    or nothing fitted), 130 after Ctrl-C.
    """
    from studies.sweep import init_ray

    out, err = out or sys.stdout, err or sys.stderr
    t0 = started if started is not None else time.monotonic()
    deadline = t0 + request.time_budget_s
    own_ray = init_ray(request.address)
    try:
        with _INTERRUPT:
            return _run(request, argv, out, err, t0, deadline)
    except KeyboardInterrupt:
        err.write("\ninterrupted: the same command resumes from the records\n")
        return 130
    finally:
        if own_ray:
            import ray

            ray.shutdown()


class _Interrupt:
    """Ctrl-C in a time-budgeted sweep ends the sweep, not just the rung running.

    Ray Tune's own SIGINT handler ends its run as if it had finished, so the next rung
    would start. Instead (with Tune's SIGINT handler off): the first Ctrl-C during a rung
    asks Tune to stop through its other stop signal, SIGUSR1 (the same graceful stop:
    trials end, the run returns), and the sweep ends after the rung with its report; a
    Ctrl-C outside a rung, or a second one, raises KeyboardInterrupt at once. Records
    already written stay either way.
    """

    def __init__(self) -> None:
        self.requested = False
        self.in_rung = False
        self._saved: list[Any] = []

    def __enter__(self) -> _Interrupt:
        self.requested, self.in_rung = False, False
        self._env = os.environ.get(_TUNE_SIGINT)
        os.environ[_TUNE_SIGINT] = "1"
        if threading.current_thread() is threading.main_thread():
            self._saved = [signal.signal(signal.SIGINT, self._on_sigint)]
            if hasattr(signal, "SIGUSR1"):  # until Tune installs its own: not terminate
                self._saved.append(signal.signal(signal.SIGUSR1, lambda *_: None))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._env is None:
            os.environ.pop(_TUNE_SIGINT, None)
        else:
            os.environ[_TUNE_SIGINT] = self._env
        for sig, handler in zip((signal.SIGINT, getattr(signal, "SIGUSR1", None)),
                                self._saved, strict=False):
            signal.signal(sig, handler)
        self._saved = []

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested or not self.in_rung or not hasattr(signal, "SIGUSR1"):
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write("\nCtrl-C: ending the rung (its running trials stop); Ctrl-C again "
                         "stops at once\n")
        os.kill(os.getpid(), signal.SIGUSR1)


_INTERRUPT = _Interrupt()


def _run(request: Any, argv: list[str], out: TextIO, err: TextIO, t0: float,
         deadline: float) -> int:
    import ray

    plan, dataset = request.plan, request.plan.dataset
    store = RecordStore(request.run_dir)
    state_path = request.run_dir / STATE_FILE
    ladder = ladder_fidelities(request.fidelity, dataset)
    state = _read_state(state_path)
    if state and [r["fidelity"] for r in state["ladder"]] != [f.name for f in ladder]:
        err.write(f"{state_path}: another ladder (its base fidelity changed); starting over "
                  "with this one (records are kept by key)\n")
        state = None
    workers = _workers(ray.cluster_resources(), request.cpus_per_trial,
                       request.gpus_per_trial)
    limit = trial_memory_limit(workers)
    kept, skipped = screen_memory(plan.design_ids, ladder[-1], dataset, request.num_classes,
                                  limit)
    head = (f"time budget {hv.fmt_duration(request.time_budget_s)}: {len(plan.design_ids)} "
            f"designs, {len(skipped)} skipped for memory (over {limit / 2**30:.1f} GB a "
            f"trial), {workers} trials at a time")
    if not kept:
        out.write(head + "; nothing left to train\n")
        return 1
    d = _Driver(request, store, ladder, kept, workers, deadline, err)

    def save(answer: dict[str, Any] | None = None) -> None:
        _write_state(state_path, ladder, d.planned, d.rungs, skipped, limit, answer)

    if state and state.get("rungs"):
        d.planned = [int(r) for r in state["planned"]]
        d.rungs = [_rung_from(r, ladder) for r in state["rungs"]]
        err.write(f"{head}; resuming {STATE_FILE}: rungs "
                  + ", ".join(str(r.ladder) for r in d.rungs) + "\n")
        interrupted = False
    else:
        err.write(head + "\n")
        interrupted = d.start()
        if not d.rungs and not interrupted:
            out.write(head + f"; not one trial of the cheapest rung ({ladder[-1].name}) fits "
                             "the time left: give more time or a smaller --budget\n")
            return 1
    if d.rungs:  # decided: a re-run keeps them (an interrupted probe decided nothing)
        save()
    k = 0
    while k < len(d.rungs) and not interrupted:
        interrupted = d.run(d.rungs[k])
        if not interrupted and k + 1 == len(d.rungs) and (nxt := d.next_rung(k)):
            d.rungs.append(nxt)
            save()
        k += 1
    answer = summarise(d.rungs or d.probe, store, plan, skipped)
    answer.update(seconds=time.monotonic() - t0, time_budget_s=request.time_budget_s,
                  created=utc_now())
    if d.rungs:
        save(answer)
    write_report(answer, out)
    out.write(f"run directory: {request.run_dir}\n")
    if interrupted:
        return 130
    return 0 if answer.get("best") else 1


class _Driver:
    """The sweep's working state: the designs, the calibration as refitted so far, the
    rungs decided, and how to run one."""

    def __init__(self, request: Any, store: RecordStore, ladder: list[Fidelity],
                 kept: list[str], workers: int, deadline: float, err: TextIO) -> None:
        self.request, self.store, self.ladder, self.kept = request, store, ladder, kept
        self.workers, self.deadline, self.err = workers, deadline, err
        self.plan, self.seeds = request.plan, len(request.plan.seeds)
        self.calibration = _calibration(request, ladder[-1], store, ladder)
        self.rung_overhead = RUNG_OVERHEAD_S
        self.rungs: list[Rung] = []
        self.planned: list[int] = []
        self.probe: list[Rung] = []  # rung 0's first trials, before rung 0 is decided

    def left(self) -> float:
        return self.deadline - time.monotonic() - SETUP_RESERVE_S

    def costs(self, fidelity: Fidelity, designs: list[str] | None = None) -> list[float]:
        """Predicted seconds of a trial of each design (all candidates by default)."""
        return [predict_seconds(d, fidelity.to_dict(), self.plan.dataset, self.calibration,
                                num_classes=self.request.num_classes) + TRIAL_OVERHEAD_S
                for d in (self.kept if designs is None else designs)]

    def ladder_plan(self) -> hv.LadderPlan | None:
        costs = {d: c for d, c in zip(self.kept, zip(*(self.costs(f) for f in self.ladder),
                                                     strict=True), strict=True)}
        return _plan(self.kept, costs, self.seeds, self.workers, self.left(),
                     self.rung_overhead)

    def start(self) -> bool:
        """Plan; run a probe of rung 0 (2 trials a worker, spread over the predicted costs)
        and plan again from its times; decide rung 0. True if interrupted."""
        first = self.ladder_plan()
        if first is None:
            return False
        probe = probe_designs(self.kept, self.costs(self.ladder[first.rungs[0]]),
                              2 * self.workers)
        if len(probe) < len(self.kept):
            rung = Rung(first.rungs[0], self.ladder[first.rungs[0]], probe,
                        f"a probe of {len(probe)} designs spread over the predicted times")
            self.probe = [rung]
            if self.run(rung):
                return True
            first = self.ladder_plan()
            if first is None:
                return False
        if first.sampled:
            rest = [d for d in self.kept if d not in probe]
            chosen = set(probe) | set(hv.stratified_sample(
                rest, max(0, first.designs[0] - len(probe)), self.plan.sampler_seed,
                stratum=lambda d: ss.parse(d).L))
            designs = [d for d in self.kept if d in chosen]
            how = (f"{len(designs)} of {len(self.kept)}: the probe and a sample stratified "
                   f"by L (sampler seed {self.plan.sampler_seed}); all would not fit the time")
        else:
            designs, how = list(self.kept), "every design that fits memory"
        self.planned = list(first.rungs)
        self.rungs = [Rung(first.rungs[0], self.ladder[first.rungs[0]], designs, how)]
        counts = (len(designs), *first.designs[1:])  # the probe's designs stay in rung 0
        self.err.write("plan: " + ", ".join(
            f"{_designs(n)} at rung {r} ({_rung_words(self.ladder[r])})"
            for r, n in zip(first.rungs, counts, strict=True))
            + f"; predicted {fmt_seconds(first.predicted_s)} of {fmt_seconds(self.left())} "
            "left\n")
        return False

    def run(self, rung: Rung) -> bool:
        """Run ``rung`` within the time left, then refit; True if interrupted."""
        from studies.sweep import SweepConfig, run_sweep

        seconds = self.left()
        if seconds <= 0 or len(_rung_records(self.store, rung, self.plan)) == len(
                rung.designs) * self.seeds:  # out of time, or recorded by an earlier run
            return False
        start = time.monotonic()
        rc, interrupted = _run_rung(self.request, rung, seconds, SweepConfig, run_sweep,
                                    self.err)
        records = _rung_records(self.store, rung, self.plan)
        done = [r for x in (*self.rungs, rung) for r in _rung_records(self.store, x, self.plan)]
        self.calibration, self.rung_overhead = _refit(
            self.calibration, records, time.monotonic() - start, self.workers,
            self.rung_overhead, done)
        return interrupted or rc == 130

    def next_rung(self, k: int) -> Rung | None:
        records = _rung_records(self.store, self.rungs[k], self.plan)
        return _decide_next(self.rungs, k, self.planned, self.ladder, records,
                            costs_for=self.costs, seeds=self.seeds, workers=self.workers,
                            left=self.left(), rung_overhead_s=self.rung_overhead)


def probe_designs(design_ids: list[str], seconds: list[float], n: int) -> list[str]:
    """``n`` designs at evenly spaced quantiles of their predicted ``seconds`` (in the
    input order): the first trials, whose times refit the cost model before the rest.

    Example:
        >>> probe_designs(["a", "b", "c", "d", "e", "f"], [6, 1, 5, 2, 4, 3], 2)
        ['c', 'd']
    """
    if n >= len(design_ids):
        return list(design_ids)
    order = sorted(range(len(design_ids)), key=lambda i: (seconds[i], i))
    picks = {order[min(len(order) - 1, int((j + 0.5) * len(order) / n))] for j in range(n)}
    return [d for i, d in enumerate(design_ids) if i in picks]


# --- the ladder, memory, calibration -------------------------------------------------------


def ladder_fidelities(base: Fidelity, dataset: str) -> list[Fidelity]:
    """The fidelities of :func:`studies.halving.rung_configs` below ``base`` (most
    expensive first), named by ``with_changes``."""
    configs = hv.rung_configs(base.to_dict(), dataset_train=DATASET_SIZES[dataset][0])
    if not configs:
        raise ValueError(f"--fidelity {base.name} trains fewer than {hv.MIN_TRAIN_IMAGES} "
                         "images: no rung below it for --time-budget")
    return [with_changes(base, **c["changes"]) for c in configs]


def ladder_markdown(base: Fidelity, dataset: str) -> str:
    """The ladder below ``base`` as the markdown table docs/studies.md shows."""
    lines = ["| rung | trains | validation images | test images | fidelity (record key) |",
             "| --- | --- | --- | --- | --- |"]
    configs = hv.rung_configs(base.to_dict(), dataset_train=DATASET_SIZES[dataset][0])
    for i, (c, f) in enumerate(zip(configs, ladder_fidelities(base, dataset), strict=True)):
        lines.append(f"| {i} | {_rung_words(f)} | {c['val_images']:,} | "
                     f"{c['test_images']:,} | `{f.name}` |")
    return "\n".join(lines)


def trial_memory_limit(workers: int) -> float:
    """Bytes one trial may use: ``$IGCBENCH_TRIAL_MEMORY_GB``, else 80% of the memory
    available now, shared by the trials that run at once."""
    text = os.environ.get(MEMORY_ENV)
    if text:
        try:
            value = float(text)
            if value > 0:
                return value * 2**30
        except ValueError:
            pass
        raise ValueError(f"${MEMORY_ENV}={text!r}: expected a number of GB > 0")
    import psutil

    return 0.8 * psutil.virtual_memory().available / max(workers, 1)


def screen_memory(design_ids: tuple[str, ...] | list[str], fidelity: Fidelity,
                  dataset: str, num_classes: int,
                  limit: float) -> tuple[list[str], dict[str, float]]:
    """(designs whose predicted peak memory at ``fidelity`` fits ``limit``, {skipped
    design: predicted bytes}). Memory does not depend on a rung's image counts."""
    kept, skipped = [], {}
    for d in design_ids:
        need = trial_memory_bytes(d, fidelity.to_dict(), dataset, num_classes=num_classes)
        if need <= limit:
            kept.append(d)
        else:
            skipped[d] = need
    return kept, skipped


def _calibration(request: Any, fidelity: Fidelity, store: RecordStore,
                 ladder: list[Fidelity]) -> Any:
    """This machine's calibration at the rungs' shape, refitted to records of the ladder
    already in the run directory (an earlier run of the same command)."""
    from evaluators.calibrate import get_calibration

    device = "cuda" if request.gpus_per_trial > 0 else "cpu"
    cal = get_calibration(fidelity, device=device,
                          threads=max(1, math.floor(request.cpus_per_trial)))
    names = {f.name for f in ladder}
    return refit_calibration(cal, [r for r in store.records() if r.get("fidelity") in names])


def _workers(resources: dict[str, float], cpus: float, gpus: float) -> int:
    """Trials Tune can run at once on the cluster."""
    n = math.floor(resources.get("CPU", 1) / cpus) if cpus > 0 else 1
    if gpus > 0:
        n = min(n, math.floor(resources.get("GPU", 0) / gpus))
    return max(1, n)


# --- planning ------------------------------------------------------------------------------


def _plan(kept: list[str], costs: dict[str, list[float]], seeds: int, workers: int,
          seconds: float, rung_overhead_s: float) -> hv.LadderPlan | None:
    depth = len(next(iter(costs.values())))
    mean = [sum(costs[d][i] for d in kept) / len(kept) for i in range(depth)]

    def first_rung(index: int, n: int) -> float:
        if n >= len(kept):  # the actual designs, in plan order
            return hv.queue_makespan([costs[d][index] for d in kept for _ in range(seeds)],
                                     workers)
        return hv.makespan(n * seeds, mean[index], workers)

    return hv.plan_ladder(n_designs=len(kept), seeds=seeds, workers=workers,
                          seconds=seconds, rung_seconds=mean, first_rung=first_rung,
                          rung_overhead_s=rung_overhead_s)


def _decide_next(rungs: list[Rung], k: int, planned: list[int], ladder: list[Fidelity],
                 records: list[dict[str, Any]], *, costs_for: Any, seeds: int, workers: int,
                 left: float, rung_overhead_s: float = 0.0) -> Rung | None:
    """The rung after ``rungs[k]`` with its designs (the best of rung k that fit the time
    left, the planned rungs after it included), or None: the ladder's top, or nothing
    fits."""
    if k + 1 < len(rungs):  # decided by an earlier run of the same command
        return None
    current = rungs[k].ladder
    # The plan's rungs above this one; past the plan's top, the next rung of the ladder
    # when the time left allows (the machine ran faster than predicted).
    later = [r for r in planned if r < current] or ([current - 1] if current > 0 else [])
    if not later:
        return None
    ranked = hv.rank_designs(records)
    if not ranked:
        return None
    nxt = later[0]
    trial_s = _mean(costs_for(ladder[nxt]))
    after = [_mean(costs_for(ladder[r])) for r in later[1:]]
    planned_n = math.ceil(len(rungs[k].designs) / hv.ETA)
    n = 0
    for drop in range(len(after) + 1):  # drop planned rungs from the top, not the next one
        n = hv.next_rung_designs(candidates=len(ranked), planned=planned_n, seeds=seeds,
                                 workers=workers, seconds=left, trial_s=trial_s,
                                 later=after[:len(after) - drop],
                                 rung_overhead_s=rung_overhead_s)
        if n:
            break
    if n == 0:
        return None
    chosen = [d for d, _, _ in ranked[:n]]
    return Rung(nxt, ladder[nxt], chosen,
                f"the best {n} of rung {current}'s {len(ranked)} by validation accuracy")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _refit(calibration: Any, records: list[dict[str, Any]], took: float, workers: int,
           rung_overhead: float, all_records: list[dict[str, Any]]) -> tuple[Any, float]:
    """The calibration refitted to every record of the ladder so far
    (:func:`refit_calibration`), and the rung overhead this rung showed: its wall time less
    its trials queued on the workers (their records' wall_s plus ``TRIAL_OVERHEAD_S``), if
    it ran any."""
    calibration = refit_calibration(calibration, all_records)
    walls = [float(r["wall_s"]) + TRIAL_OVERHEAD_S for r in records if r.get("wall_s")]
    if walls:
        rung_overhead = min(max(took - hv.queue_makespan(walls, workers), 0.0), 120.0)
    return calibration, rung_overhead


def refit_calibration(calibration: Any, records: list[dict[str, Any]]) -> Any:
    """``calibration`` with its per-trial overhead and compute scale fitted to ok records:
    wall_s ~ overhead + scale x compute seconds, both >= 0, each record weighted by its own
    time (relative errors, as ``evaluators.calibrate`` fits). The cost model's own
    ``refit`` keeps the overhead at 5 s (CIFAR trials here) and fits the scale alone, which
    misjudges trials of a few seconds (synthetic data, another machine); it is used when
    the records do not pin two parameters (computes within 1.5x). Fewer than 3 records:
    the calibration unchanged.

    Example:
        >>> from evaluators.cost_model import Calibration, compute_seconds
        >>> cal = Calibration(machine="m", torch_version="t", device="cpu", threads=1,
        ...                   paths=("fused", "fused"), resolution=8, batch_size=64,
        ...                   train=(0.0, 1e-10, 1e-4), eval=(0.0, 1e-11, 1e-5))
        >>> cfg = {"train_size": 1000, "epochs": 1, "resolution": 8, "latency_reps": 0}
        >>> recs = [{"design_id": d, "fidelity_config": cfg, "dataset": "synthetic",
        ...          "status": "ok", "num_classes": 10,
        ...          "wall_s": 2.0 + 3.0 * compute_seconds(d, cfg, "synthetic", cal)}
        ...         for d in ("plain8-c16-k1.4.4", "plain8-c64-k1.64", "plain8-c144-k1.12.12")]
        >>> fitted = refit_calibration(cal, recs)
        >>> round(fitted.overhead_s, 3), round(fitted.scale, 3), fitted.scale_records
        (2.0, 3.0, 3)
    """
    import numpy as np
    from scipy.optimize import nnls

    from evaluators.cost_model import compute_seconds

    pairs = []
    for r in records:
        if r.get("status") == "ok" and r.get("wall_s") and r.get("fidelity_config"):
            c = compute_seconds(r["design_id"], r["fidelity_config"], r["dataset"],
                                calibration, num_classes=r.get("num_classes"))
            pairs.append((c, float(r["wall_s"])))
    computes = [c for c, _ in pairs]
    if len(pairs) < 3:  # one trial's warm-up (a fresh worker's first) would set the level
        return calibration
    if min(computes) <= 0 or max(computes) < 1.5 * min(computes):
        return refit(calibration, records)
    x = np.array([[1.0, c] for c, _ in pairs])
    y = np.array([w for _, w in pairs])
    (overhead, scale), _ = nnls(x / y[:, None], np.ones_like(y))
    if not scale > 0:
        return refit(calibration, records)
    return dataclasses.replace(calibration, overhead_s=float(overhead), scale=float(scale),
                               scale_records=len(pairs))


# --- running a rung ------------------------------------------------------------------------


def _run_rung(request: Any, rung: Rung, seconds: float, config_cls: Any, run_sweep: Any,
              err: TextIO) -> tuple[int, bool]:
    """Run one rung as a Tune sweep stopped after ``seconds``: (exit status, interrupted:
    the sweep said so with status 130)."""
    # One Optuna study per (rung, design list): a study's parameter is a categorical over
    # its plan's designs, which Optuna does not let change (the probe and rung 0 differ).
    digest = hashlib.sha1("|".join(rung.designs).encode()).hexdigest()[:8]
    plan = Plan(name=f"{request.plan.name}-rung{rung.ladder}-{digest}",
                design_ids=tuple(rung.designs), seeds=request.plan.seeds,
                fidelity=rung.fidelity.name, dataset=request.plan.dataset)
    err.write(f"rung {rung.ladder} ({_rung_words(rung.fidelity)}): "
              f"{_designs(len(rung.designs))}, {rung.decided}; at most {fmt_seconds(seconds)}\n")
    cfg = config_cls(
        plan=plan, fidelity=rung.fidelity, run_dir=request.run_dir,
        storage_url=request.storage_url, num_classes=request.num_classes,
        input_size=DATASET_SIZES[request.plan.dataset][2], data_dir=request.data_dir,
        scheduler="fifo", cpus_per_trial=request.cpus_per_trial,
        gpus_per_trial=request.gpus_per_trial, address=request.address,
        time_budget_s=seconds)
    _fail_leftovers(request.storage_url, plan.name)
    _INTERRUPT.in_rung = True
    try:
        rc = run_sweep(cfg, out=err, err=err)
    finally:
        _INTERRUPT.in_rung = False
    return rc, rc == 130 or _INTERRUPT.requested


def _fail_leftovers(storage_url: str, study_name: str) -> None:
    """FAIL the RUNNING trials an interrupted run of this rung left in its study.

    One driver runs a time-budgeted sweep, so a RUNNING trial at a rung's start is a
    leftover; left alone, the searcher waits for it (30 s until its heartbeat is stale,
    forever if it never had one), and while Tune waits on the searcher it does not check
    its time budget.
    """
    import optuna

    from studies import study as st

    storage = st.open_storage(storage_url)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no study yet: the rung never ran
        return
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        try:
            storage.set_trial_user_attr(t._trial_id, "error",
                                        "left RUNNING by an interrupted run")
            storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass


# --- records and the answer ----------------------------------------------------------------


def _rung_records(store: RecordStore, rung: Rung, plan: Plan) -> list[dict[str, Any]]:
    out = []
    for d in rung.designs:
        for s in plan.seeds:
            rec = store.read(trial_key(d, rung.fidelity.name, plan.dataset, s))
            if rec is not None:
                out.append(rec)
    return out


def _all_records(store: RecordStore, rungs: list[Rung], plan: Plan) -> list[dict[str, Any]]:
    return [r for rung in rungs for r in _rung_records(store, rung, plan)]


def summarise(rungs: list[Rung], store: RecordStore, plan: Plan,
              skipped: dict[str, float]) -> dict[str, Any]:
    """What the sweep found: per rung the designs planned, trained (ok, failed, missing),
    its rank agreement with the rung below; the best design of the highest rung with an ok
    record, its test accuracy and interval; the runners-up."""
    from scipy import stats

    per_rung, below = [], None
    best = None
    for rung in rungs:
        records = _rung_records(store, rung, plan)
        ranked = hv.rank_designs(records)
        row: dict[str, Any] = {
            "ladder": rung.ladder, "fidelity": rung.fidelity.name,
            "words": _rung_words(rung.fidelity), "decided": rung.decided,
            "designs": len(rung.designs), "trials": len(rung.designs) * len(plan.seeds),
            "ok": sum(r.get("status") == "ok" for r in records),
            "failed": sum(r.get("status") != "ok" for r in records),
            "wall_s": sum(float(r.get("wall_s") or 0) for r in records),
        }
        row["missing"] = row["trials"] - row["ok"] - row["failed"]
        if below is not None:
            common = [d for d, _, _ in ranked if d in below]
            if len(common) >= 3:
                rho = stats.spearmanr([below[d] for d in common],
                                      [dict((d, v) for d, v, _ in ranked)[d] for d in common])
                row["spearman_vs_below"] = {"n": len(common), "rho": float(rho.statistic)}
        below = {d: v for d, v, _ in ranked}
        per_rung.append(row)
        if ranked:
            best = (rung, records, ranked)
    answer: dict[str, Any] = {"rungs": per_rung, "skipped_memory": skipped,
                              "candidates": len(plan.design_ids)}
    if best is not None:
        rung, records, ranked = best
        answer["best"] = _entry(ranked[0], rung, records, stats)
        answer["runners_up"] = [_entry(r, rung, records, stats) for r in ranked[1:3]]
    return answer


def _entry(ranked: tuple[str, float, int], rung: Rung, records: list[dict[str, Any]],
           stats: Any) -> dict[str, Any]:
    """A design's val and test accuracy at a rung, with the test's binomial interval."""
    design, val, seeds = ranked
    oks = [r for r in records if r["design_id"] == design and r.get("status") == "ok"]
    n_test = int(rung.fidelity.test_size or DATASET_SIZES[oks[0]["dataset"]][1])
    tests = [float(r["test_acc"]) for r in oks if r.get("test_acc") is not None]
    entry: dict[str, Any] = {"design_id": design, "rung": rung.ladder,
                             "fidelity": rung.fidelity.name, "val_acc": val, "seeds": seeds,
                             "val_images": _val_images(rung.fidelity, oks[0]["dataset"]),
                             "params": oks[0].get("params")}
    if tests:
        # Seeds share the test images: the interval is of the test sample (Clopper-Pearson
        # on the pooled counts), not of seed-to-seed spread.
        k = sum(round(t * n_test) for t in tests)
        ci = stats.binomtest(k, n_test * len(tests)).proportion_ci(CONFIDENCE, "exact")
        entry.update(test_acc=sum(tests) / len(tests), test_images=n_test,
                     test_ci=[float(ci.low), float(ci.high)])
    return entry


def _val_images(fidelity: Fidelity, dataset: str) -> int:
    drawn = min(fidelity.train_size or DATASET_SIZES[dataset][0], DATASET_SIZES[dataset][0])
    return max(1, round(fidelity.val_fraction * drawn))


def _designs(n: int) -> str:
    return f"{n} design" + ("" if n == 1 else "s")


def _rung_words(f: Fidelity) -> str:
    """``900 images x 1 epoch at 8x8``."""
    val = max(1, round(f.val_fraction * (f.train_size or 0)))
    train = (f.train_size or 0) - val
    return (f"{train:,} images x {f.epochs} epoch{'s' if f.epochs > 1 else ''} at "
            f"{f.resolution}x{f.resolution}")


def write_report(answer: dict[str, Any], out: TextIO) -> None:
    """The summary: designs per rung, the best design with its interval."""
    skipped = answer.get("skipped_memory") or {}
    out.write(f"time budget {hv.fmt_duration(answer['time_budget_s'])}, used "
              f"{fmt_seconds(answer['seconds'])}: {answer['candidates']} candidate designs"
              + (f", {len(skipped)} skipped for memory ("
                 + ", ".join(f"{d} {b / 2**30:.1f} GB" for d, b in skipped.items()) + ")"
                 if skipped else "") + "\n")
    for r in answer["rungs"]:
        agree = r.get("spearman_vs_below")
        out.write(f"  rung {r['ladder']} ({r['words']}): {_designs(r['designs'])} "
                  f"({r['decided']})"
                  f": {r['ok']} ok, {r['failed']} failed, {r['missing']} not finished"
                  + (f"; rank agreement with the rung below: Spearman {agree['rho']:.2f} over "
                     f"{agree['n']} designs" if agree else "") + "\n")
    best = answer.get("best")
    if best is None:
        out.write("no design finished a rung: no answer\n")
        return
    out.write(f"best: {_entry_line(best)}\n")
    for r in answer.get("runners_up", []):
        out.write(f"  then: {_entry_line(r)}\n")
    out.write(f"  (chosen by validation accuracy on {best['val_images']:,} images; the test "
              f"accuracy, not used to choose, with its {CONFIDENCE:.0%} Clopper-Pearson "
              "interval over the test images)\n")


def _entry_line(e: dict[str, Any]) -> str:
    test = ""
    if "test_acc" in e:
        lo, hi = e["test_ci"]
        test = (f", test {e['test_acc']:.3f} [{lo:.3f}, {hi:.3f}] on {e['test_images']:,} "
                "images")
    seeds = f", {e['seeds']} seeds" if e["seeds"] > 1 else ""
    return f"{e['design_id']} at rung {e['rung']}: val {e['val_acc']:.3f}{test}{seeds}"


# --- state ---------------------------------------------------------------------------------


def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _rung_from(data: dict[str, Any], ladder: list[Fidelity]) -> Rung:
    return Rung(int(data["ladder"]), ladder[int(data["ladder"])], list(data["designs"]),
                str(data["decided"]))


def _write_state(path: Path, ladder: list[Fidelity], planned: list[int], rungs: list[Rung],
                 skipped: dict[str, float], limit: float,
                 answer: dict[str, Any] | None) -> None:
    write_json_atomic(path, {
        "ladder": [{"fidelity": f.name, "fidelity_config": f.to_dict()} for f in ladder],
        "planned": planned, "rungs": [r.to_dict() for r in rungs], "skipped_memory": skipped,
        "memory_limit_bytes": limit, "answer": answer, "updated": utc_now()})
