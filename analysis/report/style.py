"""How every figure of the analysis is set up and saved: one look, PNG and SVG.

matplotlib is driven without pyplot (a Figure on an Agg canvas), so making figures never
changes the caller's backend or global style; seaborn and matplotlib are imported only when a
figure is made. Used by the report's figures (analysis.report.figures) and the replay's regret
figures (analysis.replay.report).

Example:
    >>> import tempfile
    >>> with style():
    ...     fig, axes = new_figure(6.0, 2.5, n_cols=2)
    ...     lines = axes[0, 0].plot([0, 1], [1, 0])
    ...     png, svg = save_png_svg(fig, Path(tempfile.mkdtemp()) / "example")
    >>> axes.shape, png.name, svg.stat().st_size > 0
    ((1, 2), 'example.png', True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DPI = 110  # of the PNG: legible in a report at its natural size, small files


@contextlib.contextmanager
def style() -> Iterator[None]:
    """seaborn's white grid at the "paper" scale, for the figures drawn inside."""
    import seaborn as sns

    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        yield


def new_figure(width: float, height: float, n_rows: int = 1, n_cols: int = 1) -> tuple[Any, Any]:
    """A ``width`` x ``height`` inch Figure (constrained layout) on an Agg canvas, and its
    axes as an n_rows x n_cols array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(n_rows, n_cols, squeeze=False)


def save_png_svg(fig: Any, stem: Path) -> tuple[Path, Path]:
    """Save ``stem``.png and ``stem``.svg of the same drawing; return their paths."""
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    fig.savefig(png, dpi=DPI)
    fig.set_layout_engine("none")  # keep the layout the PNG got: laying out again costs a draw
    fig.savefig(svg)
    return png, svg
