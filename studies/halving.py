"""Successive halving over named rungs, planned to a wall-clock budget: the pure part.

``studies.time_budget`` runs what this module plans. Nothing here imports Ray or torch:
the planner takes the cost model's predictions as numbers, so it is tested on its own.

The rungs. A base fidelity (``--fidelity``, default ``cpu``) defines a ladder of cheaper
ones, each a quarter (``ETA``) of the training images of the one above it, all at
``RUNG_RESOLUTION`` pixels: ``F_0`` is the base's training (its images x epochs) at that
resolution, ``F_1`` a quarter of it, and so on while a rung trains at least its floor,
``min_steps(dataset)`` SGD steps (a rung below it ranks nothing: its nets stay at chance).
A plan uses up to ``MAX_RUNGS`` consecutive ones: every design at the cheapest, the best
quarter (by validation accuracy) at the next, and so on. Each rung is a
fidelity named by ``evaluators.with_changes`` (``cpu+train_size=...``), so its records are
keyed by it, a re-run skips what is recorded, and two budgets that share a rung share its
records.

The plan. Among the ladders that fit the budget (predicted wall time of every rung, trials
queued on the workers), the one whose top rung trains the most, and for that top rung the
fewest rungs (the most evidence for every design); if even the cheapest ladder cannot take
every design, a sample of them, stratified by the number of group convolutions L (the
paper's axis, Figure 3), drawn from ``--sampler-seed``: the largest sample that fits the
most rungs (at least two designs at the cheapest), else one design at the cheapest rung.

Example:
    >>> cpu = {"train_size": 8000, "val_fraction": 0.1, "test_size": 2000, "resolution": 16,
    ...        "epochs": 2, "batch_size": 64}
    >>> def shapes(ladder):
    ...     return [(r["train_images"], r["epochs"], r["val_images"], r["test_images"])
    ...             for r in ladder]
    >>> shapes(rung_configs(cpu, dataset_train=50_000))  # 225 and 56 steps: the floor is 50
    [(7200, 2, 800, 2000), (3600, 1, 800, 2000)]
    >>> shapes(rung_configs(cpu, dataset_train=50_000, min_steps=3))
    [(7200, 2, 800, 2000), (3600, 1, 800, 2000), (900, 1, 800, 900), (225, 1, 225, 225)]
    >>> plan = plan_ladder(n_designs=74, seeds=1, workers=2, seconds=2400,
    ...                    rung_seconds=[600.0, 150.0, 40.0, 12.0])
    >>> plan.rungs, plan.designs  # ladder index of each rung (cheapest first), designs at each
    ((3, 2, 1), (74, 19, 5))
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evaluators.catalog import DATASETS
from studies import budget

ETA = 4  # each rung trains ETA x the images of the one below, on 1/ETA of its designs
MAX_RUNGS = 3  # 74 designs -> 19 -> 5
RUNG_RESOLUTION = 8  # pixels per side: the 0.65M nets need ~17 GB of activations per batch
#                      at 16x16 (4x the 8x8 memory, and 4x the time)
MIN_STEPS = 50  # SGD steps the cheapest rung trains at least, on real images. Measured on
#                CIFAR-10 with the 0.65M plain8 nets at 8x8, batch 64: after 15 steps (900
#                images x 1 epoch) all 61 trained nets predicted one class (the hour in
#                docs/studies.md); after 57 steps (3,600 x 1) the nets tried, widths 319-3,040,
#                were above chance (docs/studies.md, "The floor").
MIN_STEPS_SYNTHETIC = 3  # the synthetic data tests the machinery, not a ranking


def min_steps(dataset: str) -> int:
    """The floor of a rung on ``dataset``: SGD steps it trains at least.

    Example:
        >>> min_steps("cifar10"), min_steps("synthetic")
        (50, 3)
    """
    spec = DATASETS.get(dataset)
    return MIN_STEPS_SYNTHETIC if spec is not None and spec.in_memory else MIN_STEPS


def parse_duration(text: str) -> float:
    """``--time-budget``: ``studies.budget.parse_duration``, and more than zero.

    Example:
        >>> parse_duration("1h30m"), parse_duration("2m"), parse_duration("600")
        (5400.0, 120.0, 600.0)
    """
    seconds = budget.parse_duration(text, option="--time-budget")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"--time-budget {text!r} must be a positive duration")
    return seconds


def add_time_budget(group: Any) -> None:
    """The ``--time-budget`` option of ``studies/run.py`` (an argparse argument group)."""
    group.add_argument("--time-budget", metavar="DURATION",
                       help="fit the sweep to this wall-clock time (1h, 90m, 1h30m, 600): "
                            "successive halving over cheaper rungs of --fidelity, then the "
                            "best design with its interval and every design measured or "
                            "predicted; with --dry-run, the plan and the least budget that "
                            "trains (docs/studies.md)")


def time_budget_of(args: Any) -> float | None:
    """``--time-budget`` in seconds, or None. It chooses its designs and stops its trials
    itself, so it takes none of ``--search``, ``--scheduler``, ``--max-trials``.

    Raises:
        ValueError: one line naming the value and what is accepted (``studies/run.py``
            prints it and exits 2).
    """
    if args.time_budget is None:
        return None
    seconds = parse_duration(args.time_budget)
    for flag, given in (("--search", args.search != "grid"), ("--scheduler", args.scheduler),
                        ("--max-trials", args.max_trials is not None)):
        if given:
            raise ValueError(f"--time-budget chooses its designs and stops trials itself "
                             f"(successive halving); drop {flag}")
    return seconds


# --- the ladder --------------------------------------------------------------------------


def rung_configs(base: dict[str, Any], *, dataset_train: int, dataset_test: int | None = None,
                 min_steps: int = MIN_STEPS) -> list[dict[str, Any]]:
    """The ladder below a base fidelity config (``Fidelity.to_dict()``), most expensive
    first: per rung its ``train_images`` (per epoch), ``epochs``, ``val_images``,
    ``test_images`` and the fidelity ``changes`` that make it; down to the last rung that
    trains ``min_steps`` SGD steps of the base's batch (its image passes / batch size).

    ``dataset_train``, ``dataset_test``: the dataset's official train and test images (the
    base may ask for all; a rung's test count is then at most the test split's).
    Validation: the base's, but never more images than the rung trains on (an evaluation
    costs about a third of a training image). Test: the base's, never more than the rung's
    training images x epochs; only the top rung's test accuracy is reported.
    """
    drawn = min(base.get("train_size") or dataset_train, dataset_train)
    base_val = max(1, round(base.get("val_fraction", 0.1) * drawn))
    base_train = drawn - base_val
    base_test = base.get("test_size") or dataset_test or 10_000_000  # None: "all"
    passes = base_train * int(base["epochs"])
    floor = min_steps * int(base.get("batch_size", 64))  # image passes
    out = []
    while passes >= floor:
        train = min(base_train, passes)
        epochs = math.ceil(passes / train)
        val = min(base_val, train)
        test = min(base_test, train * epochs)
        resolution = min(base.get("resolution") or RUNG_RESOLUTION, RUNG_RESOLUTION)
        changes = {"train_size": train + val, "val_fraction": round(val / (train + val), 6),
                   "epochs": epochs, "resolution": resolution, "test_size": test,
                   "latency_reps": 0}
        out.append({"train_images": train, "epochs": epochs, "val_images": val,
                    "test_images": test, "changes": changes})
        passes //= ETA
    return out


# --- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LadderPlan:
    """Which rungs of the ladder, and how many designs at each (cheapest rung first)."""

    rungs: tuple[int, ...]  # ladder indices, cheapest first (descending)
    designs: tuple[int, ...]  # designs at each rung
    predicted_s: float  # wall seconds of the whole plan, as planned
    sampled: bool  # the first rung takes a sample of the designs, not all


def designs_at(n0: int, rungs: int) -> tuple[int, ...]:
    """n0, then ceil(n / ETA) per rung: 74 -> (74, 19, 5)."""
    out = [n0]
    for _ in range(rungs - 1):
        out.append(math.ceil(out[-1] / ETA))
    return tuple(out)


def makespan(n_trials: int, seconds: float, workers: int) -> float:
    """Wall seconds of ``n_trials`` equal trials on ``workers`` slots (first come, first
    served): whole rounds."""
    return math.ceil(n_trials / max(workers, 1)) * seconds


def queue_makespan(seconds: Sequence[float], workers: int) -> float:
    """Wall seconds of trials run in this order on ``workers`` slots, each starting when a
    slot frees (as Tune's FIFO queue runs them)."""
    slots = [0.0] * max(workers, 1)
    for s in seconds:
        i = min(range(len(slots)), key=slots.__getitem__)
        slots[i] += s
    return max(slots)


def plan_ladder(*, n_designs: int, seeds: int, workers: int, seconds: float,
                rung_seconds: Sequence[float],
                first_rung: Callable[[int, int], float] | None = None,
                rung_overhead_s: float = 0.0) -> LadderPlan | None:
    """The plan that fits ``seconds`` (see the module's docstring), or None if not even one
    design fits the cheapest rung.

    Args:
        n_designs: candidate designs. seeds: trials per design. workers: trials at once.
        rung_seconds: predicted seconds of one trial at each ladder rung (the mean over the
            candidates; index 0 the most expensive).
        first_rung: (ladder index, n designs) -> predicted wall seconds of the first rung
            with its actual designs (default: ``makespan`` of the mean).
        rung_overhead_s: seconds each rung costs besides its trials (starting the Tune run
            and its workers).
    """
    def cost(rungs: tuple[int, ...], counts: tuple[int, ...]) -> float:
        total = rung_overhead_s * len(rungs)
        for k, (r, n) in enumerate(zip(rungs, counts, strict=True)):
            if k == 0 and first_rung is not None:
                total += first_rung(r, n)
            else:
                total += makespan(n * seeds, rung_seconds[r], workers)
        return total

    depth = len(rung_seconds)
    for top in range(depth):  # the largest top rung first
        for length in range(1, MAX_RUNGS + 1):  # then the fewest rungs
            bottom = top + length - 1
            if bottom >= depth or (length > 1 and ETA ** (length - 1) > n_designs):
                break
            rungs = tuple(range(bottom, top - 1, -1))
            counts = designs_at(n_designs, length)
            predicted = cost(rungs, counts)
            if predicted <= seconds:
                return LadderPlan(rungs, counts, predicted, sampled=False)
    # Not every design fits: the cheapest ladder, on a sample; of the most rungs that
    # leave at least two designs at the cheapest, else one rung.
    for length in range(min(MAX_RUNGS, depth), 0, -1):
        rungs = tuple(range(depth - 1, depth - 1 - length, -1))
        for n0 in range(n_designs - 1, 0 if length == 1 else 1, -1):
            counts = designs_at(n0, length)
            predicted = cost(rungs, counts)
            if predicted <= seconds:
                return LadderPlan(rungs, counts, predicted, sampled=True)
    return None


def next_rung_designs(*, planned: int, seeds: int, workers: int,
                      seconds: float, trial_s: Sequence[float],
                      later: Sequence[Sequence[float]],
                      rung_overhead_s: float = 0.0) -> int:
    """How many of the candidate designs the next rung can take in ``seconds``: the most
    (up to ``planned``, or up to half the candidates when the time allows) for which that
    rung and the rungs after it fit. 0 when not even one design fits the next rung alone.

    ``trial_s``: predicted seconds of a trial of each candidate at the next rung, best
    candidate first; the best n run longest-first (:func:`longest_first`). ``later``: the
    same for each rung after it, which takes a quarter of the designs of the one before
    (which ones is not known yet: the mean of the best n's).
    """
    candidates = len(trial_s)
    limit = max(planned, math.ceil(candidates / 2))
    for n in range(min(limit, candidates), 0, -1):
        first = sorted(trial_s[:n], reverse=True)
        total = (queue_makespan([s for _ in range(seeds) for s in first], workers)
                 + rung_overhead_s * (1 + len(later)))
        m = n
        for costs in later:
            m = math.ceil(m / ETA)
            total += makespan(m * seeds, sum(costs[:n]) / n, workers)
        if total <= seconds:
            return n
    return 0


# --- choosing designs ----------------------------------------------------------------------


def stratified_sample(design_ids: Sequence[str], n: int, seed: int,
                      stratum: Callable[[str], Any]) -> list[str]:
    """``n`` of ``design_ids``: round-robin over the strata (sorted), each stratum in an
    order drawn from ``seed``; the result keeps the input order.

    Example:
        >>> ids = ["a1", "a2", "a3", "b1", "c1", "c2"]
        >>> sorted(stratified_sample(ids, 3, 0, stratum=lambda i: i[0]))
        ['a1', 'b1', 'c2']
    """
    rng = random.Random(seed)
    groups: dict[Any, list[str]] = {}
    for d in design_ids:
        groups.setdefault(stratum(d), []).append(d)
    for key in sorted(groups):
        rng.shuffle(groups[key])
    chosen: set[str] = set()
    while len(chosen) < min(n, len(design_ids)):
        for key in sorted(groups):
            if groups[key] and len(chosen) < n:
                chosen.add(groups[key].pop(0))
    return [d for d in design_ids if d in chosen]


def rank_designs(records: Sequence[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """(design, mean val_acc over its ok records, ok seeds), best first; designs without an
    ok record are left out. Ties: the design listed first in ``records`` first."""
    by: dict[str, list[float]] = {}
    for r in records:
        if r.get("status") == "ok" and r.get("val_acc") is not None:
            by.setdefault(r["design_id"], []).append(float(r["val_acc"]))
    ranked = [(d, sum(v) / len(v), len(v)) for d, v in by.items()]
    order = {d: i for i, d in enumerate(by)}
    ranked.sort(key=lambda t: (-t[1], order[t[0]]))
    return ranked


def longest_first(design_ids: Sequence[str], seconds: Sequence[float]) -> list[str]:
    """``design_ids`` by predicted ``seconds``, longest first (ties in input order): the
    order a rung's trials are handed to the workers. Tune's FIFO queue starts them in this
    order, and longest-first keeps a long trial from starting last while the other workers
    idle. The hour's probe (docs/studies.md) started its trials of 295, 50, 232 and 718 s in
    that order: 1,000 s on two workers, where longest-first takes 718.

    Example:
        >>> longest_first(["a", "b", "c", "d"], [295, 50, 232, 718])
        ['d', 'a', 'c', 'b']
        >>> queue_makespan([295, 50, 232, 718], 2), queue_makespan([718, 295, 232, 50], 2)
        (1000.0, 718.0)
    """
    order = sorted(range(len(design_ids)), key=lambda i: (-seconds[i], i))
    return [design_ids[i] for i in order]


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


def cheap_probe(designs: list[str], seconds: list[float], n: int) -> list[str]:
    """The probe's ``n`` designs: spread over the predicted times of the cheapest quarter
    (at least ``n``). The cheapest, so that they end soon on a machine several times slower
    than its calibration: a 15-minute budget on this machine under a load of 11 probed
    designs across all times, its two widest took over 13 minutes against 2-3 predicted,
    and none finished."""
    order = sorted(range(len(designs)), key=lambda i: (seconds[i], i))
    cheap = sorted(order[:max(n, len(designs) // 4)])
    return probe_designs([designs[i] for i in cheap], [seconds[i] for i in cheap], n)
