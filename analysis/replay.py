"""Replay the project's searches against a table instead of training, in simulated time.

As Syne Tune's table-based blackbox simulation: N workers, an event-driven clock. A worker that
starts a design pays, epoch by epoch, the ``seconds`` its record's curve recorded; a heap holds
each running trial's next epoch-finish time. When a trial finishes (or is stopped), its worker
asks the search for the next design at that moment. Nothing trains; a replay of a 100-design
table takes milliseconds (FIFO) to a second (TPE).

What is replayed (as studies/search.py and studies/recorder.py run it):

- Searches: ``grid`` (the table's design order), ``random`` (a permutation drawn from the seed,
  without replacement, as ``Plan.ordered_pairs`` draws it), ``tpe`` and ``nsga2`` (Optuna's
  TPESampler / NSGAIISampler through ``study.ask()``/``tell()`` over a categorical of the design
  ids, two objectives: val_acc up, params down; a proposal of a design already tried is told
  FAIL and replaced by a random untried design, as DesignSearcher._skip does). grid and random
  need no sampler: the studies enqueue these orders themselves; Optuna's GridSampler would
  visit the grid in a random order and its RandomSampler draws with replacement.
- Schedulers: ``fifo`` (every trial to the last epoch) or ``asha`` (:class:`AshaRule`).
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
    >>> from analysis.benchmark import Benchmark                           # doctest: +SKIP
    >>> from analysis import replay
    >>> table = replay.ReplayTable.from_benchmark(Benchmark.load("releases/igcbench-1.0.json"))
    >>> r = replay.replay(table, "tpe", scheduler="asha", workers=4, seed=0)
    >>> r.time_to_best, r.epochs_to_best, r.final_regret
    >>> runs = replay.replay_many(table, workers=(1, 4), repeats=10)
    >>> replay.summarize(runs); replay.plot_regret(runs, "out/")
"""

from __future__ import annotations

import heapq
import itertools
import random
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .benchmark import Benchmark

STRATEGIES = ("grid", "random", "tpe", "nsga2")
SCHEDULERS = ("fifo", "asha")
SEED_MODES = ("draw", "mean")
PARAM = "design_id"  # the one Optuna parameter, as in studies/study.py
DIRECTIONS = ("maximize", "minimize")  # (val_acc, params), as in studies/study.py


class AshaRule:
    """Asynchronous successive halving (Li et al. 2020) in the stopping form of Ray Tune.

    Ray Tune's ASHAScheduler decides from results its trials report in real time; it cannot be
    driven by a simulated clock, so its rule is written again here, to decide alike
    (``ray.tune.schedulers.async_hyperband._Bracket`` with one bracket, ``stop_last_trials``).

    Rungs sit at ``grace_period * reduction_factor**k`` epochs below ``max_t``. The first time a
    trial reaches a rung, its value is compared with the values recorded at that rung so far
    (not counting its own): it goes on when the rung is empty or when its value is at least
    their (1 - 1/eta) percentile (numpy, linear interpolation), i.e. when it would be in their
    top 1/eta; either way its value is then recorded. A trial at ``max_t`` is complete.
    """

    def __init__(self, max_t: int, *, grace_period: int = 1, reduction_factor: float = 3):
        if max_t < 1 or grace_period < 1 or reduction_factor <= 1:
            raise ValueError(
                f"ASHA needs max_t >= 1, grace_period >= 1, reduction_factor > 1; "
                f"got {max_t}, {grace_period}, {reduction_factor}"
            )
        self.max_t, self.eta = max_t, reduction_factor
        rungs, r = [], float(grace_period)
        while r < max_t:
            rungs.append(r)
            r *= reduction_factor
        self.rungs: tuple[float, ...] = tuple(rungs)
        self._recorded: dict[float, dict[Any, float]] = {m: {} for m in rungs}

    def on_epoch(self, trial: Any, epoch: int, value: float) -> bool:
        """Record ``value`` after ``epoch`` of ``trial``; True: go on, False: stop it."""
        recorded = self._recorded.get(float(epoch))
        if recorded is None or trial in recorded:
            return True
        go_on = not recorded or value >= np.percentile(
            list(recorded.values()), (1 - 1 / self.eta) * 100
        )
        recorded[trial] = value
        return bool(go_on)


