"""The plan of a time-budgeted sweep (``studies.time_budget``) from the cost model: each
design's predicted trial seconds at each rung, the ladder plan that fits the time, and the
plan a dry run shows (``--dry-run --time-budget T``) with the least budget that trains.
No Ray; torch only through the calibration.
"""

from __future__ import annotations

import math
from typing import Any, TextIO

from evaluators.cost_model import predict_seconds
from evaluators.fidelity import Fidelity
from studies import estimate as est
from studies import halving as hv
from studies.rungs import (
    ladder_fidelities,
    refit_calibration,
    screen_memory,
    trial_memory_limit,
)
from studies.store import RecordStore

TRIAL_OVERHEAD_S = 1.0  # per trial, beyond its record's wall_s: Tune handing it to a worker
RUNG_OVERHEAD_S = 10.0  # per rung: starting the Tune run and its workers (each imports
#                         torch); measured 4-9 s on the 2-core machine, then refitted per rung
SETUP_RESERVE_S = 10.0  # the final report, Ray's shutdown
STARTUP_S = 15.0  # the dry run's allowance for what the sweep spends before it plans: the
#                   process's imports, Ray's start, the memory screen (the sweep measures it)
MAX_TRIAL_SHARE = 0.25  # no trial predicted longer than this share of the budget runs: one
#                         such trial (13 min 48 s of a 15 min budget, the probe) left
#                         the other worker idle and the sweep with no rung
MARGIN_S = 60.0  # the answer comes within the budget plus this: the running trials' stop at
#                  the deadline (Tune's time_budget_s) and Ray's shutdown


def calibration_for(request: Any, fidelity: Fidelity, store: RecordStore,
                 ladder: list[Fidelity], err: TextIO) -> Any:
    """This machine's calibration at the rungs' shape, refitted to records of the ladder
    already in the run directory (an earlier run of the same command)."""
    cal = est.calibration(fidelity, threads=max(1, math.floor(request.cpus_per_trial)),
                          gpu=request.gpus_per_trial > 0, err=err)
    names = {f.name for f in ladder}
    return refit_calibration(cal, [r for r in store.records() if r.get("fidelity") in names])


def trial_seconds(designs: list[str], fidelity: Fidelity, dataset: str, calibration: Any,
                  num_classes: int) -> list[float]:
    """Predicted wall seconds of a trial of each design at ``fidelity``, as the driver
    plans them: the cost model's, plus Tune's hand-over."""
    return [predict_seconds(d, fidelity.to_dict(), dataset, calibration,
                            num_classes=num_classes) + TRIAL_OVERHEAD_S for d in designs]


def plan_rungs(kept: list[str], costs: dict[str, list[float]], seeds: int, workers: int,
               seconds: float, rung_overhead_s: float) -> hv.LadderPlan | None:
    """``studies.halving.plan_ladder`` for these designs (``costs``: each design's
    predicted seconds at every ladder rung), the first rung queued as it runs."""
    depth = len(next(iter(costs.values())))
    mean = [sum(costs[d][i] for d in kept) / len(kept) for i in range(depth)]

    def first_rung(index: int, n: int) -> float:
        if n >= len(kept):  # the actual designs, in the order they run (seed-major)
            order = hv.longest_first(kept, [costs[d][index] for d in kept])
            return hv.queue_makespan([costs[d][index] for _ in range(seeds) for d in order],
                                     workers)
        return hv.makespan(n * seeds, mean[index], workers)

    return hv.plan_ladder(n_designs=len(kept), seeds=seeds, workers=workers,
                          seconds=seconds, rung_seconds=mean, first_rung=first_rung,
                          rung_overhead_s=rung_overhead_s)


def dry_plan(request: Any, err: TextIO) -> tuple[hv.LadderPlan | None, dict[str, Any]]:
    """The plan a time-budgeted sweep of ``request`` would start with on this machine, and
    what it rests on (``ladder``, ``workers``, ``skipped`` for memory, ``too_long``: over a
    quarter of the budget, ``seconds``: the time the plan may take, ``min_budget``: the
    smallest budget that trains anything). Starts nothing; the sweep plans again from its
    probe's times. ``STARTUP_S`` stands for the process's start and Ray's."""
    from studies.estimate import local_slots

    ladder = ladder_fidelities(request.fidelity, request.plan.dataset)
    workers = local_slots(request.cpus_per_trial, request.gpus_per_trial)
    limit = trial_memory_limit(workers)
    kept, skipped = screen_memory(request.plan.design_ids, ladder[-1], request.plan.dataset,
                                  request.num_classes, limit)
    cal = calibration_for(request, ladder[-1], RecordStore(request.run_dir), ladder, err)
    costs = {d: c for d, c in zip(kept, zip(*(trial_seconds(
        kept, f, request.plan.dataset, cal, request.num_classes) for f in ladder),
        strict=True), strict=True)}
    seeds = len(request.plan.seeds)

    def plan_for(budget: float) -> tuple[hv.LadderPlan | None, list[str]]:
        fit = [d for d in kept if costs[d][-1] <= MAX_TRIAL_SHARE * budget]
        if not fit:
            return None, fit
        return plan_rungs(fit, {d: costs[d] for d in fit}, seeds, workers,
                          budget - SETUP_RESERVE_S - STARTUP_S, RUNG_OVERHEAD_S), fit

    plan, fit = plan_for(request.time_budget_s)
    lo, hi = 1.0, 3600.0 * 24 * 365
    if kept and plan_for(hi)[0] is not None:  # the least budget with a plan: it grows so
        while hi - lo > 1.0:  # with the budget (a larger one admits every smaller plan)
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if plan_for(mid)[0] is not None else (mid, hi)
    return plan, {"ladder": ladder, "workers": workers, "skipped": skipped,
                  "too_long": [d for d in kept if d not in fit],
                  "seconds": request.time_budget_s - SETUP_RESERVE_S - STARTUP_S,
                  "min_budget": math.ceil(hi) if kept else None}
