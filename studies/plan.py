"""What a sweep will evaluate: designs x seeds at one fidelity on one dataset.

A :class:`Plan` is pure data, fixed before anything starts, and the same command always
gives the same plan; that is what makes a re-run find (and skip) the trials it already
recorded. One trial is one (design, seed) pair, so the store holds one record per
(design, fidelity, dataset, seed) and an Optuna trial maps to exactly one record.

Example:
    >>> p = Plan(name="x", design_ids=("a", "b"), seeds=parse_seeds("2"), fidelity="smoke",
    ...          dataset="synthetic", search="grid", max_trials=3)
    >>> p.ordered_pairs(), p.target
    ([('a', 0), ('b', 0), ('a', 1)], 3)
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluators.record import trial_key
from studies.orders import fixed_order
from studies.searches import SEARCHES, sweep_search


@dataclass(frozen=True)
class Plan:
    """The trials of one sweep.

    Attributes:
        name: the run's name; also the Optuna study's name.
        design_ids: canonical ids, in plan order (enumeration order, or the preset's).
        seeds: training seeds; each design is trained once per seed.
        fidelity: the fidelity's name (records are keyed by it).
        dataset: the dataset's name.
        search: one of studies.searches.SWEEP_SEARCHES.
        max_trials: at most this many (design, seed) trials in the run directory; None = all.
        sampler_seed: seeds Optuna's sampler and the random order, so a re-run proposes alike.
    """

    name: str
    design_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    fidelity: str
    dataset: str
    search: str = "grid"
    max_trials: int | None = None
    sampler_seed: int = 0

    def __post_init__(self) -> None:
        sweep_search(self.search)  # ValueError: unknown, or run in replays only
        if not self.design_ids or not self.seeds:
            raise ValueError("a plan needs at least one design and one seed")
        if len(set(self.design_ids)) != len(self.design_ids):
            raise ValueError("design ids repeat in the plan")

    @property
    def adaptive(self) -> bool:
        """True when Optuna's sampler (TPE, NSGA-II) chooses designs as results arrive."""
        return SEARCHES[self.search].adaptive

    @property
    def target(self) -> int:
        """How many (design, seed) trials the run directory should hold when done."""
        total = len(self.design_ids) * len(self.seeds)
        return total if self.max_trials is None else min(self.max_trials, total)

    def key(self, design_id: str, seed: int) -> str:
        """The record key of one trial of this plan."""
        return trial_key(design_id, self.fidelity, self.dataset, seed)

    def all_pairs(self) -> dict[str, tuple[str, int]]:
        """Every (design, seed) of the plan by key, design-major."""
        return {self.key(d, s): (d, s) for d in self.design_ids for s in self.seeds}

    def ordered_pairs(self) -> list[tuple[str, int]]:
        """The trials of a fixed-order search (grid, random: the order function its registry
        entry names, studies.orders), in scheduling order, first ``target``. Adaptive
        searches choose as they go; for them this is the plan order, seed-major, used only
        to list the keys."""
        if self.adaptive:
            return [(d, s) for s in self.seeds for d in self.design_ids]
        pairs = fixed_order(self.search, self.design_ids, self.seeds,
                            sampler_seed=self.sampler_seed)
        return pairs[: self.target]


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds as a user writes them: ``3`` -> (0, 1, 2) (a count: ``1`` is seed 0 alone);
    ``0,1,2`` or ``5,`` -> those seeds. An empty entry (``0,,1``) is refused.

    Raises:
        ValueError: naming the value and the accepted forms.
    """
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return tuple(range(n))
        parts = text.split(",")
        if not parts[-1].strip():  # "5," is seed 5 alone; an empty entry elsewhere
            parts.pop()  # ("0,,1") is a typo, not a seed
        seeds = tuple(int(s) for s in parts)  # int("") raises: refused
        if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
            raise ValueError
        return seeds
    except ValueError:
        # "--seeds 0" meaning seed 0 is a natural slip: say how to write it.
        hint = " (seed 0 alone: --seeds 0,)" if text.strip() == "0" else ""
        raise ValueError(f"--seeds {text!r}: expected a count N >= 1 (seeds 0..N-1) or "
                         f"distinct seeds >= 0 like 0,1,2{hint}") from None
