"""The time-budgeted sweep's working state (:class:`Driver`): the designs, the cost model
as refitted after each rung, the rungs decided, and how to plan, probe, extend and run one.

``studies.time_budget`` drives it rung by rung; the designs it did not train it asks of a
:class:`studies.budget_report.SpaceModel` that the command line hands in.
"""

from __future__ import annotations

import time
import zlib
from typing import Any, TextIO

import numpy as np

import search_space as ss
from evaluators.catalog import DATASETS
from evaluators.fidelity import Fidelity
from studies import estimate as est
from studies import halving as hv
from studies.budget_plan import (
    MAX_TRIAL_SHARE,
    RUNG_OVERHEAD_S,
    SETUP_RESERVE_S,
    TRIAL_OVERHEAD_S,
    calibration_for,
    plan_rungs,
    trial_seconds,
)
from studies.budget_report import SpaceModel
from studies.plan import Plan
from studies.rungs import (
    Rung,
    all_records,
    decide_next,
    fail_leftovers,
    n_designs,
    refit_calibration,
    rung_records,
    rung_words,
)
from studies.store import RecordStore

INTERRUPTED = (130, 143)  # a rung's sweep ended by Ctrl-C or SIGTERM: the driver stops too
PICK_REACH = 2.0  # the surrogate picks designs predicted within 2x the probe's longest trial