@dataclass(frozen=True, eq=False)
class ReplayTable:
    """One (fidelity, dataset) of a table, as arrays a replay reads.

    Attributes:
        design_ids: the designs with at least one ok seed whose curve has every epoch; grid
            order (the table's sorted ids).
        epochs: epochs of a full training (max_t).
        val, seconds: per design, [seed, epoch] arrays of curve val_acc and epoch seconds.
        seeds: per design, the seeds of those rows.
        mean_val: per design, the mean over seeds of the final curve val_acc.
        params: per design (the second objective of tpe and nsga2).
        best: index of the table's best design (highest mean_val; the first on ties).
    """

    design_ids: tuple[str, ...]
    epochs: int
    val: tuple[np.ndarray, ...]
    seconds: tuple[np.ndarray, ...]
    seeds: tuple[tuple[int, ...], ...]
    mean_val: np.ndarray
    params: np.ndarray
    best: int
    fidelity: str = ""
    dataset: str = ""

    @classmethod
    def from_benchmark(
        cls, bench: Benchmark, *, fidelity: str | None = None, dataset: str | None = None
    ) -> ReplayTable:
        """Designs with a full curve in at least one ok seed; seeds with a shorter curve (or a
        failed status) are left out, and so are designs with none."""
        fidelity, dataset = bench.resolve(fidelity, dataset)
        ids = bench.designs(fidelity=fidelity, dataset=dataset)
        rows = {
            d: [
                bench.query(d, fidelity=fidelity, dataset=dataset, seed=s)
                for s in bench.query(d, fidelity=fidelity, dataset=dataset).seeds
            ]
            for d in ids
        }
        epochs = max((len(e.curve.epoch) for rs in rows.values() for e in rs if e.curve), default=0)
        full = {
            d: [
                e
                for e in rs
                if e.curve is not None
                and len(e.curve.epoch) == epochs
                and not np.isnan(e.curve.seconds).any()
            ]
            for d, rs in rows.items()
        }
        full = {d: rs for d, rs in full.items() if rs}
        if not full:
            raise ValueError(
                f"no design at {fidelity}/{dataset} has an ok seed with a full "
                "curve; nothing to replay"
            )
        ids = sorted(full)
        val = tuple(np.array([e.curve.val_acc for e in full[d]]) for d in ids)
        mean_val = np.array([v[:, -1].mean() for v in val])
        return cls(
            design_ids=tuple(ids), epochs=epochs, val=val,
            seconds=tuple(np.array([e.curve.seconds for e in full[d]]) for d in ids),
            seeds=tuple(tuple(e.seeds[0] for e in full[d]) for d in ids), mean_val=mean_val,
            params=np.array([float(full[d][0].params or 0.0) for d in ids]),
            best=int(np.argmax(mean_val)), fidelity=fidelity, dataset=dataset,
        )  # fmt: skip


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
) -> ReplayResult:
    """Run one search against the table in simulated time (see the module docstring).

    Args:
        table: a ReplayTable, or a Benchmark with a single fidelity and dataset.
        strategy: grid, random, tpe or nsga2.
        scheduler: fifo, or asha (rungs from ``grace_period`` epochs, ``reduction_factor``).
        workers: trials running at once.
        seed: seeds the sampler, the random order and the per-design seed draw.
        seed_mode: "draw" one recorded seed per design, or "mean" curves.
        max_trials: start at most this many trials; None: every design once.
    """
    table = table if isinstance(table, ReplayTable) else ReplayTable.from_benchmark(table)
    _check(strategy, STRATEGIES, "strategy")
    _check(scheduler, SCHEDULERS, "scheduler")
    _check(seed_mode, SEED_MODES, "seed_mode")
    if workers < 1:
        raise ValueError(f"workers {workers}: need at least 1")
    rule = (
        AshaRule(table.epochs, grace_period=grace_period, reduction_factor=reduction_factor)
        if scheduler == "asha"
        else None
    )
    curves = _curves(table, seed, seed_mode)
    proposer = (
        _Ordered(table, strategy, seed)
        if strategy in ("grid", "random")
        else _Sampled(table, strategy, seed)
    )
    with proposer:
        trials, trace, reach, clock = _simulate(table, curves, proposer, workers, rule, max_trials)
    return ReplayResult(
        strategy=strategy, scheduler=scheduler, workers=workers, seed=seed, seed_mode=seed_mode,
        best_design=table.design_ids[table.best],
        time_to_best=reach[0] if reach else None, epochs_to_best=reach[1] if reach else None,
        total_time=clock,
        total_epochs=sum(t.epochs for t in trials), final_regret=trace[-1][2],
        trials=tuple(trials), trace=tuple(trace),
    )  # fmt: skip


