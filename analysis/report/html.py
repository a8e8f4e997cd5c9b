"""One self-contained HTML report of a run: verdicts, Pareto tables, figures, configuration.

The figures are embedded as base64 PNG, so the HTML file alone is the report; the PNG and SVG
files are also kept in a figures/ folder next to it. Nothing is written unless the input is
good, and the HTML appears only complete (built in a staged directory beside it, then
published: evaluators.record's atomic moves).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.claims.check import check_claims
from analysis.claims.verdicts import Verdict
from analysis.load import load_results
from analysis.report.figures import FigureFile, make_figures
from analysis.report.pareto import ParetoFront, pareto_fronts
from evaluators.record import publish, staged_dir

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.supported td.v { background: #d7f5d7; }
tr.not-supported td.v { background: #f8d4d4; }
tr.inconclusive td.v { background: #eee; }
tr.equivalent td.v { background: #d7e6f5; }
td.detail { font-size: 12px; color: #444; max-width: 50em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
"""


class ReportInputError(ValueError):
    """The run directory cannot make a report (missing, or without records)."""


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    storage: str | None = None,
    metric: str | None = None,
    param_tol: float = 0.25,
    n_boot: int = 4000,
    seed: int = 0,
) -> Path:
    """Analyse a run directory and write its HTML report.

    Args:
        run_dir: ``runs/<name>/`` with ``records/*.json`` (and ``run.json``, if present, is
            shown as the configuration).
        out: the HTML file; default ``run_dir/report.html``. Figures go to
            ``<out's folder>/figures/``.
        storage: optional Optuna storage URL, as in load_results.
        metric, param_tol, n_boot, seed: as in check_claims.

    Returns:
        The path of the HTML file.

    Raises:
        ReportInputError: the directory is missing or holds no records; nothing is written.

    Example:
        >>> write_report("runs/fig3")                    # doctest: +SKIP
        PosixPath('runs/fig3/report.html')
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ReportInputError(f"run directory not found: {run}")
    try:
        df = load_results(run, storage=storage)
    except FileNotFoundError as exc:
        raise ReportInputError(f"no records directory: {run / 'records'}") from exc
    except Exception as exc:  # any storage backend's error, made one line for the CLI
        if storage is None:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ReportInputError(f"cannot read storage {storage}: {first}") from exc
    if df.empty:
        raise ReportInputError(f"no records in {run / 'records'}")
    out = Path(out) if out is not None else run / "report.html"
    return write_frame_report(df, out, name=run.name, config=_config(run), metric=metric,
                              param_tol=param_tol, n_boot=n_boot, seed=seed)


def write_frame_report(df: pd.DataFrame, out: str | Path, *, name: str, config: Any = None,
                       metric: str | None = None, param_tol: float = 0.25, n_boot: int = 4000,
                       seed: int = 0) -> Path:
    """The report of a results frame (load_results, or a records export read back): the
    HTML file ``out`` with its figures in ``<out's folder>/figures/``; atomic."""
    out = Path(out)
    verdicts = check_claims(df, metric=metric, param_tol=param_tol, n_boot=n_boot, seed=seed)
    fronts = pareto_fronts(df, metric=metric)
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(out.parent, "report") as tmp:
        figs = make_figures(df, tmp / "figures", metric=metric, param_tol=param_tol,
                            verdicts=verdicts)
        page = render(name, df, verdicts, fronts, figs, config)
        (tmp / "report.html").write_text(page, encoding="utf-8")
        dest = out.parent / "figures"
        dest.mkdir(exist_ok=True)
        for f in figs:
            for p in (f.png, f.svg):
                publish(p, dest / p.name)
        publish(tmp / "report.html", out)
    return out


def render(
    name: str,
    df: pd.DataFrame,
    verdicts: Sequence[Verdict],
    fronts: Sequence[ParetoFront],
    figs: Sequence[FigureFile],
    config: Any,
) -> str:
    """The report page as one HTML string (figures read from their PNG files and inlined)."""
    e = html.escape
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>igcbench report: {e(name)}</title><style>{CSS}</style></head><body>",
        f"<h1>igcbench report: {e(name)}</h1>",
        f"<p>{e(_summary(df))}; generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} "
        "UTC. Method, nulls and verdict rule: docs/analysis.md.</p>",
        "<h2>Claims</h2>",
        _verdict_table(verdicts),
        "<h2>Pareto fronts</h2>",
        *(_front_table(f) for f in fronts),
        "<h2>Figures</h2>",
        *(_figure(f) for f in figs),
        "<h2>Failed records</h2>",
        _failed_table(df),
        "<h2>Configuration (run.json)</h2>",
        f"<pre>{e(json.dumps(config, indent=2, sort_keys=True, default=str))}</pre>"
        if config is not None
        else "<p>no run.json in the run directory</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _summary(df: pd.DataFrame) -> str:
    ok = int(df["status"].eq("ok").sum())
    fids = ", ".join(sorted(df["fidelity"].astype(str).unique()))
    sets = ", ".join(sorted(df["dataset"].astype(str).unique()))
    return (
        f"{len(df)} records ({ok} ok, {len(df) - ok} failed) of "
        f"{df['design_id'].nunique()} designs; fidelities {fids}; datasets {sets}"
    )


