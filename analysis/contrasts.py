"""Estimates of comparisons between designs, in the two units of inference the claims use.

- Seeds within designs: the effect is a function of design means; its interval comes from a
  bootstrap over each design's seeds (stats.bootstrap_means), widened by t at the
  Welch-Satterthwaite degrees of freedom (stats.seed_interval). It says how sure we are about
  *these* designs at this fidelity.
- Groups: when a claim compares designs in several equal-parameter groups (Table 2's three
  budgets, Figure 2's pairs), the group differences are the observations and a one-sample t
  interval over them says whether the effect holds *across* groups. With three groups it has
  2 degrees of freedom and is wide; both are reported.

Every function takes design rows as selection.designs() makes them (``values``: the metric
per seed, ``mean``, ``design_id``) and returns a verdicts.Estimate.

Example:
    >>> import numpy as np, pandas as pd
    >>> d = pd.DataFrame({"design_id": ["a", "b"], "values": [np.array([.5, .6, .7]),
    ...                   np.array([.4, .5, .6])]}).assign(mean=lambda x: x["values"].map(np.mean))
    >>> est = linear(d, {"a": 1.0, "b": -1.0}, n_boot=2000, rng=np.random.default_rng(0))
    >>> round(est.effect, 3), est.unit, est.n
    (0.1, 'seeds within designs', 6)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import stats
from .verdicts import GROUPS, SEEDS, Estimate


def _pool(d: pd.DataFrame, ids: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
    rows = d.set_index("design_id").loc[list(ids)]
    return list(rows["values"]), rows["mean"].to_numpy(dtype=float)


def linear(d: pd.DataFrame, weights: Mapping[str, float], *, n_boot: int,
           rng: np.random.Generator) -> Estimate:
    """sum_i w_i * mean_i over designs, unit: seeds within designs."""
    ids = list(weights)
    values, means = _pool(d, ids)
    w = np.array([weights[i] for i in ids], dtype=float)
    effect = float(w @ means)
    reps = stats.bootstrap_means(values, n_boot, rng) @ w
    dof = stats.welch_dof(w, values)
    n = int(sum(len(v) for v in values))
    return Estimate(effect, lambda level: stats.seed_interval(effect, reps, dof, level), n,
                    SEEDS)


def statistic(d: pd.DataFrame, ids: Sequence[str], fn: Callable[[np.ndarray], np.ndarray],
              *, n_boot: int, rng: np.random.Generator) -> Estimate:
    """A nonlinear function of design means (e.g. a difference of maxima), over seeds.

    ``fn`` maps an array of design means (last axis: ``ids`` in order) to the effect,
    row-wise. The percentile interval of the bootstrap is widened by t at the Welch dof of
    the two designs the point estimate rests on (its largest gradient entries), as
    stats.seed_interval does for linear effects.
    """
    values, means = _pool(d, ids)
    effect = float(fn(means[None, :])[0])
    reps = fn(stats.bootstrap_means(values, n_boot, rng))
    eps = 1e-9 * max(1.0, float(np.abs(means).max()))
    grad = np.array([(fn((means + eps * np.eye(len(ids))[j])[None, :])[0] - effect) / eps
                     for j in range(len(ids))])
    dof = stats.welch_dof(np.round(grad, 6), values)
    n = int(sum(len(v) for v in values))
    return Estimate(effect, lambda level: stats.seed_interval(effect, reps, dof, level), n,
                    SEEDS)


def over_groups(differences: Sequence[float], unit: str = GROUPS) -> Estimate:
    """Mean of per-group differences with a one-sample t interval: unit, the groups (name
    them: budget pairs, depths, bar pairs)."""
    from scipy import stats as st

    x = np.asarray(differences, dtype=float)
    m, k = float(x.mean()), len(x)
    se = float(x.std(ddof=1) / np.sqrt(k)) if k >= 2 else float("nan")

    def interval(level: float) -> tuple[float, float]:
        if not (k >= 2 and np.isfinite(se)):
            return float("nan"), float("nan")
        t = float(st.t.ppf(0.5 + level / 2.0, k - 1))
        return m - t * se, m + t * se

    return Estimate(m, interval, k, unit)


def replicated(d: pd.DataFrame) -> pd.DataFrame:
    """Designs with at least two seeds: a bootstrap over one seed would invent certainty."""
    return d[d["n_seeds"] >= 2] if not d.empty else d
