"""What a sweep costs here: the cost model (``evaluators.cost_model``) applied to a plan.

Used where a user decides (``--dry-run``, ``--list-presets``, the first line of a sweep and
its confirmation) and while it runs (the ETA of the progress lines). A trial's seconds are
``cost_model.predict_seconds`` with this machine's calibration for the fidelity's shape
(``evaluators.calibrate``: measured once, a few seconds, then cached), rescaled to the
sweep's own records as they arrive (``cost_model.refit``). A sweep's seconds are the trials
laid out on its parallel slots in the order they start (each trial goes to the slot that
frees first), plus Ray's start.

Nothing here imports Ray; torch only to measure a calibration (:func:`calibration`).

Example:
    >>> makespan([10, 10, 10], slots=2), makespan([10, 10, 10], slots=2, busy=[25])
    (20.0, 30.0)
    >>> fmt_seconds(41), fmt_seconds(185), fmt_seconds(7800), fmt_seconds(200_000)
    ('41s', '3m05s', '2h10m', '2d07h')
"""

from __future__ import annotations

import heapq
import math
import os
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from evaluators.cost_model import Calibration, compute_seconds, predict_seconds, refit

RAY_START_S = 5.0  # starting the local Ray and the first worker (docs/studies.md: ~5 s)


def fmt_seconds(seconds: float) -> str:
    """41s, 3m05s, 2h10m, 2d07h."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86_400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86_400}d{s % 86_400 // 3600:02d}h"


def makespan(durations: Iterable[float], slots: int, busy: Sequence[float] = ()) -> float:
    """Seconds until ``durations`` (in start order) are done on ``slots`` parallel slots,
    some of them ``busy`` for the given seconds first: each trial takes the slot that frees
    first, as Ray Tune starts a trial when resources free up."""
    free = sorted(float(b) for b in busy)[:max(1, slots)]
    free += [0.0] * (max(1, slots) - len(free))
    heapq.heapify(free)
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + float(d))
    return max(free)


def local_slots(cpus_per_trial: float, gpus_per_trial: float = 0.0) -> int:
    """Trials this machine runs at once: its CPUs (and GPUs) over a trial's share, as the
    local Ray started with ``num_cpus=os.cpu_count()`` schedules them."""
    slots = int((os.cpu_count() or 1) // cpus_per_trial)
    if gpus_per_trial > 0:
        slots = min(slots, int(_gpu_count() // gpus_per_trial))
    return max(1, slots)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def calibration(fidelity: Any, *, threads: int, gpu: bool = False,
                err: TextIO | None = None) -> Calibration:
    """This machine's calibration for ``fidelity``'s shape (cached; measured the first time,
    which ``err`` is told about, as it takes seconds)."""
    import torch

    from evaluators import calibrate

    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    cal = calibrate.cached_calibration(fidelity, device=device, threads=threads)
    if cal is not None:
        return cal
    err = err or sys.stderr
    err.write(f"measuring this machine's speed for the cost model ({device}, {threads} "
              f"thread{'s' if threads > 1 else ''}, {fidelity.resolution or 32}px, batch "
              f"{fidelity.batch_size}): a few seconds, once (cached in "
              f"{calibrate.cache_path()})\n")
    err.flush()
    return calibrate.get_calibration(fidelity, device=device, threads=threads)


@dataclass
class TrialCosts:
    """Predicted seconds of one trial per design, for one fidelity, dataset and calibration.

    ``calibration`` is the machine's; :meth:`refitted` rescales it to finished records.
    """

    calibration: Calibration
    fidelity_config: Mapping[str, Any]
    dataset: str
    num_classes: int
    _memo: dict[str, float] = field(default_factory=dict, repr=False)

    def seconds(self, design_id: str) -> float:
        """Predicted wall seconds of a trial of ``design_id`` (loading to latency)."""
        if design_id not in self._memo:
            self._memo[design_id] = predict_seconds(
                design_id, self.fidelity_config, self.dataset, self.calibration,
                num_classes=self.num_classes)
        return self._memo[design_id]

    def tail(self, design_id: str) -> float:
        """Seconds after the last epoch: the test pass and the latency measurement."""
        after = {**self.fidelity_config, "epochs": 0}
        return self.calibration.scale * compute_seconds(
            design_id, after, self.dataset, self.calibration, num_classes=self.num_classes)

    def refitted(self, records: Iterable[Mapping[str, Any]]) -> TrialCosts:
        """The same costs with the calibration's scale fitted to ``records`` (ok ones)."""
        cal = refit(replace(self.calibration, scale=1.0, scale_records=0), records)
        if cal.scale_records == 0:
            return self
        return TrialCosts(cal, self.fidelity_config, self.dataset, self.num_classes)

    def source(self) -> str:
        """Where the numbers come from, in words."""
        cal = self.calibration
        text = (f"cost model with this machine's calibration ({cal.device}, {cal.threads} "
                f"thread{'s' if cal.threads > 1 else ''}, {cal.resolution}x{cal.resolution}"
                f"{', measured ' + cal.created[:16].replace('T', ' ') if cal.created else ''})")
        if cal.scale_records:
            text += (f", rescaled x{cal.scale:.2f} to {cal.scale_records} finished "
                     f"trial{'s' if cal.scale_records > 1 else ''} of this sweep")
        return text


