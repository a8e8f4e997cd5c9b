"""Figures of a run beyond the paper's: learning curves, accuracy against the paper's two
design quantities with the fit, and the verdicts themselves.

Drawn by figures.make_figures (which also draws the paper's figures and the Pareto fronts);
each function returns a matplotlib Figure, or None when the data do not allow it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis import stats
from analysis.claims.verdicts import Verdict

VERDICT_COLOURS = {"supported": "tab:green", "not supported": "tab:red",
                   "equivalent": "tab:blue", "inconclusive": "0.45"}
MAX_CURVES = 12  # designs in one learning-curve panel: the best and the worst of the run


def learning_curves(rows: pd.DataFrame, metric: str, figure: Any) -> Any:
    """Per-epoch validation accuracy and training loss, mean and seed band (sd), per design.

    With more than MAX_CURVES designs only the best and the worst by final ``metric`` are
    drawn, half each, so the spread of the run is visible and the legend legible.
    """
    import seaborn as sns

    long = [
        {"design": r.design_id, "seed": r.seed, **p}
        for r in rows.itertuples()
        if isinstance(r.curve, list)
        for p in r.curve
        if isinstance(p, dict) and "epoch" in p
    ]
    if not long:
        return None
    curves = pd.DataFrame(long)
    means = rows.groupby("design_id")[metric].mean().sort_values(ascending=False)
    keep = list(means.index)
    if len(keep) > MAX_CURVES:
        keep = keep[: MAX_CURVES // 2] + keep[-(MAX_CURVES // 2):]
    curves = curves[curves["design"].isin(keep)]
    panels = [c for c in ("val_acc", "train_loss") if c in curves and curves[c].notna().any()]
    fig, axes = figure(1, len(panels), w=4.6, h=3.4)
    for ax, col in zip(axes[0], panels, strict=True):
        sns.lineplot(data=curves, x="epoch", y=col, hue="design", hue_order=keep,
                     errorbar="sd", marker="o", ax=ax, legend=ax is axes[0][-1])
        ax.set_xticks(sorted(curves["epoch"].unique()))
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6)
    shown = "" if len(keep) == len(means) else f" (best and worst {len(keep)} of {len(means)})"
    fig.suptitle(f"Learning curves: mean and seed sd per design{shown}")
    return fig


def accuracy_vs_design(d: pd.DataFrame, metric: str, figure: Any) -> Any:
    """Design-mean accuracy against log(width) and non-sparsity, with partial residuals of
    the fit accuracy ~ 1 + log(width) + non_sparsity when it has degrees of freedom left.

    A partial-residual panel shows the fitted effect of one quantity at fixed other: the
    residuals plus that term, against it, with the fitted line (the regression of
    effects.regression, without its log(params) term).
    """
    if d.empty or len(d) < 2:
        return None
    x1 = np.log(d["width"].astype(float).to_numpy())
    x2 = d["non_sparsity"].astype(float).to_numpy()
    y = d["mean"].to_numpy(dtype=float)
    sd = d["values"].map(lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
    fit = None
    if len(d) >= 5 and np.isfinite(np.c_[x1, x2, y]).all():
        try:
            fit = stats.least_squares(np.c_[np.ones(len(d)), x1, x2], y)
        except ValueError:
            fit = None
    fig, axes = figure(1, 2, w=4.2, h=3.4)
    for j, (ax, x, name) in enumerate(zip(axes[0], (x1, x2), ("log(width)", "non_sparsity"),
                                          strict=True)):
        if fit is None:
            ax.errorbar(x, y, yerr=sd, fmt="o", ms=4, c="tab:blue", lw=0.8)
            ax.set_ylabel(f"mean {metric}")
        else:
            b = fit.coef[j + 1]
            partial = y - (np.c_[np.ones(len(d)), x1, x2] @ np.array(fit.coef)) + b * x
            ax.errorbar(x, partial, yerr=sd, fmt="o", ms=4, c="tab:blue", lw=0.8)
            grid = np.linspace(x.min(), x.max(), 20)
            ax.plot(grid, b * grid + (partial - b * x).mean(), c="tab:red",
                    label=f"fit {b:+.3g} [{fit.ci_low[j + 1]:+.3g}, {fit.ci_high[j + 1]:+.3g}]")
            ax.legend(fontsize=7)
            ax.set_ylabel(f"{metric}: partial residual")
        ax.set_xlabel(name)
    how = "partial residuals of the OLS fit" if fit is not None else "no fit (< 5 designs)"
    fig.suptitle(f"Accuracy against width and non-sparsity ({len(d)} designs; {how})")
    return fig


def verdict_plot(verdicts: Sequence[Verdict], figure: Any) -> Any:
    """One small panel per tested verdict: the effect, its raw 95% interval (thick) and its
    Holm-adjusted interval (thin), coloured by the adjusted verdict. Effects have their own
    units (docs/analysis.md), hence one axis each; zero is the dashed line, a claim's margin
    (the arg-max's +-0.5) the grey band, else its smallest effect of interest (SESOI) a
    lighter one."""
    tested = [v for v in verdicts if v.tested]
    if not tested:
        return None
    cols = 3
    rows = math.ceil(len(tested) / cols)
    fig, axes = figure(rows, cols, w=3.4, h=1.3)
    for ax, v in zip(axes.flat, tested, strict=False):
        colour = VERDICT_COLOURS.get(v.verdict, "0.45")
        if math.isfinite(v.adj_low) and math.isfinite(v.adj_high):
            ax.hlines(0, v.adj_low, v.adj_high, colors=colour, lw=1.2)
        if math.isfinite(v.ci_low) and math.isfinite(v.ci_high):
            ax.hlines(0, v.ci_low, v.ci_high, colors=colour, lw=4, alpha=0.6)
        ax.plot([v.effect], [0], "o", c=colour, ms=6)
        ax.axvline(0, ls="--", c="k", lw=0.7)
        if math.isfinite(v.margin):  # the claim's margin (docs/analysis.md), shaded
            ax.axvspan(-v.margin, v.margin, color="0.85", zorder=0)
        elif math.isfinite(v.sesoi):  # the smallest effect of interest, lightly
            ax.axvspan(-v.sesoi, v.sesoi, color="0.93", zorder=0)
        ax.set_yticks([])
        ax.set_ylim(-1, 1)
        ax.set_title(f"{v.claim} ({v.unit})\n{v.verdict}", fontsize=7, color=colour)
        ax.tick_params(axis="x", labelsize=6)
    for ax in list(axes.flat)[len(tested):]:
        ax.set_visible(False)
    fig.suptitle("Verdicts: effect, raw 95% (thick) and Holm-adjusted (thin) intervals")
    return fig
