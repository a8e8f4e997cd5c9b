"""The searches a replay runs (studies.searches, the one registry of searches), proposing
designs as studies/search.py proposes them; a search's ``proposes`` picks its proposer here.

- ``grid``: the table's design order; ``random``: a permutation drawn from the seed, without
  replacement. These need no sampler: their orders are the functions of studies.orders that
  the sweeps' plans enqueue too (Optuna's GridSampler would visit the grid in a random order
  and its RandomSampler draws with replacement).
- ``tpe`` and ``nsga2``: Optuna's sampler, with the studies' settings
  (:func:`studies.sampling.make_sampler`), through ``study.ask()``/``tell()`` over a
  categorical of the design ids, two objectives (val_acc up, params down). A proposal of a
  design already tried is told FAIL and replaced by a random untried design, as
  ``DesignSearcher._skip`` does.

Searches that can generalise (issue 14), over the design's fields rather than its id:

- ``tpe-struct``: multivariate TPE over (L, log width, log params)
  (:func:`studies.sampling.make_structured_sampler`), one objective (val_acc); each proposed
  point is mapped to the nearest design not tried yet (distances in the table's range of
  each field), and the design's own point and value are what TPE learns from.
- ``zc-tpe-struct``: the same, whose startup proposals (random in ``tpe-struct``) are the
  designs with the highest zero-cost score (``proxy``) instead: a zero-cost warm start.
- ``zc-order``: the designs in descending zero-cost score, learning nothing: what the proxy
  alone is worth.

A proposer gives design indices (``propose``) and hears how each trial ended (``tell``).

Example:
    >>> import numpy as np
    >>> from analysis.replay.table import ReplayTable
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

import numpy as np

import search_space as ss
from analysis.replay.table import ReplayTable
from studies.orders import fixed_order, score_order
from studies.sampling import (
    DIRECTIONS,
    PARAM,
    STRUCTURED_DIRECTION,
    STRUCTURED_PARAMS,
    design_point,
    make_sampler,
    startup_trials,
    structured_distributions,
)
from studies.searches import search_spec


def make_proposer(table: ReplayTable, strategy: str, seed: int, *,
                  proxy: str = "synflow") -> Any:
    """The proposer of ``strategy`` (a key of studies.searches.SEARCHES), seeded; a context
    manager. ``proxy``: the zero-cost score of the searches that need scores."""
    spec = search_spec(strategy)
    if spec.needs_scores and proxy not in table.scores:
        raise ValueError(f"strategy {strategy} needs the zero-cost score {proxy!r}; the "
                         f"table has {sorted(table.scores) or 'no scores'} (with_scores)")
    proposer = {"order": OrderedProposer, "sampler": SampledProposer,
                "structured": StructuredProposer}[spec.proposes]
    return proposer(table, strategy, seed, proxy=proxy if spec.needs_scores else None)


class OrderedProposer:
    """A fixed-order search (grid, random, zc-order): the designs in the order of the function
    its registry entry names (studies.orders), as a sweep's plan orders them, over the
    table's design indices with one seed; ``proxy`` (zc-order): the score it orders by."""

    def __init__(self, table: ReplayTable, strategy: str, seed: int, *,
                 proxy: str | None = None):
        scores = None if proxy is None else table.scores[proxy]
        pairs = fixed_order(strategy, range(len(table.design_ids)), (0,), sampler_seed=seed,
                            scores=scores)
        self._next = iter(design for design, _ in pairs)

    def __enter__(self) -> OrderedProposer:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def propose(self) -> tuple[int | None, None]:
        return next(self._next, None), None

    def tell(self, handle: Any, design: int, value: float, *, stopped: bool,
             epochs: int = 1) -> None:
        pass


class _OptunaProposer:
    """A proposer over an Optuna study made in ``__enter__``, with Optuna quiet (a line per
    study, experimental warnings) for the replay only. Subclasses set ``_optuna``,
    ``_sampler`` and ``STUDY`` (create_study's direction arguments)."""

    STUDY: dict[str, Any] = {}

    def __enter__(self) -> Any:
        optuna = self._optuna
        self._verbosity = optuna.logging.get_verbosity()
        self._warnings = warnings.catch_warnings()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._warnings.__enter__()
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        self.study = optuna.create_study(sampler=self._sampler, **self.STUDY)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._warnings.__exit__(*exc)
        self._optuna.logging.set_verbosity(self._verbosity)


