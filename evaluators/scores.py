"""The registry of zero-cost scores: one :class:`ScoreSpec` per score of a ``zc`` record.

The scorer (:func:`evaluators.zero_cost.score_design`) computes every score here with the
function of :mod:`evaluators.proxies` its entry names, in this order; the analysis
(analysis.proxies, the surrogate) reads their names and kinds here, without torch. Adding a
score is an entry here and its function (docs/internals.md).

Example:
    >>> PROXIES
    ('synflow', 'naswot', 'snip', 'grad_norm', 'jacob_cov', 'zen')
    >>> SCORES["snip"].compute, SCORES["params"].needs, SURROGATE_LOG
    ('gradient_scores', 'design', ('synflow', 'snip', 'grad_norm'))
"""

from __future__ import annotations

from dataclasses import dataclass

#: What a score reads. "design": describe() alone (no net, not timed); "weights": the net at
#: its initialisation; "batch": that net and the fixed batch's images; "labels": the batch's
#: labels too; "gaussian": Gaussian inputs and weights drawn from the seed (Zen-score);
#: "timing": timed forward passes of the net (latency).
NEEDS = ("design", "weights", "batch", "labels", "gaussian", "timing")
#: What a score is, as the reports group it: a generic zero-cost proxy, a cost baseline,
#: the paper's quantities (``theory`` is the retired bottleneck score, kept so records of one
#: fidelity keep one meaning).
KINDS = ("proxy", "cost", "paper")


@dataclass(frozen=True)
class ScoreSpec:
    """What one score is, what it reads, and which function computes it."""

    name: str
    kind: str  # one of KINDS
    needs: str  # one of NEEDS
    compute: str  # the function of evaluators.proxies, called with a ScoreInputs; it returns
    #               the score, or a dict of the scores that share it (computed once)
    surrogate: str | None = None  # a feature of the surrogate: "log" (positive, spanning
    #                               decades) or "raw"; None: not one


_SPECS = (
    ScoreSpec("synflow", "proxy", "weights", "synflow_score", surrogate="log"),
    ScoreSpec("naswot", "proxy", "batch", "naswot_score", surrogate="raw"),
    ScoreSpec("snip", "proxy", "labels", "gradient_scores", surrogate="log"),
    ScoreSpec("grad_norm", "proxy", "labels", "gradient_scores", surrogate="log"),
    ScoreSpec("jacob_cov", "proxy", "batch", "gradient_scores", surrogate="raw"),
    ScoreSpec("zen", "proxy", "gaussian", "zen_score", surrogate="raw"),
    ScoreSpec("params", "cost", "design", "design_scores"),
    ScoreSpec("flops", "cost", "design", "design_scores"),
    ScoreSpec("latency_b1_ms", "cost", "timing", "latency_scores"),
    ScoreSpec("latency_b64_ms", "cost", "timing", "latency_scores"),
    ScoreSpec("width", "paper", "design", "design_scores"),
    ScoreSpec("non_sparsity", "paper", "design", "design_scores"),
    ScoreSpec("density", "paper", "design", "design_scores"),
    ScoreSpec("balance_deviation", "paper", "design", "design_scores"),
    ScoreSpec("theory", "paper", "design", "design_scores", surrogate="raw"),
)

#: Every score by name, in the order a record holds them.
SCORES: dict[str, ScoreSpec] = {s.name: s for s in _SPECS}
PROXIES, COSTS, PAPER = (tuple(s.name for s in _SPECS if s.kind == k) for k in KINDS)
#: The surrogate's zero-cost features: on a log scale, and as they are.
SURROGATE_LOG, SURROGATE_RAW = (tuple(s.name for s in _SPECS if s.surrogate == k)
                                for k in ("log", "raw"))


def compute_groups() -> list[tuple[str, tuple[str, ...]]]:
    """(function, the scores it computes) in registry order: each function once.

    >>> compute_groups()[2]
    ('gradient_scores', ('snip', 'grad_norm', 'jacob_cov'))
    """
    groups: dict[str, list[str]] = {}
    for s in _SPECS:
        groups.setdefault(s.compute, []).append(s.name)
    return [(f, tuple(names)) for f, names in groups.items()]
