"""The registry of searches: one :class:`SearchSpec` per search, for sweeps and replays alike.

The sweeps (``studies/run.py --search``: studies.plan, studies.sampling, studies.search) and
the replays of searches against a table (analysis.replay) read their searches here, so the
two cannot list different ones silently: a search that only replays run says why, and the
sweep's command line refuses it with that reason. Imports nothing of Optuna, Ray or torch.
Adding a search is an entry here and its implementation (docs/internals.md): the sampler
function of studies.sampling its ``sampler`` names, or, for a fixed-order search, the order
function of studies.orders its ``order`` names, which sweeps and replays both read.

Example:
    >>> SWEEP_SEARCHES
    ('grid', 'random', 'tpe', 'nsga2')
    >>> SEARCHES["zc-order"].needs_scores, SEARCHES["tpe"].adaptive
    (True, True)
    >>> sweep_search("tpe-struct")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: search 'tpe-struct' runs in replays only (...); a sweep accepts: grid, ...
"""

from __future__ import annotations

from dataclasses import dataclass

#: How a search proposes designs (each is a proposer of analysis.replay.proposers):
#: "order": a fixed order of the designs (studies.orders; the plan enqueues it in a sweep,
#: the replay proposes it); "sampler": an
#: Optuna sampler over the design ids, two objectives (val_acc up, params down);
#: "structured": TPE over the design's fields, each point mapped to the nearest untried
#: design.
PROPOSES = ("order", "sampler", "structured")

_STRUCTURED_ONLY_IN_REPLAYS = (
    "the sweep's searcher proposes design ids, and only the replay's proposer maps a point "
    "of the design's fields to the nearest untried design")


@dataclass(frozen=True)
class SearchSpec:
    """What one search is and where it runs."""

    name: str
    proposes: str  # one of PROPOSES
    sampler: str | None  # the function of studies.sampling that makes its Optuna sampler,
    #                      called (seed, n_trials); None: it asks no sampler
    help: str  # what it does, for the command lines
    needs_scores: bool = False  # reads the designs' zero-cost scores (a replay's with_scores)
    replay_only: str | None = None  # None: sweeps run it too; else why a sweep cannot
    order: str | None = None  # the function of studies.orders giving its (design, seed)
    #                           order; set exactly when ``proposes`` is "order"

    def __post_init__(self) -> None:
        if self.proposes not in PROPOSES:
            raise ValueError(f"search {self.name!r}: proposes {self.proposes!r}, not one of "
                             f"{', '.join(PROPOSES)}")
        if (self.proposes == "order") != (self.order is not None):
            raise ValueError(f"search {self.name!r}: an order function exactly when it "
                             "proposes a fixed order")
        if self.replay_only is None and self.sampler is None:  # a sweep opens its study
            raise ValueError(f"search {self.name!r}: a sweep runs it, so it names a sampler")

    @property
    def adaptive(self) -> bool:
        """True when a sampler chooses designs as results arrive (TPE, NSGA-II)."""
        return self.proposes != "order"


_SPECS = (
    SearchSpec("grid", "order", "random_sampler", "every design, in plan order",
               order="grid_order"),
    SearchSpec("random", "order", "random_sampler",
               "the designs in a permutation drawn from the sampler seed",
               order="random_order"),
    SearchSpec("tpe", "sampler", "tpe_sampler",
               "Optuna's TPE over the design ids (accuracy vs params)"),
    SearchSpec("nsga2", "sampler", "nsga2_sampler",
               "Optuna's NSGA-II over the design ids (accuracy vs params)"),
    SearchSpec("tpe-struct", "structured", "make_structured_sampler",
               "multivariate TPE over (L, log width, log params)",
               replay_only=_STRUCTURED_ONLY_IN_REPLAYS),
    SearchSpec("zc-tpe-struct", "structured", "make_structured_sampler",
               "tpe-struct whose startup proposals are the best zero-cost scored designs",
               needs_scores=True, replay_only=_STRUCTURED_ONLY_IN_REPLAYS),
    SearchSpec("zc-order", "order", None, "the designs in descending zero-cost score",
               needs_scores=True, order="score_order",
               replay_only="sweeps record no zero-cost scores to order the designs by"),
)

#: Every search by name: the sweeps' first, in the order the replays run them by default.
SEARCHES: dict[str, SearchSpec] = {s.name: s for s in _SPECS}
#: The searches a sweep runs (``studies/run.py --search``); the replays' default set.
SWEEP_SEARCHES = tuple(s.name for s in _SPECS if s.replay_only is None)


def search_spec(name: str) -> SearchSpec:
    """The spec of search ``name``; ValueError naming the accepted ones."""
    try:
        return SEARCHES[name]
    except KeyError:
        raise ValueError(f"unknown search {name!r}; accepted: {', '.join(SEARCHES)}") from None


def sweep_search(name: str) -> SearchSpec:
    """The spec of a search a sweep runs; ValueError (one line) for an unknown search or one
    that replays alone run, with the registry's reason."""
    spec = SEARCHES.get(name)
    accepted = ", ".join(SWEEP_SEARCHES)
    if spec is None:
        raise ValueError(f"unknown search {name!r}; accepted: {accepted}")
    if spec.replay_only is not None:
        raise ValueError(f"search {name!r} runs in replays only ({spec.replay_only}); "
                         f"a sweep accepts: {accepted}")
    return spec
