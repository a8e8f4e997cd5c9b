"""The orders of the fixed-order searches: one function per order, named by the search's
registry entry (``SearchSpec.order``, studies.searches).

A sweep enqueues its plan's trials in this order (``studies.plan.Plan.ordered_pairs``) and a
replay proposes the table's designs in it (``analysis.replay.proposers``, one seed per
design), so the two cannot order a search differently. Pure Python: no Optuna, Ray or torch.

Every order function takes ``(designs, seeds, *, sampler_seed, scores)`` and returns every
(design, seed) pair once, in scheduling order; ``scores`` (one per design, the zero-cost
score of a search that ``needs_scores``) is None for the others. Adding a fixed-order search
is its registry entry and its function here (docs/internals.md).

Example:
    >>> fixed_order("grid", ("a", "b"), (0, 1), sampler_seed=0)
    [('a', 0), ('b', 0), ('a', 1), ('b', 1)]
    >>> fixed_order("random", ("a", "b", "c"), (0, 1), sampler_seed=1)
    [('b', 0), ('b', 1), ('c', 0), ('c', 1), ('a', 0), ('a', 1)]
    >>> fixed_order("zc-order", ("a", "b", "c"), (0,), sampler_seed=0,
    ...             scores=(0.5, float("nan"), 2.0))
    [('c', 0), ('a', 0), ('b', 0)]
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from studies.searches import search_spec

D = TypeVar("D")  # a design: its id in a sweep, its index in the table in a replay
Pairs = list[tuple[D, int]]


def fixed_order(search: str, designs: Sequence[D], seeds: Sequence[int], *,
                sampler_seed: int, scores: Sequence[float] | None = None) -> Pairs:
    """Every (design, seed) of ``designs`` x ``seeds`` in the order of ``search``: the
    function of this module that its registry entry names. ValueError for a search with no
    fixed order (a sampler chooses), or one that needs scores called without them."""
    spec = search_spec(search)
    if spec.order is None:
        raise ValueError(f"search {search!r} has no fixed order (a sampler chooses)")
    if spec.needs_scores and (scores is None or len(scores) != len(designs)):
        raise ValueError(f"search {search!r} orders by score: one score per design needed")
    order: Callable[..., Pairs] = globals()[spec.order]
    return order(designs, seeds, sampler_seed=sampler_seed, scores=scores)


def grid_order(designs: Sequence[D], seeds: Sequence[int], *, sampler_seed: int,
               scores: Sequence[float] | None) -> Pairs:
    """Seed-major: every design once in the given order before any design twice, so a sweep
    stopped part-way (or cut by ``max_trials``) has covered the whole space at its first
    seeds; the 54-trial fig2 sweep ran design-major and an interruption left some designs
    with three seeds and most with none."""
    return [(d, s) for s in seeds for d in designs]


def random_order(designs: Sequence[D], seeds: Sequence[int], *, sampler_seed: int,
                 scores: Sequence[float] | None) -> Pairs:
    """The designs in a permutation drawn from ``sampler_seed`` (sampling without
    replacement, which on a finite list beats Optuna's RandomSampler: it never proposes a
    design twice), all seeds of a design together."""
    shuffled = list(designs)
    random.Random(sampler_seed).shuffle(shuffled)
    return [(d, s) for d in shuffled for s in seeds]


def score_order(designs: Sequence[D], seeds: Sequence[int], *, sampler_seed: int,
                scores: Sequence[float] | None) -> Pairs:
    """The designs in descending score, ties and missing (NaN) scores in the given order,
    the missing last; all seeds of a design together. Learns nothing: what the score alone
    is worth."""
    assert scores is not None  # fixed_order checks it
    key = [_descending(float(s)) for s in scores]
    ranked = sorted(range(len(designs)), key=key.__getitem__)  # stable: ties keep the order
    return [(designs[i], s) for i in ranked for s in seeds]


def _descending(score: float) -> float:
    """A sort key putting ``score`` in descending order: NaN after every number (-inf too),
    infinities as the largest finite floats (numpy's nan_to_num, which the replays used)."""
    if math.isnan(score):
        return math.inf
    big = sys.float_info.max
    return -min(max(score, -big), big)
