"""Pareto fronts of accuracy (maximised) against a cost (minimised), and their hypervolume.

The 2-D hypervolume is computed exactly by a sweep over the front sorted by cost. Optuna has a
hypervolume routine, but only in the private ``optuna._hypervolume`` module, which may change
without notice; the 2-D case is a few lines and easy to check by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.claims import selection
from analysis.load import aggregate

COSTS = ("params", "flops", "latency_b1_ms")
REFERENCE_MARGIN = 1.1  # default reference cost: 10% beyond the costliest design of the slice
REFERENCE_ACCURACY = 0.0  # default reference accuracy: fixed, so fronts compare across runs


@dataclass(frozen=True)
class ParetoFront:
    """The non-dominated designs of one (fidelity, dataset) for one cost.

    Attributes:
        fidelity, dataset: the slice.
        metric: the accuracy maximised (mean over ok seeds).
        cost: the cost minimised.
        reference: (cost, accuracy) point the hypervolume is measured against.
        ids: design ids on the front, by increasing cost.
        costs, values: their cost and mean accuracy, aligned with ids.
        hypervolume: area dominated by the front and bounded by the reference point.
        n_points: designs considered (ok, with a finite cost).
    """

    fidelity: str
    dataset: str
    metric: str
    cost: str
    reference: tuple[float, float]
    ids: tuple[str, ...]
    costs: tuple[float, ...]
    values: tuple[float, ...]
    hypervolume: float
    n_points: int


def non_dominated(points: np.ndarray) -> np.ndarray:
    """True for the rows of ``points`` (n points x m objectives, all minimised) that no
    other row dominates: <= in every objective and < in one. The one dominance rule of the
    analysis (the fronts here, the benchmark table's ``pareto``).

    Identical points do not dominate each other, so a tie keeps every one on the front.

    Example:
        >>> non_dominated(np.array([[1, 5], [2, 2], [2, 3], [1, 5]])).tolist()
        [True, True, False, True]
    """
    x = np.asarray(points, dtype=float)
    dominates = (x[None, :, :] <= x[:, None, :]).all(-1) & (x[None, :, :] < x[:, None, :]).any(-1)
    return ~dominates.any(axis=1)  # dominates[i, j]: j dominates i


def pareto_mask(costs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """True for points no other point dominates (cost <= and value >=, one strictly)."""
    return non_dominated(np.column_stack([np.asarray(costs, float), -np.asarray(values, float)]))


def hypervolume_2d(costs: np.ndarray, values: np.ndarray, reference: tuple[float, float]) -> float:
    """Exact area dominated by the points, bounded by reference = (max cost, min value).

    Sorted by cost, each front point owns the strip from its cost to the next front point's
    (or the reference cost), of height value - reference value. Points beyond the reference
    contribute nothing.
    """
    c_ref, v_ref = reference
    c = np.asarray(costs, dtype=float)
    v = np.asarray(values, dtype=float)
    keep = (c < c_ref) & (v > v_ref)
    c, v = c[keep], v[keep]
    if c.size == 0:
        return 0.0
    on = pareto_mask(c, v)
    order = np.lexsort((-v[on], c[on]))
    fc, fv = c[on][order], v[on][order]
    widths = np.diff(np.append(fc, c_ref))
    return float(np.sum(widths * (fv - v_ref)))


def pareto_front(
    points: pd.DataFrame,
    *,
    cost: str,
    metric: str,
    reference: tuple[float, float] | None = None,
    fidelity: str = "",
    dataset: str = "",
) -> ParetoFront:
    """The front of ``points`` (one row per design: design_id, the cost, the metric).

    Args:
        points: e.g. one (fidelity, dataset) slice of aggregate().
        cost: column minimised.
        metric: column maximised.
        reference: hypervolume reference (cost, accuracy); default
            (REFERENCE_MARGIN * max cost, REFERENCE_ACCURACY).
        fidelity, dataset: labels carried into the result.
    """
    p = points[np.isfinite(points[cost].astype(float)) & np.isfinite(points[metric].astype(float))]
    c, v = p[cost].to_numpy(dtype=float), p[metric].to_numpy(dtype=float)
    if reference is None:
        reference = (REFERENCE_MARGIN * float(c.max()) if c.size else 0.0, REFERENCE_ACCURACY)
    mask = pareto_mask(c, v) if c.size else np.zeros(0, bool)
    front = (
        p[mask].assign(_c=c[mask], _v=v[mask]).sort_values(["_c", "_v"], ascending=[True, False])
    )
    return ParetoFront(
        fidelity=fidelity,
        dataset=dataset,
        metric=metric,
        cost=cost,
        reference=(float(reference[0]), float(reference[1])),
        ids=tuple(front["design_id"].astype(str)),
        costs=tuple(map(float, front["_c"])),
        values=tuple(map(float, front["_v"])),
        hypervolume=hypervolume_2d(c, v, reference),
        n_points=int(c.size),
    )


def pareto_fronts(
    df: pd.DataFrame, *, costs: tuple[str, ...] = COSTS, metric: str | None = None
) -> list[ParetoFront]:
    """Fronts of mean accuracy vs each cost, for every (fidelity, dataset) of a results frame.

    Args:
        df: the results DataFrame (load_results); aggregated over seeds here.
        costs: cost columns; latency_b1_ms is the median over ok seeds.
        metric: test_acc or val_acc; default as in check_claims (selection.pick_metric).
    """
    agg = aggregate(df)
    out = []
    for fid, ds, rows in selection.slices(df):
        m = selection.pick_metric(rows, metric)
        sl = agg[agg["fidelity"].eq(fid) & agg["dataset"].eq(ds) & agg[f"{m}_n"].gt(0)]
        for cost in costs:
            out.append(pareto_front(sl, cost=cost, metric=f"{m}_mean", fidelity=fid, dataset=ds))
    return out
