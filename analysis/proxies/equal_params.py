"""Scores judged where the paper's theory speaks: between designs of equal block weights.

The paper's statements about structure are all made "under the same number of parameters"
(sec. 3.2: "under the same number of parameters, an IGCV2 block satisfying such a balance
condition leads to the maximum width and consistently superior performance"; sec. 4.2,
Figures 2 and 3: "under almost the same number of parameters"). A ranking across budgets
mostly measures size; here a score is judged only on pairs of designs whose block weights
(``describe()['block_params']``, the paper's per-block count of Tables 2 and 5) are within a
relative tolerance (:data:`TOLERANCE`, 4%, the paper's own Table 2 pairing) of each other,
in the same net and depth; exactly equal weights are the sensitivity check.

Why pairs and not groups: the tables hold no bins of equal weights (table 1.1's 68 designs
spread over 608-5,832 block weights, with exact ties for only 19 designs), and "within 4%"
is not transitive (3,312, 3,344, 3,360, ... 3,528 chain through it), so any grouping would
draw arbitrary edges. Every pair within the tolerance counts once.

The statistic is Kendall's tau-b restricted to those pairs: (concordant - discordant) /
sqrt(pairs untied in the score x pairs untied in accuracy), on design means. Its interval
is a two-level bootstrap as ``analysis.proxies.ranks``: designs resampled with replacement
(two copies of one design never form a pair), and seeds within each design
(``stats.bootstrap_means``, accuracy and score separately).

Example:
    >>> q = np.array([100.0, 101.0, 200.0])
    >>> close_pairs(q, ["a", "a", "a"], 0.04).astype(int).tolist()
    [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis import stats

#: Relative tolerance on block weights: the paper's own "same budget" pairs (Table 2) differ
#: by up to 4.0% of the larger (Xception C = 96, 10,080 weights, beside IGCV2 C = 256,
#: 10,496; the others by 1.7% and 3.2%).
TOLERANCE = 0.04


def design_quantities(design_ids: Sequence[str], input_size: int | None = None
                      ) -> pd.DataFrame:
    """The paper's quantities of each design, torch-free (``search_space.describe``): its
    net, depth, block weights ``q``, ``width``, ``L``, ``non_sparsity``, ``density``,
    ``balance_deviation``, ``theory`` (``search_space.theory_score``), ``bottleneck`` (the
    retired ``search_space.bottleneck_score``) and ``n_relu``, the
    ReLU units of one image at ``input_size`` (None: the net's own), which NASWOT's kernel
    counts (``evaluators.proxies.naswot``); NaN for nets with residual pairs."""
    import search_space as ss

    rows = []
    for d in design_ids:
        design = ss.parse(d)
        x = ss.describe(design)
        rows.append({"design_id": d, "net": x["net"], "depth": x["depth"],
                     "q": float(x["block_params"]), "width": x["width"], "L": x["L"],
                     "non_sparsity": x["non_sparsity"], "density": x["density"],
                     "balance_deviation": x["balance_deviation"],
                     "theory": ss.theory_score(x["width"], x["density"]),
                     "bottleneck": ss.bottleneck_score(x["width"], x["non_sparsity"],
                                                       x["density"], x["block_params"]),
                     "n_relu": relu_units(design, input_size)})
    return pd.DataFrame(rows).set_index("design_id")


def relu_units(design: object, input_size: int | None = None) -> float:
    """ReLU units one image passes through: the stem's and every block convolution's with a
    ReLU after it (``Block.relu``), channels x output pixels. Nets whose blocks add a
    post-addition ReLU (skip "pairs") or none at the end (inverted) give NaN: not counted."""
    import search_space as ss

    plan = ss.net_plan(design, input_size=input_size)
    if plan.skip != "none":
        return float("nan")
    n = plan.stem.cout * plan.stem.hw_out**2
    for block in plan.blocks:
        n += sum(c.cout * c.hw_out**2 for c, r in zip(block.convs, block.relu, strict=True) if r)
    return float(n)


def close_pairs(q: np.ndarray, group: Sequence[object], tol: float = TOLERANCE) -> np.ndarray:
    """Upper-triangular boolean (n, n): designs i < j in the same ``group`` (net and depth)
    whose block weights differ by at most ``tol`` of the larger."""
    q = np.asarray(q, dtype=float)
    g = pd.factorize(pd.Series(list(group), dtype=object))[0]
    near = np.abs(q[:, None] - q[None, :]) <= tol * np.maximum(q[:, None], q[None, :]) + 1e-9
    return np.triu(near & (g[:, None] == g[None, :]), k=1)


def pair_tau(score: np.ndarray, acc: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Kendall tau-b over the marked pairs, per row of ``score`` and ``acc`` (shape (B, n)
    or (n,)); ``pairs`` is (n, n) or (B, n, n). NaN where no pair is untied on a side."""
    s, a = np.atleast_2d(score), np.atleast_2d(acc)
    p = pairs if pairs.ndim == 3 else np.broadcast_to(pairs, (s.shape[0], *pairs.shape))
    out = np.empty(s.shape[0])
    step = max(1, 2_000_000 // max(1, s.shape[1] ** 2))  # bound the (rows, n, n) temporaries
    for i in range(0, s.shape[0], step):
        r = slice(i, i + step)
        ds = np.sign(s[r, :, None] - s[r, None, :]) * p[r]
        da = np.sign(a[r, :, None] - a[r, None, :]) * p[r]
        den = np.sqrt(np.abs(ds).sum(axis=(1, 2)) * np.abs(da).sum(axis=(1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[r] = np.where(den > 0, (ds * da).sum(axis=(1, 2)) / den, np.nan)
    return out


def _groups(frame: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    ok = frame.dropna(subset=[column])
    return {str(d): g[column].to_numpy(dtype=float) for d, g in ok.groupby("design_id")}


def within_pairs(accuracy: pd.DataFrame, scores: pd.DataFrame, names: Sequence[str],
                 quantities: pd.DataFrame, *, metric: str = "test_acc",
                 tol: float = TOLERANCE, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each score's tau-b with accuracy over the pairs of equal block weights, with a 95%
    interval (designs and seeds resampled; the same resampled designs for every score).

    Args:
        accuracy: rows (design_id, seed, ``metric``).
        scores: rows (design_id, seed, one column per name); a score constant over seeds
            (the paper's quantities) may have one row per design.
        names: the score columns to judge.
        quantities: :func:`design_quantities` of (at least) the designs.
        tol: relative tolerance on block weights.

    Returns:
        One row per name: score, n_pairs, n_designs (designs in at least one pair), tau,
        lo, hi.
    """
    acc = _groups(accuracy, metric)
    ids = sorted(set(acc) & set(quantities.index))
    qd = quantities.loc[ids]
    group = list(zip(qd["net"], qd["depth"], strict=True))
    pairs = close_pairs(qd["q"].to_numpy(), group, tol)
    n = len(ids)
    rng = np.random.default_rng([seed, 3])
    pick = rng.integers(0, n, size=(n_boot, n))
    boot_pairs = close_pairs_boot(qd["q"].to_numpy(), group, pick, tol)
    a_mean = np.array([acc[d].mean() for d in ids])
    a_b = np.take_along_axis(stats.bootstrap_means([acc[d] for d in ids], n_boot, rng),
                             pick, axis=1)
    rows = []
    for name in names:
        sc = _groups(scores, name)
        missing = [d for d in ids if d not in sc]
        if missing:
            raise ValueError(f"score {name!r} lacks {len(missing)} designs ({missing[0]}...)")
        s_reps = stats.bootstrap_means([sc[d] for d in ids], n_boot,
                                       np.random.default_rng([seed, 4]))
        s_b = np.take_along_axis(s_reps, pick, axis=1)
        lo, hi = stats.percentile_interval(pair_tau(s_b, a_b, boot_pairs))
        s_mean = np.array([sc[d].mean() for d in ids])
        rows.append({"score": name, "n_pairs": int(pairs.sum()),
                     "n_designs": int((pairs.any(axis=0) | pairs.any(axis=1)).sum()),
                     "tau": float(pair_tau(s_mean, a_mean, pairs)[0]), "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def close_pairs_boot(q: np.ndarray, group: Sequence[object], pick: np.ndarray,
                     tol: float = TOLERANCE) -> np.ndarray:
    """(B, n, n) pairs of each bootstrap sample of designs ``pick`` (B, n): the close pairs
    of the resampled designs, leaving out two copies of one design."""
    full = close_pairs(q, group, tol)
    sym = full | full.T
    out = sym[pick[:, :, None], pick[:, None, :]]
    return np.triu(out, k=1) & (pick[:, :, None] != pick[:, None, :])


def fixed_share(scores: pd.DataFrame, names: Sequence[str]) -> pd.Series:
    """The share of each score's variance over (design, seed) rows that lies between
    designs (one-way ANOVA R^2 of the design): 1 for a fixed function of the design."""
    out = {}
    for name in names:
        x = scores.dropna(subset=[name])
        total = ((x[name] - x[name].mean()) ** 2).sum()
        within = ((x[name] - x.groupby("design_id")[name].transform("mean")) ** 2).sum()
        out[name] = 1.0 - within / total if total > 0 else float("nan")
    return pd.Series(out)


def partial_beyond(accuracy: pd.DataFrame, scores: pd.DataFrame, names: Sequence[str],
                   controls: Mapping[str, pd.Series], *, metric: str = "test_acc",
                   n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """What each score says about accuracy beyond ``controls`` (e.g. width and block
    weights): the partial Spearman correlation, i.e. Pearson's r of the residuals of the
    ranks of the score and of the accuracy (design means) after least squares on the ranks
    of the controls and a constant; 95% interval over designs resampled (seeds too)."""
    from scipy import stats as sps

    acc = _groups(accuracy, metric)
    ids = sorted(set(acc).intersection(*(set(c.index) for c in controls.values())))
    n = len(ids)
    rng = np.random.default_rng([seed, 5])
    pick = rng.integers(0, n, size=(n_boot, n))
    a_b = np.take_along_axis(stats.bootstrap_means([acc[d] for d in ids], n_boot, rng),
                             pick, axis=1)
    z = np.column_stack([c.loc[ids].to_numpy(dtype=float) for c in controls.values()])
    z_b = z[pick]  # (B, n, k)
    a_mean = np.array([acc[d].mean() for d in ids])
    rows = []
    for name in names:
        sc = _groups(scores, name)
        s_mean = np.array([sc[d].mean() for d in ids])
        s_b = np.take_along_axis(stats.bootstrap_means(
            [sc[d] for d in ids], n_boot, np.random.default_rng([seed, 6])), pick, axis=1)
        point = _partial(s_mean[None], a_mean[None], z[None])[0]
        lo, hi = stats.percentile_interval(_partial(s_b, a_b, z_b))
        plain = sps.spearmanr(s_mean, a_mean).statistic if np.ptp(s_mean) > 0 else math.nan
        rows.append({"score": name, "n_designs": n, "spearman": float(plain),
                     "partial": float(point), "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def _partial(s: np.ndarray, a: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Row-wise partial correlation of ranks: s, a (B, n), controls z (B, n, k)."""
    from scipy import stats as sps

    rs, ra = sps.rankdata(s, axis=1), sps.rankdata(a, axis=1)
    rz = np.concatenate([np.ones((*z.shape[:2], 1)), sps.rankdata(z, axis=1)], axis=2)
    # Residuals of least squares on the controls, all rows at once: the projection
    # through the pseudo-inverse (a resample can make the controls collinear).
    hat = rz @ np.linalg.pinv(rz)  # (B, n, n)
    es = rs - np.einsum("bij,bj->bi", hat, rs)
    ea = ra - np.einsum("bij,bj->bi", hat, ra)
    den = np.sqrt((es * es).sum(axis=1) * (ea * ea).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-9 * len(s[0]), (es * ea).sum(axis=1) / den, np.nan)


__all__ = ["TOLERANCE", "close_pairs", "close_pairs_boot", "design_quantities", "fixed_share",
           "pair_tau", "partial_beyond", "relu_units", "within_pairs"]