@dataclass(frozen=True)
class SweepEstimate:
    """The predicted cost of the trials still to run."""

    trials: int
    slots: int
    per_trial: tuple[float, ...]  # seconds, in start order
    total: float  # wall seconds, Ray's start included
    source: str
    upper_bound: bool = False  # ASHA may stop trials early: the total is at most this

    def describe(self) -> str:
        """``3 trials, ~8s each (5-12s), ~25s in all, 2 at a time``."""
        if not self.trials:
            return "nothing to run"
        p = sorted(self.per_trial)
        each = f"~{fmt_seconds(statistics.median(p))} each"
        if fmt_seconds(p[0]) != fmt_seconds(p[-1]):
            each += f" ({fmt_seconds(p[0])}-{fmt_seconds(p[-1])})"
        bound = "at most " if self.upper_bound else ""
        return (f"{self.trials} trial{'s' if self.trials > 1 else ''}, {each}, "
                f"{bound}~{fmt_seconds(self.total)} in all, {self.slots} at a time")


def estimate(design_ids: Sequence[str], costs: TrialCosts, slots: int, *,
             upper_bound: bool = False, started: bool = False) -> SweepEstimate:
    """The estimate of trials of ``design_ids`` (one entry per trial, in start order).

    ``started``: Ray is up already (no start-up time to add).
    """
    per_trial = tuple(costs.seconds(d) for d in design_ids)
    total = makespan(per_trial, slots) + (0.0 if started or not per_trial else RAY_START_S)
    return SweepEstimate(len(per_trial), slots, per_trial, total, costs.source(),
                         upper_bound)


def trials_to_run(plan: Any, recorded: set[str]) -> list[str]:
    """The designs of the trials of ``plan`` (a studies.plan.Plan) still without a record,
    in start order; for tpe/nsga2 (which choose as they go) the free designs cycled."""
    if not plan.adaptive:
        return [d for d, s in plan.ordered_pairs() if plan.key(d, s) not in recorded]
    left = max(0, plan.target - len(recorded & set(plan.all_pairs())))
    free = [d for d, s in plan.ordered_pairs() if plan.key(d, s) not in recorded]
    return [free[i % len(free)] for i in range(left)] if free else []


@dataclass
class SweepClock:
    """The ETA of a running sweep: the cost model for what has not run, the trials' own
    epochs for what is running (a trial's time left: its mean epoch so far times the epochs
    left, plus its predicted test and latency passes)."""

    costs: TrialCosts
    slots: int
    epochs: int

    def refit(self, records: Iterable[Mapping[str, Any]]) -> None:
        self.costs = self.costs.refitted(records)

    def trial_left(self, design_id: str, elapsed: float,
                   curve: Sequence[Mapping[str, Any]]) -> float:
        """Seconds until the trial of ``design_id`` ends, ``elapsed`` seconds in."""
        seconds = [float(r["seconds"]) for r in curve if r.get("seconds") is not None]
        if not seconds:
            return max(0.0, self.costs.seconds(design_id) - elapsed)
        left_epochs = max(0, self.epochs - len(curve))
        return statistics.fmean(seconds) * left_epochs + self.costs.tail(design_id)

    def sweep_left(self, running: Iterable[tuple[str, float, Sequence[Mapping[str, Any]]]],
                   waiting: Sequence[str]) -> float:
        """Seconds until the sweep ends: running (design, elapsed, curve) and the designs of
        the trials still waiting, in start order."""
        busy = [self.trial_left(d, e, c) for d, e, c in running]
        if not waiting:
            return max(busy, default=0.0)
        return makespan((self.costs.seconds(d) for d in waiting), self.slots, busy)


def confirm_message(est: SweepEstimate, threshold_s: float, fidelity: str) -> str:
    """One line: the estimate over the threshold and the cheaper ways."""
    from evaluators.fidelity import FIDELITIES, SUPERSEDED

    ladder = list(FIDELITIES)
    base = fidelity.split("+")[0]
    cheaper = [f for f in ladder[:ladder.index(base)] if f not in SUPERSEDED] if (
        base in ladder) else []
    rung = f"a cheaper rung (--fidelity {' or '.join(cheaper)}), " if cheaper else ""
    return (f"this sweep is estimated at {fmt_seconds(est.total)} on this machine "
            f"({est.describe()}; {est.source}), over the --confirm-above "
            f"{fmt_seconds(threshold_s)}; cheaper: --time-budget DURATION (fits the "
            f"search to a wall-clock budget), {rung}a smaller --budget or --max-trials N; "
            "or --yes to start it as it is")


def within(seconds: float, threshold_s: float) -> bool:
    return not (math.isfinite(seconds) and seconds > threshold_s)
