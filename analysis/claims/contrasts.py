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
per seed, ``mean``, ``design_id``, and ``seed_ids`` when known) and returns a
verdicts.Estimate.

Pairing. A trial's seed fixes its data order and augmentation (evaluators.train), so seed s
of one design and seed s of another saw the same batches. Measured on the committed
records (test accuracy, a two-way design x seed decomposition): the seed index carries
20% of the within-design variance on table 1.1 (68 designs x 3 seeds, F = 18.0 on 2 and 134
dof), 15-16% on fig2 and fig3, 34% on table2 (6 designs: F = 4.0), none on table4. Pairing
removes that share from a contrast's variance but leaves its interval n - 1 degrees of
freedom instead of Welch's (about 2(n - 1) for two designs); at a 20% share the paired
interval is the narrower at the 99% level (Holm's) only from 11 seeds on (8 at 95%), so
seeds are paired by index where every design of a contrast has the same >= PAIR_MIN_SEEDS
seeds, and not at the 3 seeds of the committed sweeps (docs/analysis.md).

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

from analysis import stats
from analysis.claims.verdicts import GROUPS, SEEDS, Estimate

#: Share of the within-design seed variance that the seed index explains (table 1.1, test
#: accuracy at `cpu`; see the module docstring): what pairing removes from a contrast.
SEED_SHARE = 0.20
#: Pair seeds by index from this many shared seeds on: the smallest n at which
#: t_{n-1} * sqrt(1 - SEED_SHARE) < t_{2(n-1)} at the 99% level.
PAIR_MIN_SEEDS = 11


def _pool(d: pd.DataFrame, ids: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
    rows = d.set_index("design_id").loc[list(ids)]
    return list(rows["values"]), rows["mean"].to_numpy(dtype=float)


def paired_values(d: pd.DataFrame, ids: Sequence[str]) -> np.ndarray | None:
    """The designs' values as a (designs, seeds) matrix aligned by seed index, when every
    design has the same >= PAIR_MIN_SEEDS seeds; else None (no pairing)."""
    rows = d.set_index("design_id").loc[list(ids)]
    if "seed_ids" not in rows:
        return None
    sets = [tuple(sorted(int(x) for x in s)) for s in rows["seed_ids"]]
    if len(set(sets)) != 1 or len(sets[0]) < PAIR_MIN_SEEDS or len(set(sets[0])) < len(sets[0]):
        return None
    order = sets[0]
    return np.array([[dict(zip(map(int, seeds), vals, strict=True))[s] for s in order]
                     for seeds, vals in zip(rows["seed_ids"], rows["values"], strict=True)],
                    dtype=float)


def paired_bootstrap_means(matrix: np.ndarray, n_boot: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Bootstrap the design means, resampling seed indices jointly across designs (a
    design's seed s goes with every other design's seed s), residuals inflated by
    sqrt(n / (n - 1)) as in stats.bootstrap_means. Shape (n_boot, designs)."""
    n = matrix.shape[1]
    means = matrix.mean(axis=1)
    resid = (matrix - means[:, None]) * np.sqrt(n / (n - 1))
    idx = rng.integers(0, n, size=(n_boot, n))
    return means[None, :] + resid[:, idx].mean(axis=2).T


def _replicates(d: pd.DataFrame, ids: Sequence[str], n_boot: int, rng: np.random.Generator,
                weights: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """(bootstrap replicates of the design means, the interval's dof, paired?)."""
    values, _ = _pool(d, ids)
    matrix = paired_values(d, ids)
    if matrix is not None:
        return paired_bootstrap_means(matrix, n_boot, rng), float(matrix.shape[1] - 1), True
    return stats.bootstrap_means(values, n_boot, rng), stats.welch_dof(weights, values), False


def _seeds(values: Sequence[np.ndarray]) -> int:
    return int(min(len(v) for v in values)) if len(values) else 0


def linear(d: pd.DataFrame, weights: Mapping[str, float], *, n_boot: int,
           rng: np.random.Generator) -> Estimate:
    """sum_i w_i * mean_i over designs, unit: seeds within designs."""
    ids = list(weights)
    values, means = _pool(d, ids)
    w = np.array([weights[i] for i in ids], dtype=float)
    effect = float(w @ means)
    boot, dof, paired = _replicates(d, ids, n_boot, rng, w)
    reps = boot @ w
    n = int(sum(len(v) for v in values))
    return Estimate(effect, lambda level: stats.seed_interval(effect, reps, dof, level), n,
                    SEEDS, se=float(np.std(reps, ddof=1)), dof=dof, seeds=_seeds(values),
                    paired=paired)


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
    eps = 1e-9 * max(1.0, float(np.abs(means).max()))
    grad = np.array([(fn((means + eps * np.eye(len(ids))[j])[None, :])[0] - effect) / eps
                     for j in range(len(ids))])
    boot, dof, paired = _replicates(d, ids, n_boot, rng, np.round(grad, 6))
    reps = fn(boot)
    n = int(sum(len(v) for v in values))
    se = float(np.std(reps[np.isfinite(reps)], ddof=1))
    return Estimate(effect, lambda level: stats.seed_interval(effect, reps, dof, level), n,
                    SEEDS, se=se, dof=dof, seeds=_seeds(values), paired=paired)


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

    return Estimate(m, interval, k, unit, se=se, dof=float(k - 1))


def replicated(d: pd.DataFrame) -> pd.DataFrame:
    """Designs with at least two seeds: a bootstrap over one seed would invent certainty."""
    return d[d["n_seeds"] >= 2] if not d.empty else d


def seed_share(df: pd.DataFrame, metric: str = "test_acc") -> tuple[float, float, int, int]:
    """How much of the within-design seed variance the seed index carries: a two-way
    design x seed decomposition of the ok records of designs that have every seed.

    Returns (share, F, dof of seeds, dof of the residual): the seed variance component
    over itself plus the residual variance, floored at 0 (the SEED_SHARE measurement).
    """
    ok = df[df["status"].eq("ok")]
    table = ok.pivot_table(index="design_id", columns="seed", values=metric).dropna()
    d, s = table.shape
    resid = table.sub(table.mean(axis=1), axis=0)
    effects = resid.mean(axis=0)  # seed main effects
    e2 = float((resid.sub(effects, axis=1) ** 2).to_numpy().sum()) / ((d - 1) * (s - 1))
    ms_seed = d * float((effects**2).sum()) / (s - 1)
    var_seed = max(0.0, (ms_seed - e2) / d)
    return var_seed / (var_seed + e2), ms_seed / e2, s - 1, (d - 1) * (s - 1)
