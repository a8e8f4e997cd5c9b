"""``python studies/run.py --budget 0.65M --time-budget 1h``: the sweep fitted to a wall clock.

Successive halving over named rungs (``studies.halving`` plans, ``studies.rungs`` makes
the rungs and their decisions, this module runs them, ``studies.budget_report`` answers): every
design (that fits memory) is trained at the cheapest rung, the best quarter by validation
accuracy at the next, and so on; each rung is one Ray Tune run of ``studies.sweep`` (FIFO,
one record per trial, resumable by key) with a hard stop (Tune's ``time_budget_s``) at the
time left. Between rungs the cost model's scale is refitted to the records just made and
the next rung re-planned to the time left: fewer designs when the machine runs slower than
predicted, more (up to half) when faster. No trial predicted over a quarter of the budget
runs. At the end, in any budget (exit 0): how many designs were trained at which rung, the
best design with a 95% interval of its test accuracy, and every design of the space,
measured or predicted (``analysis.table.space_answer``: the surrogate over zero-cost scores).

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

import sys
import time
import zlib
from typing import Any, TextIO

import numpy as np

import search_space as ss
from evaluators.catalog import DATASETS
from evaluators.fidelity import Fidelity
from evaluators.record import utc_now
from studies import estimate as est
from studies import halving as hv
from studies.budget_plan import (  # noqa: F401 (dry_plan and the constants: public here too)
    MARGIN_S,
    MAX_TRIAL_SHARE,
    RUNG_OVERHEAD_S,
    SETUP_RESERVE_S,
    STARTUP_S,
    TRIAL_OVERHEAD_S,
    calibration_for,
    dry_plan,
    plan_rungs,
    trial_seconds,
)
from studies.budget_report import summarise, whole_space, write_report
from studies.plan import Plan
from studies.rungs import (
    Rung,
    all_records,
    decide_next,
    fail_leftovers,
    ladder_fidelities,
    n_designs,
    read_state,
    refit_calibration,
    rung_from,
    rung_records,
    rung_words,
    screen_memory,
    trial_memory_limit,
    write_state,
)
from studies.store import RecordStore

STATE_FILE = "time_budget.json"
INTERRUPTED = (130, 143)  # a rung's sweep ended by Ctrl-C or SIGTERM: the driver stops too
MAX_EXTENSIONS = 5  # times the first rung takes more designs with the time left at the end
PICK_REACH = 2.0  # the surrogate picks designs predicted within 2x the probe's longest


def run_time_budget(request: Any, argv: list[str], *, out: TextIO | None = None,
                    err: TextIO | None = None, started: float | None = None) -> int:
    """Run the time-budgeted sweep of a validated ``studies.run.Request``.

    ``started``: ``time.monotonic()`` when the command started (the budget counts from
    there; default: when this process started). Returns 0 with the best answer the records
    allow (none trained: the zero-cost scores and the surrogate alone, saying so), 1 when no
    design fits memory, 130 or 143 after Ctrl-C or SIGTERM (a rung's sweep ends on the
    first, ``studies.signals``; the report follows). ``time_budget.json`` is written in
    every case but the first. The answer comes within the budget plus ``MARGIN_S``.
    """
    from studies.sweep import init_ray

    out, err = out or sys.stdout, err or sys.stderr
    if started is None:  # the process's start: its imports and checks count too
        import psutil

        started = time.monotonic() - max(0.0, time.time() - psutil.Process().create_time())
    t0 = started
    deadline = t0 + request.time_budget_s
    own_ray = init_ray(request.address)
    try:
        return _run(request, argv, out, err, t0, deadline)
    except KeyboardInterrupt:
        err.write("\ninterrupted: the same command resumes from the records\n")
        return 130
    finally:
        if own_ray:
            import ray

            ray.shutdown()

def _run(request: Any, argv: list[str], out: TextIO, err: TextIO, t0: float,
         deadline: float) -> int:
    from studies.sweep import cluster_slots

    plan, dataset = request.plan, request.plan.dataset
    store = RecordStore(request.run_dir)
    state_path = request.run_dir / STATE_FILE
    ladder = ladder_fidelities(request.fidelity, dataset)
    state = read_state(state_path)
    if state and [r["fidelity"] for r in state["ladder"]] != [f.name for f in ladder]:
        err.write(f"{state_path}: another ladder (its base fidelity changed); starting over "
                  "with this one (records are kept by key)\n")
        state = None
    workers = cluster_slots(request.cpus_per_trial, request.gpus_per_trial)
    limit = trial_memory_limit(workers)
    kept, skipped = screen_memory(plan.design_ids, ladder[-1], dataset, request.num_classes,
                                  limit)
    head = (f"time budget {est.fmt_seconds(request.time_budget_s)}: {len(plan.design_ids)} "
            f"designs, {len(skipped)} skipped for memory (over {limit / 2**30:.1f} GB a "
            f"trial), {workers} trials at a time")
    if not kept:
        out.write(head + "; nothing left to train\n")
        return 1
    d = _Driver(request, store, ladder, kept, workers, deadline, err)

    def save(answer: dict[str, Any] | None = None) -> None:
        write_state(state_path, ladder, d.planned, d.rungs, skipped, limit, answer)

    interrupted = _begin(d, state, head, ladder, err)
    if d.rungs:  # decided: a re-run keeps them (an interrupted probe decided nothing)
        save()
    interrupted = interrupted or _run_rungs(d, save)
    answer = summarise(d.rungs or d.probe, store, plan, skipped)
    answer.update(too_long=d.too_long(), max_trial_s=d.cap, margin_s=MARGIN_S)
    whole_space(answer, request.plan, d.ladder, d.store, err)
    answer.update(seconds=time.monotonic() - t0, time_budget_s=request.time_budget_s,
                  created=utc_now())
    save(answer)
    write_report(answer, out)
    out.write(f"run directory: {request.run_dir}\n")
    return d.exit_status if interrupted else 0

def _begin(d: Any, state: dict[str, Any] | None, head: str, ladder: list[Any],
           err: TextIO) -> bool:
    """The rungs: a run directory's planned ones on a re-run, else the probe plans them.
    True when interrupted."""
    if state and state.get("rungs"):
        d.planned = [int(r) for r in state["planned"]]
        d.rungs = [rung_from(r, ladder) for r in state["rungs"]]
        err.write(f"{head}; resuming {STATE_FILE}: rungs "
                  + ", ".join(str(r.ladder) for r in d.rungs) + "\n")
        return False
    err.write(head + "\n")
    interrupted = d.start()
    if not d.rungs and not interrupted:  # answered all the same, from what there is
        err.write(f"no rung fits the time left (a trial of the cheapest, "
                  f"{rung_words(ladder[-1])}, over {est.fmt_seconds(d.cap)} or over the "
                  "time left): answering from "
                  + ("the probe's records" if d.probe else "no training") + "\n")
    return interrupted

def _run_rungs(d: Any, save: Any) -> bool:
    """Every rung in turn (each planning the next), then the time the plan left unused:
    more designs at the cheapest rung. True when interrupted."""
    interrupted, k = False, 0
    while k < len(d.rungs) and not interrupted:
        interrupted = d.run(d.rungs[k])
        if not interrupted and k + 1 == len(d.rungs) and (nxt := d.next_rung(k)):
            d.rungs.append(nxt)
            save()
        k += 1
    for _ in range(MAX_EXTENSIONS):
        if interrupted or not d.rungs or not d.extend():
            break
        save()
        interrupted = d.run(d.rungs[0])
    return interrupted

class _Driver:
    """The sweep's working state: the designs, the calibration as refitted so far, the
    rungs decided, and how to run one."""

    def __init__(self, request: Any, store: RecordStore, ladder: list[Fidelity],
                 kept: list[str], workers: int, deadline: float, err: TextIO) -> None:
        self.request, self.store, self.ladder, self.kept = request, store, ladder, kept
        self.workers, self.deadline, self.err = workers, deadline, err
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
        from analysis.table.space_answer import fit

        first = self.rungs[0]
        untried = [x for x in self.trainable() if x not in first.designs]
        if not untried:
            return False
        costs = dict(zip(untried, self.costs(first.fidelity, untried), strict=True))
        order = sorted(untried, key=lambda x: (costs[x], x))
        records = [r for r in rung_records(self.store, first, self.plan)
                   if r.get("status") == "ok" and r.get("val_acc") is not None]
        try:
            model = fit(records, self.plan.dataset, None)[0] if len(records) >= 3 else None
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
        """``n`` of ``designs`` within ``PICK_REACH`` chosen by the surrogate fitted on the
        probe's records (``analysis.table.space_answer.pick``); none if it measured too few."""
        from analysis.table.space_answer import committed_scores, pick

        records = [r for rung in self.probe for r in rung_records(self.store, rung, self.plan)]
        if not n or not designs or not records:
            return []
        # Its most uncertain are the widest, where the cost model refitted on the cheap probe
        # is several-fold low: a 15-minute 0.65M run picked C=4,248 and 4,608 (3m07s each
        # predicted, cut at 13m) and trained nothing after its probe.
        probe = self.probe[0]
        reach = PICK_REACH * max(self.costs(probe.fidelity, probe.designs))
        costs = self.costs(probe.fidelity, designs)
        designs = [d for d, c in zip(designs, costs, strict=True) if c <= reach]
        ids = sorted({*designs, *(r["design_id"] for r in records)})
        scores, _ = committed_scores(ids, self.plan.dataset)
        try:
            return pick(designs, n, records, dataset=self.plan.dataset, scores=scores,
                        seed=self.plan.sampler_seed) or []
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
