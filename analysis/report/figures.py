"""Figures of the paper, redrawn from our records with seaborn; PNG and SVG files.

matplotlib is driven without pyplot (a Figure on an Agg canvas), so making figures never
changes the caller's backend or global style; seaborn and matplotlib are imported only here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.claims import selection
from analysis.claims.verdicts import Verdict
from analysis.load import aggregate
from analysis.report import run_figures
from analysis.report.pareto import ParetoFront, pareto_fronts

PALETTE = {"complementary": "tab:red", "denser": "tab:blue", "sparser": "tab:green"}
MAX_PANELS = 6  # more equal-parameter groups than this are not legible in one figure


@dataclass(frozen=True)
class FigureFile:
    """One saved figure: ``png`` and ``svg`` hold the same drawing."""

    name: str
    title: str
    png: Path
    svg: Path


def make_figures(
    df: pd.DataFrame, out_dir: str | Path, *, metric: str | None = None,
    param_tol: float = 0.25, verdicts: Sequence[Verdict] = (),
) -> list[FigureFile]:
    """Draw every figure the data allows, for every (fidelity, dataset), into out_dir.

    Figure 2 (the paper's bars, coloured by complementarity), Figure 3 analogue (accuracy,
    width, non-sparsity vs L with seed spread), Figure 4 analogue (accuracy vs depth and width
    of igcv2* nets), the Pareto fronts, the learning curves, accuracy against width and
    non-sparsity with the fit, and the verdicts (run_figures). A figure whose data is absent
    is skipped, not drawn empty.

    Args:
        df: the results DataFrame (load_results).
        out_dir: created if missing; files are named <figure>_<fidelity>_<dataset>.{png,svg}.
        metric: accuracy column; default as in check_claims.
        param_tol: equal-parameter tolerance, as in check_claims.
        verdicts: check_claims' verdicts, for the verdict plot of each slice.

    Returns:
        The figures written, in drawing order.
    """
    import seaborn as sns

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fronts = pareto_fronts(df, metric=metric)
    agg = aggregate(df)
    written = []
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        for fid, ds, rows in selection.slices(df):
            m = selection.pick_metric(rows, metric)
            ok = selection.ok_rows(rows, m)
            d = selection.designs(ok, m, param_tol) if len(ok) else pd.DataFrame()
            here = agg[agg["fidelity"].eq(fid) & agg["dataset"].eq(ds) & agg[f"{m}_n"].gt(0)]
            mine = [f for f in fronts if (f.fidelity, f.dataset) == (fid, ds)]
            drawn = [
                (k, draw(d, m) if not d.empty else None)
                for k, draw in (("fig2", _fig2), ("fig3", _fig3), ("fig4", _fig4))
            ]
            drawn.append(("pareto", _pareto(here, mine)))
            drawn.append(("curves", run_figures.learning_curves(ok, m, _figure)))
            drawn.append(("accuracy", run_figures.accuracy_vs_design(d, m, _figure)))
            mine_v = [v for v in verdicts if (v.fidelity, v.dataset) == (fid, ds)]
            drawn.append(("verdicts", run_figures.verdict_plot(mine_v, _figure)))
            for kind, fig in drawn:
                if fig is not None:
                    title = f"{fig.get_suptitle()} [{fid}, {ds}]"
                    fig.suptitle(title)
                    written.append(_save(fig, out, f"{kind}_{fid}_{ds}", title))
    return written


def _figure(n_rows: int, n_cols: int, w: float = 3.6, h: float = 3.0) -> Any:
    from analysis.report.style import new_figure

    return new_figure(w * n_cols, h * n_rows, n_rows, n_cols)


def _save(fig: Any, out: Path, name: str, title: str) -> FigureFile:
    from analysis.report.style import save_png_svg

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    return FigureFile(safe, title, *save_png_svg(fig, out / safe))


def _per_seed(d: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Design rows exploded to one row per seed value (for seaborn's error bars)."""
    long = d.drop(columns=[metric], errors="ignore").explode("values")
    long = long.rename(columns={"values": metric})
    return long.assign(**{metric: long[metric].astype(float)})


def _fig2(d: pd.DataFrame, metric: str) -> Any:
    """The paper's three panels (its 15 designs, as many as were run): red = the most
    complementary bar, blue = denser, green = sparser."""
    import seaborn as sns

    from analysis.claims.figure2 import PANELS, panels

    found = {L: p for L, p in panels(d, min_seeds=1).items() if len(p) >= 2}
    if not found:
        return None
    fig, axes = _figure(1, len(found), w=max(3.6, 7.2 / len(found)))
    for ax, (L, g) in zip(axes[0], sorted(found.items()), strict=True):
        g = g.assign(bar=[f"K={k}\nC={w}" for k, w in zip(g["K_bar"], g["width"], strict=True)])
        sns.barplot(
            data=_per_seed(g, metric),
            x="bar",
            y=metric,
            hue="condition",
            order=list(g["bar"]),
            palette=PALETTE,
            errorbar="sd",
            dodge=False,
            ax=ax,
        )
        lo = np.nanmin(np.concatenate(list(g["values"])))
        ax.set_ylim(bottom=max(0.0, lo - 0.05))
        ax.set_title(f"({PANELS[L]}) L={L} group 1x1 convs")
        ax.set_xlabel("K, width C")
        ax.tick_params(axis="x", labelsize=7)
        if ax is axes[0][-1]:  # one legend, beside the last panel, where it hides no bar
            sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
        elif ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.suptitle("Figure 2: the paper's designs, complementary condition")
    return fig


