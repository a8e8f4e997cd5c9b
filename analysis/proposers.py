"""The searches a replay runs, proposing designs as studies/search.py proposes them.

- ``grid``: the table's design order; ``random``: a permutation drawn from the seed, without
  replacement, as ``studies.plan.Plan.ordered_pairs`` draws it. These need no sampler: the
  studies enqueue these orders themselves (Optuna's GridSampler would visit the grid in a
  random order and its RandomSampler draws with replacement).
- ``tpe`` and ``nsga2``: Optuna's sampler, with the studies' settings
  (:func:`studies.sampling.make_sampler`), through ``study.ask()``/``tell()`` over a
  categorical of the design ids, two objectives (val_acc up, params down). A proposal of a
  design already tried is told FAIL and replaced by a random untried design, as
  ``DesignSearcher._skip`` does.

A proposer gives design indices (``propose``) and hears how each trial ended (``tell``).

Example:
    >>> import numpy as np
    >>> from analysis.replay_table import ReplayTable
    >>> t = ReplayTable(design_ids=("a", "b", "c"), epochs=1, val=(), seconds=(), seeds=(),
    ...                 mean_val=np.zeros(3), params=np.ones(3), best=0)
    >>> p = make_proposer(t, "random", seed=1)
    >>> [p.propose()[0] for _ in range(4)]
    [1, 2, 0, None]
"""

from __future__ import annotations

import random
import warnings
from typing import Any

from studies.sampling import DIRECTIONS, PARAM, make_sampler

from .replay_table import ReplayTable


def make_proposer(table: ReplayTable, strategy: str,
                  seed: int) -> OrderedProposer | SampledProposer:
    """The proposer of ``strategy`` (grid, random, tpe, nsga2), seeded; a context manager."""
    if strategy in ("grid", "random"):
        return OrderedProposer(table, strategy, seed)
    return SampledProposer(table, strategy, seed)


class OrderedProposer:
    """grid: the table's order; random: a permutation drawn from the seed (as Plan does)."""

    def __init__(self, table: ReplayTable, strategy: str, seed: int):
        order = list(range(len(table.design_ids)))
        if strategy == "random":
            random.Random(seed).shuffle(order)
        self._next = iter(order)

    def __enter__(self) -> OrderedProposer:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def propose(self) -> tuple[int | None, None]:
        return next(self._next, None), None

    def tell(self, handle: Any, design: int, value: float, *, stopped: bool) -> None:
        pass


class SampledProposer:
    """tpe / nsga2: Optuna proposes over the design ids (two objectives, as the studies)."""

    def __init__(self, table: ReplayTable, strategy: str, seed: int):
        import optuna  # only the adaptive searches need it

        self._optuna = optuna
        n = len(table.design_ids)
        self._sampler = make_sampler(strategy, seed, n)  # a sweep of one trial per design
        self.table, self.choices = table, table.design_ids
        self.index = {d: i for i, d in enumerate(self.choices)}
        self.free = set(range(n))
        self.rng = random.Random(seed)
        self._verbosity = optuna.logging.get_verbosity()
        self._warnings = warnings.catch_warnings()

    def __enter__(self) -> SampledProposer:
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
