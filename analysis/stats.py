"""Numerical kernels of the claim tests: seed bootstrap, least squares, quadratic fits, verdicts.

Everything here is numpy (and scipy.stats for t quantiles); no pandas, so the kernels are easy
to test on plain arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"


def bootstrap_means(
    groups: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap the mean of each group of seed replicates, resampling seeds within each group.

    Residuals are inflated by sqrt(n / (n - 1)) before resampling, so the bootstrap variance of
    a mean is the unbiased s^2 / n instead of the plug-in (n - 1) / n of it: with the 2-5 seeds
    a sweep affords, the plain bootstrap is visibly too narrow (see also seed_interval).

    Args:
        groups: one 1-D array of per-seed values per design.
        n_boot: number of bootstrap replicates.
        rng: the generator; pass a fixed seed for reproducible intervals.

    Returns:
        Array of shape (n_boot, len(groups)); column j holds replicates of mean(groups[j]).
    """
    out = np.empty((n_boot, len(groups)))
    for j, values in enumerate(groups):
        x = np.asarray(values, dtype=float)
        n, m = len(x), float(x.mean())
        if n < 2:
            out[:, j] = m  # no seed spread to resample; callers drop such designs first
            continue
        resid = (x - m) * np.sqrt(n / (n - 1))
        out[:, j] = m + resid[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    return out


def percentile_interval(samples: np.ndarray, level: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap replicates, ignoring non-finite ones."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    return float(np.quantile(s, tail)), float(np.quantile(s, 1.0 - tail))


def welch_dof(weights: np.ndarray, groups: Sequence[np.ndarray]) -> float:
    """Welch-Satterthwaite degrees of freedom of sum_i w_i * mean(groups[i]).

    Infinite when the groups show no spread (noise-free data), so no widening happens.
    """
    terms, den = 0.0, 0.0
    for w, g in zip(weights, groups, strict=True):
        x = np.asarray(g, dtype=float)
        if len(x) < 2 or w == 0:
            continue
        t = w * w * float(np.var(x, ddof=1)) / len(x)
        terms += t
        den += t * t / (len(x) - 1)
    return terms * terms / den if den > 0 else float("inf")


def seed_interval(
    estimate: float, replicates: np.ndarray, dof: float, level: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile interval of seed-bootstrap replicates, widened about the estimate by
    t_dof / z.

    With 2-5 seeds per design the percentile bootstrap treats the seed variance as known and
    decides on pure noise ~10% of the time instead of 5%; widening by the t quantile at the
    Welch-Satterthwaite degrees of freedom brings that back to <= 5% (tests check it).
    """
    from scipy import stats

    lo, hi = percentile_interval(replicates, level)
    if not np.isfinite(dof):
        return lo, hi
    q = 0.5 + level / 2.0
    f = float(stats.t.ppf(q, max(dof, 1.0)) / stats.norm.ppf(q))
    return estimate - (estimate - lo) * f, estimate + (hi - estimate) * f


def verdict_rule(ci_low: float, ci_high: float, *, sign: int = 1) -> str:
    """The one verdict rule: the interval must exclude the null (zero) to decide.

    Args:
        ci_low: lower end of the interval of the effect.
        ci_high: upper end.
        sign: +1 when the paper claims a positive effect, -1 when it claims a negative one
            (e.g. a negative curvature for "concave").

    Returns:
        'supported' when the whole interval lies on the claimed side of zero, 'not supported'
        when it lies wholly on the other side, else 'inconclusive'.
    """
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return INCONCLUSIVE
    lo, hi = sorted((sign * ci_low, sign * ci_high))
    if lo > 0:
        return SUPPORTED
    if hi < 0:
        return NOT_SUPPORTED
    return INCONCLUSIVE


@dataclass(frozen=True)
class LinearFit:
    """Ordinary least squares with t-intervals for each coefficient."""

    coef: tuple[float, ...]
    se: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    dof: int


def least_squares(X: np.ndarray, y: np.ndarray, level: float = CONFIDENCE) -> LinearFit:
    """OLS via numpy lstsq; intervals are coef +- t_{dof} * se with se from s^2 (X'X)^-1.

    Raises:
        ValueError: when X is rank-deficient or leaves fewer than one residual degree of
            freedom (callers turn this into an 'inconclusive' verdict).
    """
    from scipy import stats

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    rank = np.linalg.matrix_rank(X)
    if rank < p:
        raise ValueError(f"design matrix has rank {rank} < {p} columns (collinear covariates)")
    dof = n - p
    if dof < 1:
        raise ValueError(f"{n} points for {p} coefficients leave no residual degrees of freedom")
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    s2 = float(resid @ resid) / dof
    se = np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X)))
    t = float(stats.t.ppf(0.5 + level / 2.0, dof))
    return LinearFit(
        coef=tuple(map(float, coef)),
        se=tuple(map(float, se)),
        ci_low=tuple(map(float, coef - t * se)),
        ci_high=tuple(map(float, coef + t * se)),
        dof=dof,
    )


def quadratic_coefs(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Least-squares fit y = a x^2 + b x + c for each row of Y at the same abscissae x.

    Args:
        x: shape (m,), at least 3 distinct values.
        Y: shape (m,) or (B, m); one curve per row (bootstrap replicates).

    Returns:
        Shape (3,) or (B, 3): the columns are a, b, c. 2a is the curvature.

    Example:
        >>> quadratic_coefs(np.array([3.0, 4.0, 5.0]), np.array([0.406, 0.406, 0.406]))
        array([0.   , 0.   , 0.406])
    """
    x = np.asarray(x, dtype=float)
    Y = np.asarray(Y, dtype=float)
    coefs = Y @ np.linalg.pinv(np.vander(x, 3)).T
    # Least squares leaves a residue of ~1e-16 where the exact answer is 0 (equal means give
    # a flat line, a = b = 0), and its sign and digits vary with the BLAS build. A term whose
    # whole contribution over the measured range is below 1e-9 of the data's scale (accuracy
    # steps are 1e-4 at 10,000 test images) is that residue: it is set to exactly 0, so that
    # a flat curve's curvature is 0 on every install.
    reach = np.abs(x).max() ** np.arange(2, -1, -1)  # x^2, x, 1 at the range's far end
    scale = np.abs(Y).max(axis=-1, keepdims=True) if Y.ndim == 2 else np.abs(Y).max()
    return np.where(np.abs(coefs) * reach < 1e-9 * scale, 0.0, coefs)


def quadratic_argmax(coefs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Arg-max of a x^2 + b x + c on [lo, hi], row-wise.

    The vertex -b / 2a when the parabola is concave (clipped to the measured range, since the
    data cannot speak beyond it), otherwise whichever end of the range is higher.
    """
    c = np.atleast_2d(coefs)
    a, b = c[:, 0], c[:, 1]

    def value(x: np.ndarray | float) -> np.ndarray:
        return a * np.square(x) + b * x

    end = np.where(value(hi) >= value(lo), hi, lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.clip(-b / (2.0 * a), lo, hi)
    out = np.where(a < 0, vertex, end)
    return out if np.ndim(coefs) == 2 else out[0]


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of x and y (shape (B, n)), vectorised.

    The same statistic as scipy.stats.kendalltau (its default variant, tau-b), which the
    point estimates use; this form exists because a bootstrap calls it thousands of times and
    scipy's per-call overhead dominated the whole analysis. NaN where a row is constant.
    """
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    n = x.shape[1]
    iu = np.triu_indices(n, k=1)
    out = np.empty(x.shape[0])
    step = max(1, 4_000_000 // max(1, n * n))  # bound the (rows, n, n) temporaries
    for s in range(0, x.shape[0], step):
        sx = np.sign(x[s : s + step, :, None] - x[s : s + step, None, :])[:, iu[0], iu[1]]
        sy = np.sign(y[s : s + step, :, None] - y[s : s + step, None, :])[:, iu[0], iu[1]]
        den = np.sqrt(np.abs(sx).sum(axis=1) * np.abs(sy).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + step] = np.where(den > 0, (sx * sy).sum(axis=1) / den, np.nan)
    return out


def p_from_interval(interval: Callable[[float], tuple[float, float]], *, tol: float = 1e-4,
                    floor: float = 1e-6) -> float:
    """Two-sided p-value of "the effect is zero" by inverting a family of intervals.

    ``interval(level)`` gives the two-sided interval at confidence ``level``; the p-value is
    the smallest alpha whose (1 - alpha) interval excludes zero (test-interval duality), found
    by bisection. Bootstrap intervals resolve it only to about 1 / n_boot; ``floor`` is the
    smallest value reported. NaN when the interval is not finite.

    >>> import math
    >>> from scipy import stats as st
    >>> z = lambda level: (2.0 - st.norm.ppf(0.5 + level / 2), 2.0 + st.norm.ppf(0.5 + level / 2))
    >>> round(p_from_interval(z), 4), round(float(2 * st.norm.sf(2.0)), 4)
    (0.0455, 0.0455)
    """

    def excludes(alpha: float) -> bool:
        lo, hi = interval(1.0 - alpha)
        return lo > 0 or hi < 0

    lo, hi = interval(CONFIDENCE)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return float("nan")
    if excludes(floor):
        return floor
    if not excludes(1.0 - floor):
        return 1.0
    a, b = floor, 1.0 - floor  # excludes(a) is False, excludes(b) is True
    while b - a > tol * a:
        mid = (a * b) ** 0.5  # bisect on the log scale: p-values span decades
        a, b = (a, mid) if excludes(mid) else (mid, b)
    return float(b)


def holm(p_values: Sequence[float], alpha: float = 1.0 - CONFIDENCE) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """Holm's step-down procedure over one family of p-values (NaN = not tested).

    Returns:
        (adjusted p-values, rejected, level): ``level[i]`` is the confidence level at which
        Holm tests hypothesis i, 1 - alpha / (m - rank + 1), rank 1 for the smallest p-value,
        m the number of tested hypotheses; rejection needs that step and every earlier one to
        reject. NaN entries stay NaN / False / NaN.

    >>> adj, rej, level = holm([0.01, 0.04, 0.03, float("nan")])
    >>> adj[:3].round(2).tolist(), rej.tolist(), level[:3].round(4).tolist()
    ([0.03, 0.06, 0.06], [True, False, False, False], [0.9833, 0.95, 0.975])
    """
    p = np.asarray(p_values, dtype=float)
    tested = np.flatnonzero(np.isfinite(p))
    adj = np.full(p.shape, np.nan)
    level = np.full(p.shape, np.nan)
    m = len(tested)
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")], start=1):
        running = max(running, min(1.0, (m - rank + 1) * p[i]))
        adj[i] = running
        level[i] = 1.0 - alpha / (m - rank + 1)
    return adj, np.isfinite(adj) & (adj <= alpha), level
