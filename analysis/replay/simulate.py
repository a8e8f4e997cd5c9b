"""Replay the project's searches against a table instead of training, in simulated time.

As Syne Tune's table-based blackbox simulation: N workers, an event-driven clock. A worker that
starts a design pays, epoch by epoch, the ``seconds`` its record's curve recorded; a heap holds
each running trial's next epoch-finish time. When a trial finishes (or is stopped), its worker
asks the search for the next design at that moment. Nothing trains; a replay of a 100-design
table takes milliseconds (FIFO) to a second (TPE).

What is replayed (as studies/search.py and studies/recorder.py run it):

- Searches: ``grid``, ``random``, ``tpe``, ``nsga2`` (:mod:`analysis.replay.proposers`).
- Schedulers: ``fifo`` (every trial to the last epoch) or ``asha``
  (:class:`analysis.replay.asha.AshaRule`).
- Seeds: the table has several seeds per design; a search trains each design once. With
  ``seed_mode="draw"`` (default) a replay draws, from its seed, one recorded seed per design
  (before the search starts, so every strategy of a repeat sees the same draws) and replays
  that seed's curve; ``"mean"`` replays the per-epoch mean over the seeds.
- What counts: the table's best design is the one with the highest mean (over seeds) final
  curve val_acc. It is *reached* when its trial completes its last epoch; time_to_best is the
  simulated time then, epochs_to_best the epochs all workers completed by then. The incumbent
  is the completed trial with the best val_acc the search saw (its drawn seed); its regret is
  the table's best mean val_acc minus the incumbent's mean val_acc (before the first completed
  trial: best minus worst, the largest regret there is).

Example:
    >>> from analysis.table.benchmark import Benchmark
    >>> from analysis.replay.table import ReplayTable
    >>> table = ReplayTable.from_benchmark(
    ...     Benchmark.load(Path(__file__).parents[2] / "releases" / "igcbench-1.0.json"))
    >>> r = replay(table, "tpe", scheduler="asha", workers=4, seed=0)
    >>> r.best_design, round(r.time_to_best), r.epochs_to_best, r.total_epochs
    ('plain8-c76-k1.2', 173, 54, 75)

Many replays (:func:`replay_many`) are summarised and drawn by :mod:`analysis.replay.report`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path  # noqa: F401 (the example names it)
from typing import Any

import numpy as np

from analysis.replay.asha import AshaRule
from analysis.replay.proposers import make_proposer
from analysis.replay.table import ReplayTable
from analysis.table.benchmark import Benchmark
from studies.searches import SEARCHES, SWEEP_SEARCHES

SCHEDULERS = ("fifo", "asha")
SEED_MODES = ("draw", "mean")


@dataclass(frozen=True)
class TrialLog:
    """One trial of a replay: which design (and drawn seed), where, when, how far."""

    design_id: str
    seed: int | None  # the recorded seed replayed; None with seed_mode="mean"
    worker: int
    start: float
    end: float
    epochs: int
    stopped: bool  # by ASHA, before the last epoch
    val_acc: float  # the last value the trial reported


@dataclass(frozen=True)
class ReplayResult:
    """One replay. ``trace`` holds (time, epochs, regret) at the start and after each
    completed trial; regret is a step function of time (and of epochs) between points."""

    strategy: str
    scheduler: str
    workers: int
    seed: int
    seed_mode: str
    best_design: str
    time_to_best: float | None  # None: the best design never completed (ASHA stopped it)
    epochs_to_best: int | None
    total_time: float
    total_epochs: int
    final_regret: float
    trials: tuple[TrialLog, ...]
    trace: tuple[tuple[float, int, float], ...]

    @property
    def reached(self) -> bool:
        return self.time_to_best is not None

    def epochs_to_regret(self, delta: float) -> int | None:
        """Epochs all workers completed when the incumbent first came within ``delta`` of the
        table's best mean val_acc (a design about as good as the best); None: never."""
        return next((epochs for _, epochs, regret in self.trace if regret <= delta), None)


def replay(
    table: ReplayTable | Benchmark,
    strategy: str,
    *,
    scheduler: str = "fifo",
    workers: int = 1,
    seed: int = 0,
    seed_mode: str = "draw",
    reduction_factor: float = 3,
    grace_period: int = 1,
    max_trials: int | None = None,
    proxy: str = "synflow",
) -> ReplayResult:
    """Run one search against the table in simulated time (see the module docstring). The
    result's ``strategy`` names the proxy of a zc-* search: ``zc-order:synflow``.

    Args:
        table: a ReplayTable, or a Benchmark with a single fidelity and dataset.
        strategy: a key of studies.searches.SEARCHES (the zc-* ones need the table's
            scores: ReplayTable.with_scores).
        scheduler: fifo, or asha (rungs from ``grace_period`` epochs, ``reduction_factor``).
        workers: trials running at once.
        seed: seeds the sampler, the random order and the per-design seed draw.
        seed_mode: "draw" one recorded seed per design, or "mean" curves.
        max_trials: start at most this many trials; None: every design once.
        proxy: the zero-cost score of the zc-* strategies (a key of ``table.scores``).
    """
    table = table if isinstance(table, ReplayTable) else ReplayTable.from_benchmark(table)
    check_choice(strategy, tuple(SEARCHES), "strategy")
    check_choice(scheduler, SCHEDULERS, "scheduler")
    check_choice(seed_mode, SEED_MODES, "seed_mode")
    if workers < 1:
        raise ValueError(f"workers {workers}: need at least 1")
    rule = (
        AshaRule(table.epochs, grace_period=grace_period, reduction_factor=reduction_factor)
        if scheduler == "asha"
        else None
    )
    curves = _curves(table, seed, seed_mode)
    with make_proposer(table, strategy, seed, proxy=proxy) as proposer:
        trials, trace, reach, clock = _simulate(table, curves, proposer, workers, rule, max_trials)
    label = f"{strategy}:{proxy}" if SEARCHES[strategy].needs_scores else strategy
    return ReplayResult(
        strategy=label, scheduler=scheduler, workers=workers, seed=seed, seed_mode=seed_mode,
        best_design=table.design_ids[table.best],
        time_to_best=reach[0] if reach else None, epochs_to_best=reach[1] if reach else None,
        total_time=clock,
        total_epochs=sum(t.epochs for t in trials), final_regret=trace[-1][2],
        trials=tuple(trials), trace=tuple(trace),
    )  # fmt: skip


