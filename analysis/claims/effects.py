"""Claims about any sweep's designs: the width and non-sparsity effects (Sec. 4.2) and the
balance condition (Sec. 3.2, eq. 11).

These are general statements of the paper, so they are tested on whatever designs a sweep
holds: the regression on design means (unit: designs), the balance contrast within
equal-parameter groups (units: seeds, and groups).
"""

from __future__ import annotations

import numpy as np

from analysis import stats
from analysis.claims import selection
from analysis.claims.contrasts import linear, over_groups, replicated
from analysis.claims.selection import Slice
from analysis.claims.verdicts import DESIGNS, SESOI, Estimate, Verdict, make_verdict, untested


def _t_interval(coef: float, se: float, dof: int):
    from scipy import stats as st

    def interval(level: float) -> tuple[float, float]:
        t = float(st.t.ppf(0.5 + level / 2.0, dof))
        return coef - t * se, coef + t * se

    return interval


def regression(s: Slice) -> list[Verdict]:
    """accuracy ~ 1 + log(width) + non_sparsity [+ log(params) when params vary], per net.

    Fitted on design means (a design, not a seed, is the unit that varies width), with OLS
    t-intervals. log(params) enters only when the group spans more than 1 + param_tol, since
    otherwise it is the intercept again.
    """
    claims = ("width_effect", "non_sparsity_effect")
    out, skipped = [], []
    for (net, depth), g in s.designs.groupby(selection.GROUP_KEYS, dropna=False):
        cols = {"log(width)": np.log(g["width"].astype(float)),
                "non_sparsity": g["non_sparsity"].astype(float)}
        if g["pcol"].max() > (1 + s.opts.param_tol) * g["pcol"].min():
            cols[f"log({g['pcol_name'].iloc[0]})"] = np.log(g["pcol"])
        X = np.column_stack([np.ones(len(g)), *cols.values()])
        where = f"{net} d{depth}, {len(g)} designs"
        try:
            if not np.isfinite(X).all():
                raise ValueError("width, non_sparsity or parameter count missing")
            if len(g) < X.shape[1] + 2:
                raise ValueError(f"{len(g)} designs for {X.shape[1]} coefficients (need +2)")
            fit = stats.least_squares(X, g["mean"].to_numpy())
        except ValueError as exc:
            skipped.append(f"{where}: {exc}")
            continue
        for i, claim in enumerate(claims, start=1):
            est = Estimate(fit.coef[i], _t_interval(fit.coef[i], fit.se[i], fit.dof), len(g),
                           DESIGNS, se=fit.se[i], dof=float(fit.dof))
            # The coefficient's SESOI: one point of accuracy over the designs' span of it.
            span = float(np.ptp(X[:, i]))
            sesoi = SESOI / span if span > 0 else float("nan")
            detail = (f"{where}; OLS of mean {s.metric} on {', '.join(cols)}; coef "
                      f"{fit.coef[i]:.4g} (se {fit.se[i]:.3g}, dof {fit.dof}); cond(X) "
                      f"{np.linalg.cond(X):.3g}; SESOI {sesoi:.3g} ({SESOI:g} over the "
                      f"designs' span {span:.3g} of {list(cols)[i - 1]})")
            out.append(make_verdict(claim, est, s.fidelity, s.dataset, detail, sesoi=sesoi))
    if not out:
        reason = "; ".join(skipped) or "no designs"
        return [untested(c, s.fidelity, s.dataset, reason) for c in claims]
    return out


def balance(s: Slice) -> list[Verdict]:
    """Balanced (balance_deviation <= balanced_max) minus unbalanced separated-form blocks, at
    equal net, depth, spatial position, L and parameters (eq. 11).

    Only designs with a dense composed kernel enter: eq. 11 is derived under that constraint,
    and a sparse kernel would otherwise be credited to balance (Figure 2 tests density).
    """
    claim = "balance_condition"
    d = s.designs[selection.family_matches(s.designs["family"], *selection.SEPARATED)]
    rep = replicated(d[selection.is_dense(d)])
    pairs = []
    for _, g in rep.groupby([*selection.GROUP_KEYS, "spatial", "L", "bin"], dropna=False):
        dev = g["balance_deviation"].astype(float)
        a, b = g[dev <= s.opts.balanced_max], g[dev > s.opts.balanced_max]
        if len(a) and len(b):
            pairs.append((a, b))
    if not pairs:
        return [untested(claim, s.fidelity, s.dataset,
                         "no equal-parameter group holds both balanced (deviation <= "
                         f"{s.opts.balanced_max:g}) and unbalanced dense separated-form "
                         "designs with >= 2 seeds")]
    weights: dict[str, float] = {}
    for a, b in pairs:
        for arm, sign in ((a, 1.0), (b, -1.0)):
            for x in arm["design_id"]:
                weights[x] = weights.get(x, 0.0) + sign / (len(arm) * len(pairs))
    diffs = [a["mean"].mean() - b["mean"].mean() for a, b in pairs]
    detail = (f"balanced vs unbalanced dense separated-form designs: "
              f"{sum(len(a) for a, _ in pairs)} vs {sum(len(b) for _, b in pairs)} designs in "
              f"{len(pairs)} groups of equal L and parameters (within x{1 + s.opts.param_tol:g}); "
              f"group differences {'/'.join(f'{x:+.4f}' for x in diffs)}")
    est = linear(rep, weights, n_boot=s.opts.n_boot, rng=s.opts.rng())
    out = [make_verdict(claim, est, s.fidelity, s.dataset, detail, sesoi=SESOI)]
    if len(pairs) >= 2:
        out.append(make_verdict(claim, over_groups(diffs), s.fidelity, s.dataset, detail,
                                sesoi=SESOI))
    return out
