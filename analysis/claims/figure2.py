"""Figure 2 as tests, on the paper's own 15 designs (search_space.paper.FIG2_BARS).

Figure 2 has three panels, (a) L=2, (b) L=3, (c) L=4, where L counts the group 1x1
convolutions after the channel-wise 3x3; each bar is a branch size K at the width C that
keeps the block weights near 4,700. The red bar is "the case in which the complementary
condition is the most satisfied": here the dense bar with the fewest paths per channel pair
(K=12, 6, 4), measured on the modules' permutations. Green bars are sparse (density < 1).
The claims are tested within panels, as the paper compares them; designs other than the
paper's do not enter.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.claims import selection
from analysis.claims.contrasts import linear, over_groups, statistic
from analysis.claims.selection import Slice
from analysis.claims.verdicts import BAR_PAIRS, SESOI, Verdict, make_verdict, untested
from search_space.paper import FIG2_BARS, fig2_design_id

PANELS = {2: "a", 3: "b", 4: "c"}  # the paper's L -> its panel letter
CLAIMS = ("fig2_best_near_complementary", "fig2b_beats_a_and_c", "fig2_denser_beats_sparser")


def panels(designs: pd.DataFrame, *, min_seeds: int = 2) -> dict[int, pd.DataFrame]:
    """The paper's bars present in ``designs`` (with >= min_seeds seeds), by the paper's L,
    sorted by K, with ``K_bar``, ``red`` (the most complementary bar) and ``condition``
    (Figure 2's colour: complementary, denser, sparser) columns."""
    rows = designs[designs["n_seeds"] >= min_seeds].set_index("design_id", drop=False)
    out = {}
    for L in PANELS:
        K_of = {fig2_design_id(ell, K, C): K for ell, K, C in FIG2_BARS if ell == L}
        here = [i for i in K_of if i in rows.index]  # FIG2_BARS lists each panel by K
        if not here:
            continue
        p = rows.loc[here].copy()
        p["K_bar"] = [K_of[i] for i in here]
        dense = selection.is_dense(p)
        paths = p["max_paths"].astype(float).where(dense)
        p["red"] = paths.eq(paths.min()) if dense.any() else False
        p["condition"] = np.where(p["red"], "complementary", np.where(dense, "denser", "sparser"))
        out[L] = p.reset_index(drop=True)
    return out


def figure2(s: Slice) -> list[Verdict]:
    """The three Figure 2 claims; untested (with the reason) where bars are missing."""
    found = panels(s.designs)
    if not found:
        reason = "none of the paper's 15 Figure 2 designs has >= 2 seeds here"
        return [untested(c, s.fidelity, s.dataset, reason) for c in CLAIMS]
    return [*best_near_red(s, found), red_b_beats(s, found), *denser_beats_sparser(s, found)]


def _neighbourhood(p: pd.DataFrame) -> np.ndarray:
    """Bars that are red or next to a red bar in K order (the panel is sorted by K)."""
    red = p["red"].to_numpy(dtype=bool)
    near = red.copy()
    near[1:] |= red[:-1]
    near[:-1] |= red[1:]
    return near


def _means(p: pd.DataFrame, metric: str) -> str:
    return ", ".join(f"K={k}{'*' if r else ''} {m:.4f}"
                     for k, r, m in zip(p["K_bar"], p["red"], p["mean"], strict=True))


def best_near_red(s: Slice, found: dict[int, pd.DataFrame]) -> list[Verdict]:
    """Panels (a) and (c), as the paper says: the best of the red bar and its neighbours minus
    the best of the other bars. The maxima are over 2-3 bars each, so equal bars favour the
    larger side slightly; the detail lists every bar's mean."""
    claim, out = "fig2_best_near_complementary", []
    for L in (2, 4):
        p = found.get(L)
        if p is None or len(p) < 3 or not p["red"].any():
            out.append(untested(claim, s.fidelity, s.dataset,
                                f"panel ({PANELS[L]}): fewer than 3 of its bars, or no dense bar"))
            continue
        near = _neighbourhood(p)

        def fn(m: np.ndarray, near: np.ndarray = near) -> np.ndarray:
            return m[:, near].max(axis=1) - m[:, ~near].max(axis=1)

        est = statistic(p, list(p["design_id"]), fn, n_boot=s.opts.n_boot, rng=s.opts.rng())
        detail = (f"panel ({PANELS[L]}), L={L} group 1x1 convs; {s.metric} by bar ({'*'} = red,"
                  f" the most complementary): {_means(p, s.metric)}; best of red and its "
                  "neighbours minus best of the rest")
        out.append(make_verdict(claim, est, s.fidelity, s.dataset, detail, sesoi=SESOI))
    return out


def red_b_beats(s: Slice, found: dict[int, pd.DataFrame]) -> Verdict:
    """Panel (b)'s red bar minus the best bar of panels (a) and (c)."""
    claim = "fig2b_beats_a_and_c"
    b = found.get(3)
    others = (pd.concat([found[L] for L in (2, 4) if L in found], ignore_index=True)
              if {2, 4} & set(found) else None)
    if b is None or not b["red"].any() or others is None:
        return untested(claim, s.fidelity, s.dataset,
                        "needs panel (b)'s red bar and bars of panels (a) or (c)")
    red = b[b["red"]].iloc[:1]
    both = pd.concat([red, others], ignore_index=True)
    est = statistic(both, list(both["design_id"]), lambda m: m[:, 0] - m[:, 1:].max(axis=1),
                    n_boot=s.opts.n_boot, rng=s.opts.rng())
    best = others.loc[others["mean"].idxmax()]
    detail = (f"panel (b) red bar {red['design_id'].iloc[0]} {red['mean'].iloc[0]:.4f} minus the "
              f"best of {len(others)} bars of (a)/(c), {best['design_id']} {best['mean']:.4f}")
    return make_verdict(claim, est, s.fidelity, s.dataset, detail, sesoi=SESOI)


def denser_beats_sparser(s: Slice, found: dict[int, pd.DataFrame]) -> list[Verdict]:
    """Each sparse (green) bar against the next larger K of its panel: the mean difference
    over seeds (pooled over the pairs) and over the pairs as units."""
    claim = "fig2_denser_beats_sparser"
    pairs = []
    for L, p in sorted(found.items()):
        sparse = ~selection.is_dense(p)
        pairs += [(L, p.iloc[i], p.iloc[i + 1]) for i in range(len(p) - 1) if sparse.iloc[i]]
    if not pairs:
        return [untested(claim, s.fidelity, s.dataset, "no sparse bar with a denser neighbour")]
    weights: dict[str, float] = {}
    for _L, lo, hi in pairs:
        weights[hi["design_id"]] = weights.get(hi["design_id"], 0.0) + 1.0 / len(pairs)
        weights[lo["design_id"]] = weights.get(lo["design_id"], 0.0) - 1.0 / len(pairs)
    rows = pd.concat([p for p in found.values()], ignore_index=True)
    diffs = [hi["mean"] - lo["mean"] for _L, lo, hi in pairs]
    listed = "; ".join(f"({PANELS[L]}) K={lo['K_bar']}->{hi['K_bar']} {d:+.4f}"
                       for (L, lo, hi), d in zip(pairs, diffs, strict=True))
    detail = f"{len(pairs)} pairs (denser minus sparser, {s.metric}): {listed}"
    seeds = linear(rows, weights, n_boot=s.opts.n_boot, rng=s.opts.rng())
    out = [make_verdict(claim, seeds, s.fidelity, s.dataset, detail, sesoi=SESOI)]
    if len(pairs) >= 2:
        out.append(make_verdict(claim, over_groups(diffs, BAR_PAIRS), s.fidelity, s.dataset,
                                detail, sesoi=SESOI))
    return out