def replay_many(
    table: ReplayTable | Benchmark,
    *,
    strategies: Sequence[str] = SWEEP_SEARCHES,
    schedulers: Sequence[str] = SCHEDULERS,
    workers: Sequence[int] = (1, 4),
    repeats: int = 10,
    first_seed: int = 0,
    **kw: Any,
) -> list[ReplayResult]:
    """Every (strategy, scheduler, workers) replayed with seeds first_seed .. + repeats - 1."""
    table = table if isinstance(table, ReplayTable) else ReplayTable.from_benchmark(table)
    return [
        replay(table, st, scheduler=sc, workers=n, seed=first_seed + r, **kw)
        for st in strategies
        for sc in schedulers
        for n in workers
        for r in range(repeats)
    ]





@dataclass
class _Running:
    number: int
    design: int
    handle: Any
    worker: int
    start: float
    epochs: int = 0


def _simulate(
    table: ReplayTable,
    curves: tuple[np.ndarray, np.ndarray, list[int | None]],
    proposer: Any,
    workers: int,
    rule: AshaRule | None,
    max_trials: int | None,
) -> tuple[list[TrialLog], list[tuple[float, int, float]], tuple[float, int] | None, float]:
    """Run the event loop; return the trials, the regret trace, (time, epochs) at which the
    best design completed (or None) and the time the last trial ended."""
    val, sec, drawn = curves
    spread = float(table.mean_val.max() - table.mean_val.min())
    trace: list[tuple[float, int, float]] = [(0.0, 0, spread)]
    heap: list[tuple[float, int, _Running]] = []
    order = itertools.count()  # ties in time go in the order the events were made
    trials: list[TrialLog] = []
    started, done_epochs, incumbent, reach, t = 0, 0, (-np.inf, -1), None, 0.0

    def start(t: float, worker: int) -> None:
        nonlocal started
        if max_trials is not None and started >= max_trials:
            return
        design, handle = proposer.propose()
        if design is None:
            return
        tr = _Running(started, design, handle, worker, t)
        started += 1
        heapq.heappush(heap, (t + sec[design][0], next(order), tr))

    for w in range(workers):
        start(0.0, w)
    while heap:
        t, _, tr = heapq.heappop(heap)
        tr.epochs += 1
        done_epochs += 1
        v = float(val[tr.design][tr.epochs - 1])
        complete = tr.epochs == table.epochs
        if not complete and (rule is None or rule.on_epoch(tr.number, tr.epochs, v)):
            heapq.heappush(heap, (t + sec[tr.design][tr.epochs], next(order), tr))
            continue
        proposer.tell(tr.handle, tr.design, v, stopped=not complete, epochs=tr.epochs)
        trials.append(TrialLog(table.design_ids[tr.design], drawn[tr.design], tr.worker,
                               tr.start, t, tr.epochs, not complete, v))
        if complete:
            if v > incumbent[0]:
                incumbent = (v, tr.design)
            regret = float(table.mean_val[table.best] - table.mean_val[incumbent[1]])
            trace.append((t, done_epochs, regret))
            if tr.design == table.best and reach is None:
                reach = (t, done_epochs)
        start(t, tr.worker)
    return trials, trace, reach, t


def _curves(
    table: ReplayTable, seed: int, mode: str
) -> tuple[list[np.ndarray], list[np.ndarray], list[int | None]]:
    """Per design, the val_acc and seconds curve replayed, and the seed it came from."""
    if mode == "mean":
        return (
            [v.mean(axis=0) for v in table.val],
            [s.mean(axis=0) for s in table.seconds],
            [None] * len(table.design_ids),
        )
    rng = np.random.default_rng(seed)
    rows = [int(rng.integers(len(s))) for s in table.seeds]
    return (
        [v[i] for v, i in zip(table.val, rows, strict=True)],
        [s[i] for s, i in zip(table.seconds, rows, strict=True)],
        [s[i] for s, i in zip(table.seeds, rows, strict=True)],
    )



def check_choice(value: str, accepted: Sequence[str], what: str) -> None:
    """Raise ValueError naming ``value`` and the accepted ones unless it is one of them."""
    if value not in accepted:
        raise ValueError(f"unknown {what} {value!r}; accepted: {', '.join(accepted)}")