def _num(x: float, digits: int = 4) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x + 0.0:.{digits}g}"


def _table(head: Iterable[str], rows: Iterable[str], cls: str) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table class='{cls}'><tr>{th}</tr>\n" + "\n".join(rows) + "</table>"


def _interval(lo: float, hi: float) -> str:
    return "–" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{_num(lo)}, {_num(hi)}]"


def _verdict_table(verdicts: Sequence[Verdict]) -> str:
    """Tested claims: the adjusted verdict first, then the raw one, both intervals, the unit;
    below, the claims these records could not test, with the reason."""
    from analysis.claims.texts import CLAIMS

    e = html.escape
    rows = [
        f"<tr class='verdict {v.verdict.replace(' ', '-')}' data-claim='{e(v.claim)}'>"
        f"<td title='{e(CLAIMS[v.claim].quote)}'>{e(v.statement)}<br><small>"
        f"{e(CLAIMS[v.claim].source)}</small></td><td>{e(v.fidelity)} / {e(v.dataset)}</td>"
        f"<td class='v'>{e(v.verdict)}</td><td>{e(v.raw_verdict)}</td>"
        f"<td class='num'>{_num(v.effect)}</td>"
        f"<td class='num'>{_interval(v.ci_low, v.ci_high)}</td>"
        f"<td class='num'>{_interval(v.adj_low, v.adj_high)}"
        f"{'' if not math.isfinite(v.adj_level) else f' at {v.adj_level:.2%}'}</td>"
        f"<td class='num'>{_num(v.p_value, 3)} / {_num(v.p_adjusted, 3)}</td>"
        f"<td>{e(v.unit)}</td><td class='num'>{v.n}</td>"
        f"<td class='detail'>{e(v.detail)}</td></tr>"
        for v in verdicts
        if v.tested
    ]
    head = ("claim (hover: the paper's words)", "fidelity / dataset", "verdict (Holm)",
            "raw verdict", "effect", "raw 95% interval", "adjusted interval", "p / p Holm",
            "unit", "n", "detail")
    untested = "".join(f"<li>{e(v.statement)} ({e(v.fidelity)} / {e(v.dataset)}): "
                       f"{e(v.detail)}</li>" for v in verdicts if not v.tested)
    return (_table(head, rows, "verdicts")
            + (f"<p>Not testable on these records:</p><ul>{untested}</ul>" if untested else ""))


def _front_table(f: ParetoFront) -> str:
    e = html.escape
    title = (
        f"<h3>{e(f.metric)} vs {e(f.cost)} [{e(f.fidelity)}, {e(f.dataset)}]</h3>"
        f"<p>{len(f.ids)} of {f.n_points} designs on the front; hypervolume "
        f"{_num(f.hypervolume, 6)} against reference ({e(f.cost)} = "
        f"{_num(f.reference[0], 6)}, {e(f.metric)} = {_num(f.reference[1])})</p>"
    )
    rows = [
        f"<tr class='front'><td>{e(i)}</td><td class='num'>{_num(c, 6)}</td>"
        f"<td class='num'>{_num(v)}</td></tr>"
        for i, c, v in zip(f.ids, f.costs, f.values, strict=True)
    ]
    return title + _table(("design", f.cost, f.metric), rows, "pareto")


def _figure(f: FigureFile) -> str:
    e = html.escape
    data = base64.b64encode(f.png.read_bytes()).decode("ascii")
    return (
        f"<figure id='{e(f.name)}'><img src='data:image/png;base64,{data}' alt='{e(f.title)}'>"
        f"<figcaption>{e(f.title)}: <a href='figures/{e(f.svg.name)}'>SVG</a>, "
        f"<a href='figures/{e(f.png.name)}'>PNG</a></figcaption></figure>"
    )


def _failed_table(df: pd.DataFrame) -> str:
    failed = df[~df["status"].eq("ok")]
    if failed.empty:
        return "<p>none</p>"
    e = html.escape
    rows = [
        f"<tr class='failed'><td>{e(str(r.design_id))}</td><td>{e(str(r.fidelity))}</td>"
        f"<td>{e(str(r.dataset))}</td><td>{r.seed}</td><td>{e(str(r.reason))}</td></tr>"
        for r in failed.itertuples()
    ]
    return _table(("design", "fidelity", "dataset", "seed", "reason"), rows, "failed")


def _config(run: Path) -> Any:
    path = run / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        return {"unreadable run.json": str(exc)}