class Driver:
    """The sweep's working state: the designs, the calibration as refitted so far, the
    rungs decided, and how to run one."""

    def __init__(self, request: Any, store: RecordStore, ladder: list[Fidelity],
                 kept: list[str], workers: int, deadline: float, err: TextIO,
                 space: SpaceModel) -> None:
        self.request, self.store, self.ladder, self.kept = request, store, ladder, kept
        self.workers, self.deadline, self.err, self.space = workers, deadline, err, space
        self.plan, self.seeds = request.plan, len(request.plan.seeds)
        self.calibration = calibration_for(request, ladder[-1], store, ladder, err)
        self.rung_overhead = RUNG_OVERHEAD_S
        self.cap = MAX_TRIAL_SHARE * request.time_budget_s  # the longest trial it runs
        self.rungs: list[Rung] = []
        self.planned: list[int] = []
        self.probe: list[Rung] = []  # the first rung's first trials, before it is decided
        self.exit_status = 0  # 130 or 143 once a rung was ended by Ctrl-C or SIGTERM

    def left(self) -> float:
        return self.deadline - time.monotonic() - SETUP_RESERVE_S

    def costs(self, fidelity: Fidelity, designs: list[str] | None = None) -> list[float]:
        """Predicted seconds of a trial of each design (all candidates by default)."""
        return trial_seconds(self.kept if designs is None else designs, fidelity,
                             self.plan.dataset, self.calibration, self.request.num_classes)

    def trainable(self) -> list[str]:
        """The designs whose trial at the cheapest rung is predicted within ``cap``."""
        return [d for d, c in zip(self.kept, self.costs(self.ladder[-1]), strict=True)
                if c <= self.cap]

    def too_long(self) -> list[str]:
        """The designs over ``cap`` by the cost model as refitted now, no rung gave them."""
        given = {d for r in (*self.probe, *self.rungs) for d in r.designs}
        fit = set(self.trainable())
        return [d for d in self.kept if d not in fit and d not in given]

    def ladder_plan(self) -> hv.LadderPlan | None:
        kept = self.trainable()
        if not kept:
            return None
        costs = {d: c for d, c in zip(kept, zip(*(self.costs(f, kept) for f in self.ladder),
                                                strict=True), strict=True)}
        return plan_rungs(kept, costs, self.seeds, self.workers, self.left(),
                          self.rung_overhead)

    def start(self) -> bool:
        """Plan; run a probe of the first (cheapest) rung (2 trials a worker, spread over the
        predicted costs of the designs within ``cap``) and plan again from its times; decide
        the first rung. True if interrupted."""
        first = self.ladder_plan()
        if first is None:
            return False
        kept = self.trainable()
        probe = hv.cheap_probe(kept, self.costs(self.ladder[first.rungs[0]], kept),
                               2 * self.workers)
        if len(probe) < len(kept):
            rung = Rung(first.rungs[0], self.ladder[first.rungs[0]], probe,
                        f"a probe of {len(probe)} designs spread over the predicted times")
            self.probe = [rung]
            if self.run(rung):
                return True
            first = self.ladder_plan()
            if first is None:
                return False
            kept = self.trainable()  # the refitted cost model may move the cap's line
        if first.sampled:
            rest = [d for d in kept if d not in probe]
            extra = max(0, first.designs[0] - len(probe))
            predicted = self.pick(rest, extra // 2)
            chosen = set(probe) | set(predicted) | set(hv.stratified_sample(
                [d for d in rest if d not in predicted], extra - len(predicted),
                self.plan.sampler_seed, stratum=lambda d: ss.parse(d).L))
            designs = [d for d in self.kept if d in chosen]
            how = (f"{len(designs)} of {len(self.kept)}: the probe"
                   + (f", {len(predicted)} by the surrogate (best predicted, most uncertain)"
                      if predicted else "")
                   + f" and a sample stratified by L (sampler seed {self.plan.sampler_seed})"
                   + "; all would not fit the time"
                   + (f"; {len(self.kept) - len(kept)} predicted over "
                      f"{est.fmt_seconds(self.cap)} a trial" if len(kept) < len(self.kept)
                      else ""))
        elif len(kept) < len(self.kept):
            designs = [d for d in self.kept if d in set(kept) | set(probe)]
            how = (f"{len(designs)} of {len(self.kept)}: every design predicted within "
                   f"{est.fmt_seconds(self.cap)} a trial")
        else:
            designs, how = list(self.kept), "every design that fits memory"
        self.planned = list(first.rungs)
        self.rungs = [Rung(first.rungs[0], self.ladder[first.rungs[0]], designs, how)]
        counts = (len(designs), *first.designs[1:])  # the probe's designs stay in the first rung
        self.err.write("plan: " + ", ".join(
            f"{n_designs(n)} at rung {r} ({rung_words(self.ladder[r])})"
            for r, n in zip(first.rungs, counts, strict=True))
            + f"; predicted {est.fmt_seconds(first.predicted_s)} of "
            f"{est.fmt_seconds(self.left())} left\n")
        return False

    def extend(self) -> bool:
        """Add to the first rung the untried designs (within ``cap``) that fit the time left,
        best predicted first (the surrogate on the first rung's records; cheapest first
        without one), when the plan ended early: a promotion over the cap, or a machine
        faster than predicted (a 15-minute 0.65M run ended at 3m55s). False if none fits."""
        first = self.rungs[0]
        untried = [x for x in self.trainable() if x not in first.designs]
        if not untried:
            return False
        costs = dict(zip(untried, self.costs(first.fidelity, untried), strict=True))
        order = sorted(untried, key=lambda x: (costs[x], x))
        records = [r for r in rung_records(self.store, first, self.plan)
                   if r.get("status") == "ok" and r.get("val_acc") is not None]
        try:
            model = (self.space.fit(records, self.plan.dataset, None)[0]
                     if len(records) >= 3 else None)
        except (ValueError, KeyError, np.linalg.LinAlgError):
            model = None
        if model is not None:
            order.sort(key=lambda x: -model.query(x).val_acc)
        chosen: list[str] = []
        for x in order:  # greedily, while the rung (queued longest-first) fits the time
            trial = [costs[y] for y in sorted([*chosen, x], key=costs.get, reverse=True)]
            if hv.queue_makespan(trial * self.seeds, self.workers) + self.rung_overhead \
                    <= self.left():
                chosen.append(x)
        if not chosen:
            return False
        first.designs = [*first.designs, *chosen]
        first.decided += (f"; {len(chosen)} more with the time left"
                          + (" (best predicted first)" if model is not None else ""))
        self.err.write(f"time left after the plan: {n_designs(len(chosen))} more at rung "
                       f"{first.ladder}\n")
        return True

    def pick(self, designs: list[str], n: int) -> list[str]:
        """``n`` of ``designs`` chosen by the surrogate fitted on the probe's records
        (:attr:`SpaceModel.pick`), among those predicted within ``PICK_REACH`` times the
        probe's longest trial; none when the probe measured too few."""
        records = [r for rung in self.probe for r in rung_records(self.store, rung, self.plan)]
        if not n or not designs or not records:
            return []
        # The surrogate's most uncertain designs are the widest, where the cost model refitted
        # on the probe's cheap designs is several-fold low: a 15-minute 0.65M run under load
        # picked C=4,248 and C=4,608 (predicted 3m07s, cut unfinished at 13m) and trained
        # nothing after its probe. Picks stay where the refit measured.
        probe = self.probe[0]
        reach = PICK_REACH * max(self.costs(probe.fidelity, probe.designs))
        costs = self.costs(probe.fidelity, designs)
        designs = [d for d, c in zip(designs, costs, strict=True) if c <= reach]
        ids = sorted({*designs, *(r["design_id"] for r in records)})
        scores, _ = self.space.scores(ids, self.plan.dataset)
        try:
            return self.space.pick(designs, n, records, dataset=self.plan.dataset,
                                   scores=scores, seed=self.plan.sampler_seed) or []
        except (ValueError, KeyError, np.linalg.LinAlgError):
            return []

    def run(self, rung: Rung) -> bool:
        """Run ``rung`` within the time left, then refit; True if interrupted."""
        from studies.sweep import SweepConfig, run_sweep

        seconds = self.left()
        if seconds <= 0 or len(rung_records(self.store, rung, self.plan)) == len(
                rung.designs) * self.seeds:  # out of time, or recorded by an earlier run
            return False
        before = {(r["design_id"], r["seed"]) for r in rung_records(self.store, rung, self.plan)}
        start = time.monotonic()
        order = hv.longest_first(rung.designs, self.costs(rung.fidelity, rung.designs))
        costs = est.TrialCosts(self.calibration, rung.fidelity.to_dict(), self.plan.dataset,
                               self.request.num_classes)  # the progress lines' ETA
        rc = _run_rung(self.request, rung, order, seconds, SweepConfig, run_sweep, self.err,
                       costs=costs, budget_end=self.deadline)
        # the overhead is what this run took beyond its own trials: a rung re-run for more
        # designs holds records of its first run too, which did not take this run's time
        records = [r for r in rung_records(self.store, rung, self.plan)
                   if (r["design_id"], r["seed"]) not in before]
        # every rung so far, this one once (the probe is not among the decided rungs)
        done = all_records(self.store, [*self.rungs, *([] if rung in self.rungs else [rung])],
                           self.plan)
        self.calibration, self.rung_overhead = _refit(
            self.calibration, records, time.monotonic() - start, self.workers,
            self.rung_overhead, done)
        if rc in INTERRUPTED:
            self.exit_status = rc
        return rc in INTERRUPTED

    def next_rung(self, k: int) -> Rung | None:
        records = rung_records(self.store, self.rungs[k], self.plan)
        return decide_next(self.rungs, k, self.planned, self.ladder, records,
                           costs_for=self.costs, seeds=self.seeds, workers=self.workers,
                           left=self.left(), rung_overhead_s=self.rung_overhead,
                           max_trial_s=self.cap)

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

def _run_rung(request: Any, rung: Rung, order: list[str], seconds: float, config_cls: Any,
              run_sweep: Any, err: TextIO, *, costs: Any = None,
              budget_end: float | None = None) -> int:
    """Run one rung as a Tune sweep of its designs in ``order`` (the order trials start),
    stopped after ``seconds``; its exit status (130 or 143: ended by Ctrl-C or SIGTERM,
    studies.signals)."""
    # One Optuna study per (rung, ordered design list): a study's parameter is a categorical
    # over its plan's designs, which Optuna does not let change (the probe and its rung
    # differ; a re-run may order them otherwise). Records are keyed by trial, not study.
    digest = f"{zlib.crc32('|'.join(order).encode()):08x}"
    plan = Plan(name=f"{request.plan.name}-rung{rung.ladder}-{digest}",
                design_ids=tuple(order), seeds=request.plan.seeds,
                fidelity=rung.fidelity.name, dataset=request.plan.dataset)
    err.write(f"rung {rung.ladder} ({rung_words(rung.fidelity)}): "
              f"{n_designs(len(rung.designs))}, {rung.decided}; at most "
              f"{est.fmt_seconds(seconds)}\n")
    cfg = config_cls(
        plan=plan, fidelity=rung.fidelity, run_dir=request.run_dir,
        storage_url=request.storage_url, num_classes=request.num_classes,
        input_size=DATASETS[request.plan.dataset].side, data_dir=request.data_dir,
        scheduler="fifo", cpus_per_trial=request.cpus_per_trial,
        gpus_per_trial=request.gpus_per_trial, address=request.address,
        time_budget_s=seconds, costs=costs, budget_end=budget_end)
    fail_leftovers(request.storage_url, plan.name)
    return run_sweep(cfg, out=err, err=err)
