"""How Optuna proposes designs: the one parameter, the two objectives and the samplers.

The sweep (studies.study, studies.search) and the replay of searches against a table
(analysis.replay.proposers) both take their settings from here, so a replayed TPE or NSGA-II
search is the one a sweep runs. Imports Optuna only (no Ray, no torch).

The structured searches (``tpe-struct``, ``zc-tpe-struct``) propose a point of the design's
own fields instead of an id (:data:`STRUCTURED_PARAMS`: L, log width, log params), so TPE
can learn that neighbouring designs score alike; the caller maps each point to the nearest
design not tried yet (analysis.replay.proposers).

Example:
    >>> sampler = make_sampler("nsga2", seed=0, n_trials=40)
    >>> type(sampler).__name__, PARAM, DIRECTIONS
    ('NSGAIISampler', 'design_id', ('maximize', 'minimize'))
    >>> design_point({"L": 3, "width": 144, "params": 39322})
    {'L': 3, 'log_width': 4.969813299576001, 'log_params': 10.579539437667437}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from studies.searches import search_spec

PARAM = "design_id"  # the one Optuna parameter: a categorical over the plan's design ids
DIRECTIONS = ("maximize", "minimize")  # (val_acc, params): the Pareto front of Figure 3's kind
METRIC_NAMES = ("val_acc", "params")


def startup_trials(n_trials: int) -> int:
    """Random proposals before TPE models any: a quarter of the trials, 2 to 10.

    >>> startup_trials(3), startup_trials(20), startup_trials(400)
    (2, 5, 10)
    """
    return min(10, max(2, n_trials // 4))


def make_sampler(search: str, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    """The study's sampler for ``search``: the function of this module that its registry
    entry (studies.searches) names."""
    factory = search_spec(search).sampler
    if factory is None:
        raise ValueError(f"search {search!r} asks no sampler")
    return globals()[factory](seed, n_trials)


def tpe_sampler(seed: int, n_trials: int) -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(n_trials))


def nsga2_sampler(seed: int, n_trials: int) -> optuna.samplers.NSGAIISampler:
    # A population of about a quarter of the trials, so a sweep sees a few generations.
    return optuna.samplers.NSGAIISampler(seed=seed,
                                         population_size=min(50, max(4, n_trials // 4)))


def random_sampler(seed: int, n_trials: int) -> optuna.samplers.RandomSampler:
    """grid/random orders are studies.orders' (the plan enqueues them); their RandomSampler
    only serves the rare ask() that finds no enqueued trial (another driver took it)."""
    return optuna.samplers.RandomSampler(seed=seed)


#: The structured search's parameters: a design's fields, not its id.
STRUCTURED_PARAMS = ("L", "log_width", "log_params")
STRUCTURED_DIRECTION = "maximize"  # val_acc alone: the structured search looks for the best


def design_point(info: Mapping[str, Any]) -> dict[str, float]:
    """A design (its describe() fields) as a point of the structured space."""
    return {"L": int(info["L"]), "log_width": math.log(info["width"]),
            "log_params": math.log(info["params"])}


def structured_distributions(points: Sequence[Mapping[str, float]]
                             ) -> dict[str, optuna.distributions.BaseDistribution]:
    """The box spanned by ``points`` (the designs of a plan or a table)."""
    ls = [int(p["L"]) for p in points]
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        "L": optuna.distributions.IntDistribution(min(ls), max(ls))}
    for name in STRUCTURED_PARAMS[1:]:
        lo, hi = min(p[name] for p in points), max(p[name] for p in points)
        dists[name] = optuna.distributions.FloatDistribution(lo, hi if hi > lo else lo + 1e-9)
    return dists


def make_structured_sampler(seed: int, n_trials: int) -> optuna.samplers.TPESampler:
    """TPE over STRUCTURED_PARAMS: multivariate (L, width and params move together: a design
    at a budget trades width for depth), with the startup rule of :func:`make_sampler`; a
    zero-cost warm start replaces those random startup proposals by the best-scored
    designs."""
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(n_trials),
                                      multivariate=True)