def replay_many(
    table: ReplayTable | Benchmark,
    *,
    strategies: Sequence[str] = STRATEGIES,
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


def summarize(results: Iterable[ReplayResult]) -> pd.DataFrame:
    """Per (strategy, scheduler, workers): repeats, how many reached the best, and the mean,
    std (ddof = 1), median, min and max over the repeats that reached it of time_to_best and
    epochs_to_best; mean total time, total epochs and final regret over all repeats."""
    rows = [
        {
            "strategy": r.strategy,
            "scheduler": r.scheduler,
            "workers": r.workers,
            "reached": r.reached,
            "time_to_best": r.time_to_best,
            "epochs_to_best": r.epochs_to_best,
            "total_time": r.total_time,
            "total_epochs": r.total_epochs,
            "final_regret": r.final_regret,
        }
        for r in results
    ]
    df = pd.DataFrame(rows)
    keys = ["strategy", "scheduler", "workers"]
    out = df.groupby(keys, sort=False).agg(
        repeats=("reached", "size"),
        reached=("reached", "sum"),
        total_time_mean=("total_time", "mean"),
        total_epochs_mean=("total_epochs", "mean"),
        final_regret_mean=("final_regret", "mean"),
    )
    for col in ("time_to_best", "epochs_to_best"):
        stats = (
            df.dropna(subset=[col])
            .groupby(keys, sort=False)[col]
            .agg(["mean", "std", "median", "min", "max"])
        )
        out = out.join(stats.add_prefix(f"{col}_"))
    return out.reset_index()


def regret_frame(
    results: Iterable[ReplayResult], *, axis: str = "time", points: int = 200
) -> pd.DataFrame:
    """Best-so-far regret of each replay sampled on a common grid of simulated time (or of
    epochs) per worker count, long format for seaborn: one row per (replay, grid point)."""
    _check(axis, ("time", "epochs"), "axis")
    results = list(results)
    col = 0 if axis == "time" else 1
    frames = []
    for n in sorted({r.workers for r in results}):
        mine = [r for r in results if r.workers == n]
        end = max(r.trace[-1][col] for r in mine)
        grid = np.linspace(0.0, float(end), points)
        for r in mine:
            xs = np.array([p[col] for p in r.trace], dtype=float)
            ys = np.array([p[2] for p in r.trace])
            at = np.searchsorted(xs, grid, side="right") - 1  # the last point at or before x
            frames.append(
                pd.DataFrame(
                    {
                        "strategy": r.strategy,
                        "scheduler": r.scheduler,
                        "workers": n,
                        "repeat": r.seed,
                        axis: grid,
                        "regret": ys[np.maximum(at, 0)],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def plot_regret(
    results: Sequence[ReplayResult], out_dir: str | Path, *, stem: str = "regret"
) -> list[Path]:
    """Regret vs simulated time and vs epochs (median and interquartile band over repeats),
    one panel per worker count; ``<stem>_time`` and ``<stem>_epochs`` as PNG and SVG.

    The quartiles are computed here in one groupby (seaborn's own estimator runs a Python
    function per x value, seconds per figure); seaborn draws the median lines. Drawn on a
    Figure with an Agg canvas (no pyplot), so the caller's backend is untouched.
    """
    import seaborn as sns
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for axis, label in (("time", "simulated time (s)"), ("epochs", "epochs trained, all workers")):
        q = _quartiles(regret_frame(results, axis=axis), axis)
        workers = sorted(q["workers"].unique())
        strategies = list(dict.fromkeys(q["strategy"]))
        palette = dict(zip(strategies, sns.color_palette(n_colors=len(strategies)), strict=True))
        with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
            fig = Figure(figsize=(4.2 * len(workers) + 1.2, 3.4), layout="constrained")
            FigureCanvasAgg(fig)
            axes = fig.subplots(1, len(workers), squeeze=False)[0]
            for i, (ax, n) in enumerate(zip(axes, workers, strict=True)):
                mine = q[q["workers"].eq(n)]
                for (st, _), g in mine.groupby(["strategy", "scheduler"], sort=False):
                    ax.fill_between(
                        g[axis],
                        g["q25"],
                        g["q75"],
                        step="post",
                        alpha=0.15,
                        color=palette[st],
                        linewidth=0,
                    )
                sns.lineplot(
                    data=mine,
                    x=axis,
                    y="median",
                    hue="strategy",
                    style="scheduler",
                    palette=palette,
                    estimator=None,
                    errorbar=None,
                    ax=ax,
                    drawstyle="steps-post",
                    legend=i == len(workers) - 1,
                )
                ax.set(
                    title=f"{n} worker{'s' if n > 1 else ''}",
                    xlabel=label,
                    ylabel="regret of val_acc" if i == 0 else "",
                )
            if axes[-1].get_legend() is not None:
                sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
            fig.suptitle(
                f"Replayed searches: best-so-far regret vs {axis} "
                "(median, interquartile band over repeats)"
            )
            for ext in ("png", "svg"):
                path = out / f"{stem}_{axis}.{ext}"
                fig.savefig(path, dpi=110)
                written.append(path)
    return written


def _quartiles(data: pd.DataFrame, axis: str) -> pd.DataFrame:
    keys = ["strategy", "scheduler", "workers", axis]
    q = data.groupby(keys, sort=False)["regret"].quantile([0.25, 0.5, 0.75]).unstack()
    return q.set_axis(["q25", "median", "q75"], axis=1).reset_index()


# --- the simulation -------------------------------------------------------------------------


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
        proposer.tell(tr.handle, tr.design, v, stopped=not complete)
        trials.append(
            TrialLog(
                table.design_ids[tr.design],
                drawn[tr.design],
                tr.worker,
                tr.start,
                t,
                tr.epochs,
                not complete,
                v,
            )
        )
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


class _Ordered:
    """grid: the table's order; random: a permutation drawn from the seed (as Plan does)."""

    def __init__(self, table: ReplayTable, strategy: str, seed: int):
        order = list(range(len(table.design_ids)))
        if strategy == "random":
            random.Random(seed).shuffle(order)
        self._next = iter(order)

    def __enter__(self) -> _Ordered:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def propose(self) -> tuple[int | None, None]:
        return next(self._next, None), None

    def tell(self, handle: Any, design: int, value: float, *, stopped: bool) -> None:
        pass


class _Sampled:
    """tpe / nsga2: Optuna proposes over the design ids (two objectives, as the studies)."""

    def __init__(self, table: ReplayTable, strategy: str, seed: int):
        import optuna  # only the adaptive searches need it

        self._optuna = optuna
        n = len(table.design_ids)
        # The settings of studies/search.py make_sampler, with n = one trial per design.
        self._sampler = (
            optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, n // 4)))
            if strategy == "tpe"
            else optuna.samplers.NSGAIISampler(seed=seed, population_size=min(50, max(4, n // 4)))
        )
        self.table, self.choices = table, table.design_ids
        self.index = {d: i for i, d in enumerate(self.choices)}
        self.free = set(range(n))
        self.rng = random.Random(seed)
        self._verbosity = optuna.logging.get_verbosity()
        self._warnings = warnings.catch_warnings()

    def __enter__(self) -> _Sampled:
        """Quiet Optuna (a line per study, experimental warnings) for the replay only."""
        optuna = self._optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._warnings.__enter__()
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        self.study = optuna.create_study(directions=list(DIRECTIONS), sampler=self._sampler)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._warnings.__exit__(*exc)
        self._optuna.logging.set_verbosity(self._verbosity)

    def propose(self) -> tuple[int | None, Any]:
        if not self.free:
            return None, None
        trial = self.study.ask()
        design = self.index[trial.suggest_categorical(PARAM, self.choices)]
        if design not in self.free:  # studies: FAIL the proposal, train a random free design
            trial.set_user_attr("skipped", f"{self.choices[design]}: tried already")
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
            design = self.rng.choice(sorted(self.free))
            self.study.enqueue_trial({PARAM: self.choices[design]})
            trial = self.study.ask()
            trial.suggest_categorical(PARAM, self.choices)
        self.free.discard(design)
        return design, trial

    def tell(self, handle: Any, design: int, value: float, *, stopped: bool) -> None:
        if stopped:  # studies tell an ASHA-stopped trial PRUNED, without values
            self.study.tell(handle, state=self._optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(handle, [value, float(self.table.params[design])])


def _check(value: str, accepted: Sequence[str], what: str) -> None:
    if value not in accepted:
        raise ValueError(f"unknown {what} {value!r}; accepted: {', '.join(accepted)}")