def _fig3(d: pd.DataFrame, metric: str) -> Any:
    import seaborn as sns

    from analysis.claims.figure3 import sweeps

    found = sweeps(d)[:MAX_PANELS]
    if not found:
        return None
    fig, axes = _figure(len(found), 3)
    for row, sw in zip(axes, found, strict=True):
        sns.lineplot(
            data=_per_seed(sw, metric), x="L", y=metric, errorbar="sd", marker="o", ax=row[0]
        )
        sns.stripplot(
            data=_per_seed(sw, metric),
            x="L",
            y=metric,
            native_scale=True,
            color="0.4",
            size=3,
            ax=row[0],
        )
        widest = int(sw.loc[sw["width"].idxmax(), "L"])  # the paper's dashed line
        for ax in row:
            ax.axvline(widest, ls="--", c="k", lw=0.8, label=f"widest, sparsest: L={widest}")
        row[0].legend(fontsize=7)
        for ax, col in ((row[1], "width"), (row[2], "non_sparsity")):
            sns.lineplot(data=sw, x="L", y=col, marker="o", ax=ax)
        first = sw.iloc[0]
        row[0].set_title(f"{first['net']} d{first['depth']}, {_params(sw)}")
        for ax in row:
            ax.set_xticks(sorted(sw["L"].astype(int)))
    fig.suptitle("Figure 3 analogue: L at equal parameters")
    return fig


def _fig4(d: pd.DataFrame, metric: str) -> Any:
    import seaborn as sns

    # IGCV2*(Cx) of Table 1 are res nets. plain8 has one depth, and its IGCV2 designs of
    # different widths differ in L and K too: that is Figure 3's comparison, not this one's.
    nets = d[selection.family_matches(d["family"], *selection.IGCV2) & d["net"].ne("plain8")]
    long = _per_seed(nets, metric)
    panels = []
    for x, hue in (("depth", "width"), ("width", "depth")):
        varied = long.groupby(["net", hue])[x].transform("nunique") >= 2
        if varied.any():
            panels.append((x, hue, long[varied]))
    if not panels:
        return None
    fig, axes = _figure(1, len(panels))
    for ax, (x, hue, data) in zip(axes[0], panels, strict=True):
        sns.lineplot(
            data=data,
            x=x,
            y=metric,
            hue=hue,
            style="net",
            errorbar="sd",
            marker="o",
            palette="viridis",
            ax=ax,
        )
        ax.set_title(f"go {'deeper' if x == 'depth' else 'wider'}")
    fig.suptitle("Figure 4 analogue: deeper and wider igcv2* nets")
    return fig


def _pareto(agg: pd.DataFrame, fronts: list[ParetoFront]) -> Any:
    """One panel per cost: every design (grey), the front (red, ids labelled)."""
    import seaborn as sns

    fronts = [f for f in fronts if f.n_points]
    if not fronts:
        return None
    fig, axes = _figure(1, len(fronts), w=4.4, h=3.6)
    for ax, f in zip(axes[0], fronts, strict=True):
        sns.scatterplot(data=agg, x=f.cost, y=f.metric, color="0.6", s=18, ax=ax, label="designs")
        ax.step(f.costs, f.values, where="post", c="tab:red", lw=1)
        ax.scatter(f.costs, f.values, c="tab:red", s=24, zorder=3, label="front")
        for c, v, name in zip(f.costs, f.values, f.ids, strict=True):
            ax.annotate(
                name, (c, v), fontsize=5, rotation=20, xytext=(3, 3), textcoords="offset points"
            )
        if f.cost != "latency_b1_ms":  # counts span decades; latencies of one device do not
            _log_x(ax)
        ax.set_title(
            f"hypervolume {f.hypervolume:.4g}, reference ({f.reference[0]:.3g}, "
            f"{f.reference[1]:g})",
            fontsize=8,
        )
        ax.legend(fontsize=7)
    fig.suptitle("Pareto fronts: accuracy vs cost")
    return fig


def _params(d: pd.DataFrame) -> str:
    """'paper_params 28.0k-28.5k': the equal-parameter range of a panel."""
    lo, hi = d["pcol"].min(), d["pcol"].max()
    return f"{d['pcol_name'].iloc[0]} {lo / 1e3:.1f}k-{hi / 1e3:.1f}k"


def _log_x(ax: Any) -> None:
    """Log x axis labelled 1-2-5 in engineering notation: plain text, no mathtext to lay out,
    and legible when the costs span less than a decade."""
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(NullFormatter())