class SampledProposer(_OptunaProposer):
    """tpe / nsga2: Optuna proposes over the design ids (two objectives, as the studies)."""

    STUDY = {"directions": list(DIRECTIONS)}

    def __init__(self, table: ReplayTable, strategy: str, seed: int, *,
                 proxy: str | None = None):
        import optuna  # only the adaptive searches need it

        self._optuna = optuna
        n = len(table.design_ids)
        self._sampler = make_sampler(strategy, seed, n)  # a sweep of one trial per design
        self.table, self.choices = table, table.design_ids
        self.index = {d: i for i, d in enumerate(self.choices)}
        self.free = set(range(n))
        self.rng = random.Random(seed)

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

    def tell(self, handle: Any, design: int, value: float, *, stopped: bool,
             epochs: int = 1) -> None:
        if stopped:  # studies tell an ASHA-stopped trial PRUNED, without values
            self.study.tell(handle, state=self._optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(handle, [value, float(self.table.params[design])])


class StructuredProposer(_OptunaProposer):
    """tpe-struct / zc-tpe-struct: TPE over the design's fields, mapped to the nearest
    untried design (see the module docstring); with ``proxy`` (zc-tpe-struct), the startup
    proposals are the best-scored designs."""

    STUDY = {"direction": STRUCTURED_DIRECTION}

    def __init__(self, table: ReplayTable, strategy: str, seed: int, *,
                 proxy: str | None = None):
        import optuna

        self._optuna = optuna
        self.table = table
        n = len(table.design_ids)
        self.points = [design_point({"L": ss.parse(d).L, "width": ss.parse(d).width,
                                     "params": float(p)})
                       for d, p in zip(table.design_ids, table.params, strict=True)]
        self.dists = structured_distributions(self.points)
        x = np.array([[p[k] for k in STRUCTURED_PARAMS] for p in self.points], dtype=float)
        self.lo, self.span = x.min(axis=0), np.maximum(np.ptp(x, axis=0), 1e-12)
        self.x = (x - self.lo) / self.span  # each field over its range in the table: [0, 1]
        self._sampler = make_sampler(strategy, seed, n)
        self.free = set(range(n))
        self.warm: list[int] = []
        if proxy is not None:  # the startup proposals: the best-scored designs, the head
            k = startup_trials(n)  # of zc-order's order (the sampler's own startup rule)
            best = score_order(range(n), (0,), sampler_seed=seed, scores=table.scores[proxy])
            self.warm = [design for design, _ in best[:k]]

    def propose(self) -> tuple[int | None, None]:
        if not self.free:
            return None, None
        while self.warm:
            design = self.warm.pop(0)
            if design in self.free:
                self.free.discard(design)
                return design, None
        trial = self.study.ask(self.dists)
        point = np.array([trial.params[k] for k in STRUCTURED_PARAMS], dtype=float)
        free = np.array(sorted(self.free))
        dist = (((self.x[free] - (point - self.lo) / self.span) ** 2).sum(axis=1))
        design = int(free[int(np.argmin(dist))])
        # The asked point is not what trains: FAIL it (TPE skips failed trials) and tell
        # the design's own point when its trial ends.
        trial.set_user_attr("mapped_to", self.table.design_ids[design])
        self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        self.free.discard(design)
        return design, None

    def tell(self, handle: Any, design: int, value: float, *, stopped: bool, epochs: int = 1
             ) -> None:
        """A completed design with its final val_acc; a stopped one PRUNED with the val_acc
        it was stopped at as its intermediate value, which TPE ranks pruned trials by (without
        it, every design ASHA stopped in a strong neighbourhood would count as the worst)."""
        states = self._optuna.trial.TrialState
        self.study.add_trial(self._optuna.trial.create_trial(
            params=self.points[design], distributions=self.dists,
            state=states.PRUNED if stopped else states.COMPLETE,
            value=None if stopped else value,
            intermediate_values={epochs: value} if stopped else None))
