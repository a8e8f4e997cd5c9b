"""Figure 3 as tests: accuracy, width and non-sparsity against L at equal parameters.

A sweep is the separated-form designs with a dense composed kernel (igcv2, and xception as its
L = 2 member) of one net, depth, spatial position and equal-parameter group; at each L it keeps
the one design the paper would draw (selection.preference: balanced, nearest the budget, nearly
complementary, widest). A sweep needs three levels of L, the fewest that give a curvature.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import selection, stats
from .claims import EQ14_MARGIN, S_3X3, Slice, Verdict

CLAIMS = (
    "fig3_accuracy_concave",
    "fig3_argmax_eq14",
    "fig3_argmax_eq14_separated",
    "fig3_width_concave",
    "fig3_non_sparsity_convex",
)


def sweeps(designs: pd.DataFrame) -> list[pd.DataFrame]:
    """The Figure 3 sweeps in a slice's designs: one picked design per L, sorted by L.

    Only separated-form designs with a dense composed kernel qualify (Figure 3's blocks are
    (nearly) complementary); at each L the pick is the most balanced, then the one nearest the
    budget (selection.preference with fill_budget).
    """
    sep = selection.family_matches(designs["family"], *selection.SEPARATED)
    d = designs[sep & designs["L"].notna() & selection.is_dense(designs)]
    out = []
    for _, g in d.groupby([*selection.GROUP_KEYS, "spatial", "bin"], dropna=False):
        picked = selection.preference(g, fill_budget=True).drop_duplicates("L").sort_values("L")
        if len(picked) >= 3:
            out.append(picked)
    return out


def eq14_L(width: float) -> tuple[float, float]:
    """(ln(S*C), 1 + ln C): the parameter-minimal L of eq. 14, and of the separated form,
    where the L - 1 group 1x1 convolutions are minimal at L - 1 = ln C (Sec. 3.2)."""
    return math.log(S_3X3 * width), 1.0 + math.log(width)


def figure3(s: Slice) -> list[Verdict]:
    """All Figure 3 verdicts of a slice: five per sweep, or five 'inconclusive' if none."""
    if s.designs.empty:
        return [s.inconclusive(c, "no ok records") for c in CLAIMS]
    found = sweeps(s.designs)
    if not found:
        # Count levels among the designs sweeps() can use, so the message adds up (fig2's
        # sparse L=2 designs once made it say "need >= 3 levels ... (most: 3)").
        d = s.designs
        ok = selection.family_matches(d["family"], *selection.SEPARATED) & selection.is_dense(d)
        levels = d[ok].groupby([*selection.GROUP_KEYS, "bin"], dropna=False)["L"].nunique()
        reason = (
            "no equal-parameter group of separated-form designs with a dense composed kernel"
            f" at >= 3 levels of L (most: {int(levels.max()) if len(levels) else 0})"
        )
        return [s.inconclusive(c, reason) for c in CLAIMS]
    out = []
    for sw in found:
        out += accuracy_curve(s, sw)
        out.append(design_curve(s, sw, "width", "fig3_width_concave", sign=-1))
        out.append(design_curve(s, sw, "non_sparsity", "fig3_non_sparsity_convex", sign=+1))
    return out


def _where(sw: pd.DataFrame) -> str:
    first = sw.iloc[0]
    p = sw["pcol"]
    return (
        f"{first['net']} d{first['depth']}, {first['pcol_name']} {p.min():,.0f}-{p.max():,.0f},"
        f" L {'/'.join(str(int(x)) for x in sw['L'])}"
    )


def accuracy_curve(s: Slice, sw: pd.DataFrame) -> list[Verdict]:
    """Concavity of accuracy in L (effect: curvature 2a of a quadratic fit, acc per L^2) and
    its arg-max against eq. 14, both with a bootstrap over seeds."""
    rep = sw[sw["n_seeds"] >= 2]
    where = _where(sw)
    if rep["L"].nunique() < 3:
        reason = f"{where}: {rep['L'].nunique()} levels of L with >= 2 seeds (need 3)"
        return [s.inconclusive(c, reason) for c in CLAIMS[:3]]
    x = rep["L"].to_numpy(dtype=float)
    groups = list(rep["values"])
    coefs = stats.quadratic_coefs(x, rep["mean"].to_numpy(dtype=float))
    bcoefs = stats.quadratic_coefs(x, stats.bootstrap_means(groups, s.opts.n_boot, s.opts.rng()))
    # a is linear in the means (a row of pinv); its Welch dof also serves the arg-max
    dof = stats.welch_dof(np.linalg.pinv(np.vander(x, 3))[0], groups)
    lo, hi = stats.seed_interval(2 * coefs[0], 2 * bcoefs[:, 0], dof)
    arg = float(stats.quadratic_argmax(coefs, x.min(), x.max()))
    arg_reps = stats.quadratic_argmax(bcoefs, x.min(), x.max())
    arg_lo, arg_hi = stats.seed_interval(arg, arg_reps, dof)
    arg_lo, arg_hi = max(arg_lo, x.min()), min(arg_hi, x.max())
    c_max = float(sw["width"].max())
    l14, l14_sep = eq14_L(c_max)
    n = int(rep["n_seeds"].sum())
    best = int(rep.loc[rep["mean"].idxmax(), "L"])
    common = (
        f"{where}; seeds per L {'/'.join(map(str, rep['n_seeds']))}; bootstrap "
        f"B={s.opts.n_boot} seed {s.opts.seed}, t-widened at Welch dof {dof:.3g}"
    )
    out = [
        s.verdict(
            "fig3_accuracy_concave",
            2 * coefs[0],
            lo,
            hi,
            n,
            f"{common}; fitted arg-max L {arg:.2f} [{arg_lo:.2f}, {arg_hi:.2f}];"
            f" best measured L {best}",
            sign=-1,
        )
    ]
    for claim, ref, form in (
        ("fig3_argmax_eq14", l14, "ln(9C)"),
        ("fig3_argmax_eq14_separated", l14_sep, "1+ln C"),
    ):
        d_lo, d_hi = arg_lo - ref, arg_hi - ref
        detail = (
            f"{common}; arg-max L {arg:.2f} [{arg_lo:.2f}, {arg_hi:.2f}] vs {form} = "
            f"{ref:.2f} at C = {c_max:g} (widest of the sweep); equivalence margin "
            f"+-{EQ14_MARGIN:g}"
        )
        out.append(
            s.verdict(
                claim,
                arg - ref,
                d_lo,
                d_hi,
                n,
                detail,
                verdict=equivalence(d_lo, d_hi, EQ14_MARGIN),
            )
        )
    return out


def equivalence(lo: float, hi: float, margin: float) -> str:
    """Two one-sided tests as an interval rule: the null is |difference| >= margin.

    'supported' when the interval lies inside (-margin, margin), 'not supported' when it lies
    wholly outside it, else 'inconclusive'.
    """
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return stats.INCONCLUSIVE
    if -margin < lo and hi < margin:
        return stats.SUPPORTED
    if lo >= margin or hi <= -margin:
        return stats.NOT_SUPPORTED
    return stats.INCONCLUSIVE


def second_differences(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Second divided differences: the curvature (2a) of the parabola through each three
    consecutive points. A sequence is concave iff all are <= 0."""
    slope = np.diff(y) / np.diff(x)
    return 2.0 * np.diff(slope) / (x[2:] - x[:-2])


def design_curve(s: Slice, sw: pd.DataFrame, column: str, claim: str, *, sign: int) -> Verdict:
    """Curvature of a deterministic design property (width, non-sparsity) in L.

    These have no seed noise, so there is nothing to bootstrap: the claim is about the shape
    itself. The effect is the mean second divided difference and the interval is their range;
    'supported' needs every one on the claimed side of zero (the definition of a concave or
    convex sequence), 'not supported' every one on the other side.
    """
    x = sw["L"].to_numpy(dtype=float)
    y = sw[column].to_numpy(dtype=float)
    where = _where(sw)
    if not np.isfinite(y).all():
        return s.inconclusive(claim, f"{where}: {column} missing")
    d2 = second_differences(x, y)
    detail = (
        f"{where}; {column} {'/'.join(f'{v:.4g}' for v in y)}; second differences "
        f"{'/'.join(f'{v:.3g}' for v in d2)} (deterministic: interval = their range)"
    )
    return s.verdict(
        claim, d2.mean(), d2.min(), d2.max(), len(x), detail, sign=sign, measured=False
    )
