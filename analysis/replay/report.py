"""What replays found: a summary table over repeats and regret figures (analysis.replay.simulate).

Example:
    >>> from analysis.table.benchmark import Benchmark
    >>> from analysis.replay.simulate import replay_many
    >>> from analysis.replay.table import ReplayTable
    >>> t = ReplayTable.from_benchmark(
    ...     Benchmark.load(Path(__file__).parents[2] / "releases" / "igcbench-1.0.json"))
    >>> s = summarize(replay_many(t, strategies=("grid",), schedulers=("fifo",), workers=(1,),
    ...                           repeats=3))
    >>> s[["strategy", "workers", "repeats", "reached", "epochs_to_best_mean"]].to_dict("records")
    [{'strategy': 'grid', 'workers': 1, 'repeats': 3, 'reached': 3, 'epochs_to_best_mean': 102.0}]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.replay.simulate import ReplayResult, check_choice
from analysis.report.style import new_figure, save_png_svg, style


def summarize(results: Iterable[ReplayResult]) -> pd.DataFrame:
    """Per (strategy, scheduler, workers): repeats, how many reached the best, and the mean,
    std (ddof = 1), median, min and max over the repeats that reached it of time_to_best and
    epochs_to_best; mean total time, total epochs and final regret over all repeats."""
    rows = [
        {
            "strategy": r.strategy,
            "scheduler": r.scheduler,
            "workers": r.workers,
            "reached": r.reached,
            "time_to_best": r.time_to_best,
            "epochs_to_best": r.epochs_to_best,
            "total_time": r.total_time,
            "total_epochs": r.total_epochs,
            "final_regret": r.final_regret,
        }
        for r in results
    ]
    df = pd.DataFrame(rows)
    keys = ["strategy", "scheduler", "workers"]
    out = df.groupby(keys, sort=False).agg(
        repeats=("reached", "size"),
        reached=("reached", "sum"),
        total_time_mean=("total_time", "mean"),
        total_epochs_mean=("total_epochs", "mean"),
        final_regret_mean=("final_regret", "mean"),
    )
    for col in ("time_to_best", "epochs_to_best"):
        stats = (
            df.dropna(subset=[col])
            .groupby(keys, sort=False)[col]
            .agg(["mean", "std", "median", "min", "max"])
        )
        out = out.join(stats.add_prefix(f"{col}_"))
    return out.reset_index()


def regret_frame(
    results: Iterable[ReplayResult], *, axis: str = "time", points: int = 200
) -> pd.DataFrame:
    """Best-so-far regret of each replay sampled on a common grid of simulated time (or of
    epochs) per worker count, long format for seaborn: one row per (replay, grid point)."""
    check_choice(axis, ("time", "epochs"), "axis")
    results = list(results)
    col = 0 if axis == "time" else 1
    frames = []
    for n in sorted({r.workers for r in results}):
        mine = [r for r in results if r.workers == n]
        end = max(r.trace[-1][col] for r in mine)
        grid = np.linspace(0.0, float(end), points)
        for r in mine:
            xs = np.array([p[col] for p in r.trace], dtype=float)
            ys = np.array([p[2] for p in r.trace])
            at = np.searchsorted(xs, grid, side="right") - 1  # the last point at or before x
            frames.append(
                pd.DataFrame(
                    {
                        "strategy": r.strategy,
                        "scheduler": r.scheduler,
                        "workers": n,
                        "repeat": r.seed,
                        axis: grid,
                        "regret": ys[np.maximum(at, 0)],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def plot_regret(
    results: Sequence[ReplayResult], out_dir: str | Path, *, stem: str = "regret"
) -> list[Path]:
    """Regret vs simulated time and vs epochs (median and interquartile band over repeats),
    one panel per worker count; ``<stem>_time`` and ``<stem>_epochs`` as PNG and SVG.

    The quartiles are computed here in one groupby (seaborn's own estimator runs a Python
    function per x value, seconds per figure); seaborn draws the median lines
    (analysis.report.style sets up and saves the figures).
    """
    import seaborn as sns

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for axis, label in (("time", "simulated time (s)"), ("epochs", "epochs trained, all workers")):
        q = _quartiles(regret_frame(results, axis=axis), axis)
        workers = sorted(q["workers"].unique())
        strategies = list(dict.fromkeys(q["strategy"]))
        palette = dict(zip(strategies, sns.color_palette(n_colors=len(strategies)), strict=True))
        with style():
            fig, axes = new_figure(4.2 * len(workers) + 1.2, 3.4, n_cols=len(workers))
            for i, (ax, n) in enumerate(zip(axes[0], workers, strict=True)):
                mine = q[q["workers"].eq(n)]
                for (st, _), g in mine.groupby(["strategy", "scheduler"], sort=False):
                    ax.fill_between(g[axis], g["q25"], g["q75"], step="post", alpha=0.15,
                                    color=palette[st], linewidth=0)
                sns.lineplot(data=mine, x=axis, y="median", hue="strategy", style="scheduler",
                             palette=palette, estimator=None, errorbar=None, ax=ax,
                             drawstyle="steps-post", legend=i == len(workers) - 1)
                ax.set(title=f"{n} worker{'s' if n > 1 else ''}", xlabel=label,
                       ylabel="regret of val_acc" if i == 0 else "")
            if axes[0, -1].get_legend() is not None:
                sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1),
                                frameon=False)
            fig.suptitle(f"Replayed searches: best-so-far regret vs {axis} "
                         "(median, interquartile band over repeats)")
            written += save_png_svg(fig, out / f"{stem}_{axis}")
    return written


def _quartiles(data: pd.DataFrame, axis: str) -> pd.DataFrame:
    keys = ["strategy", "scheduler", "workers", axis]
    q = data.groupby(keys, sort=False)["regret"].quantile([0.25, 0.5, 0.75]).unstack()
    return q.set_axis(["q25", "median", "q75"], axis=1).reset_index()

