"""How Optuna proposes designs: the one parameter, the two objectives and the samplers.

The sweep (studies.study, studies.search) and the replay of searches against a table
(analysis.proposers) both take their settings from here, so a replayed TPE or NSGA-II
search is the one a sweep runs. Imports Optuna only (no Ray, no torch).

Example:
    >>> sampler = make_sampler("nsga2", seed=0, n_trials=40)
    >>> type(sampler).__name__, PARAM, DIRECTIONS
    ('NSGAIISampler', 'design_id', ('maximize', 'minimize'))
"""

from __future__ import annotations

import optuna

PARAM = "design_id"  # the one Optuna parameter: a categorical over the plan's design ids
DIRECTIONS = ("maximize", "minimize")  # (val_acc, params): the Pareto front of Figure 3's kind
METRIC_NAMES = ("val_acc", "params")


def make_sampler(search: str, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    """The study's sampler for ``search``. grid/random orders are made by the plan; their
    RandomSampler only serves the rare ask() that finds no enqueued trial (another driver
    took it)."""
    if search == "tpe":
        startup = min(10, max(2, n_trials // 4))  # random proposals before TPE models any
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if search == "nsga2":
        # A population of about a quarter of the trials, so a sweep sees a few generations.
        return optuna.samplers.NSGAIISampler(seed=seed,
                                             population_size=min(50, max(4, n_trials // 4)))
    return optuna.samplers.RandomSampler(seed=seed)
