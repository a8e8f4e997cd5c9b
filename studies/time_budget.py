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
from typing import Any, TextIO

from evaluators.record import utc_now
from studies import estimate as est
from studies.budget_driver import Driver
from studies.budget_plan import MARGIN_S
from studies.budget_report import SpaceModel, summarise, whole_space, write_report
from studies.rungs import (
    ladder_fidelities,
    read_state,
    rung_from,
    rung_words,
    screen_memory,
    trial_memory_limit,
    write_state,
)
from studies.store import RecordStore

STATE_FILE = "time_budget.json"
MAX_EXTENSIONS = 5  # times the first rung takes more designs with the time left at the end


def run_time_budget(request: Any, argv: list[str], *, space: SpaceModel,
                    out: TextIO | None = None, err: TextIO | None = None,
                    started: float | None = None) -> int:
    """Run the time-budgeted sweep of a validated ``studies.run.Request``; ``space`` predicts
    the designs it does not train (the command line hands in the analysis's surrogate).

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
        return _run(request, argv, space, out, err, t0, deadline)
    except KeyboardInterrupt:
        err.write("\ninterrupted: the same command resumes from the records\n")
        return 130
    finally:
        if own_ray:
            import ray

            ray.shutdown()

def _run(request: Any, argv: list[str], space: SpaceModel, out: TextIO, err: TextIO,
         t0: float, deadline: float) -> int:
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
    d = Driver(request, store, ladder, kept, workers, deadline, err, space)

    def save(answer: dict[str, Any] | None = None) -> None:
        write_state(state_path, ladder, d.planned, d.rungs, skipped, limit, answer)

    interrupted = _begin(d, state, head, ladder, err)
    if d.rungs:  # decided: a re-run keeps them (an interrupted probe decided nothing)
        save()
    interrupted = interrupted or _run_rungs(d, save)
    answer = summarise(d.rungs or d.probe, store, plan, skipped)
    answer.update(too_long=d.too_long(), max_trial_s=d.cap, margin_s=MARGIN_S)
    whole_space(answer, request.plan, d.ladder, d.store, err, space)
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
