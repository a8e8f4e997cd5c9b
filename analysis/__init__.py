"""Results -> DataFrame; the paper's claims as tests; Pareto fronts; figures; report; dashboard.

Reads result records (docs/internals.md); never imports torch or ray. The public names below
load their modules on first use, so ``import analysis`` stays cheap (pandas, scipy, seaborn
and matplotlib are imported only by the functions that need them).

Example (the committed release; a run directory loads with ``load_results("runs/NAME")``):
    >>> import analysis
    >>> from pathlib import Path
    >>> df = analysis.read_release(
    ...     Path(analysis.__file__).parents[1] / "releases" / "igcbench-1.0.json").records
    >>> best = analysis.aggregate(df).sort_values("val_acc_mean").iloc[-1]
    >>> len(df), best.design_id, round(float(best.val_acc_mean), 4), int(best.val_acc_n)
    (153, 'plain8-c76-k1.2', 0.3875, 3)
    >>> front = next(f for f in analysis.pareto_fronts(df) if f.cost == "params")
    >>> front.metric, front.ids[:2]
    ('test_acc_mean', ('plain8-c16-k1.2.2.2.2', 'plain8-c16-k1.16.16'))
    >>> for v in analysis.check_claims(df):                              # doctest: +SKIP
    ...     print(v.claim, v.fidelity, v.verdict, v.effect, (v.ci_low, v.ci_high))
    >>> analysis.write_report("runs/fig3")         # writes runs/fig3/report.html  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evaluators.lazy import lazy_exports

_EXPORTS = {
    "load_results": "load",
    "aggregate": "load",
    "frame_from_records": "load",
    "Verdict": "claims.check",
    "CLAIMS": "claims.check",
    "check_claims": "claims.check",
    "ParetoFront": "report.pareto",
    "pareto_front": "report.pareto",
    "pareto_fronts": "report.pareto",
    "hypervolume_2d": "report.pareto",
    "FigureFile": "report.figures",
    "make_figures": "report.figures",
    "write_report": "report.html",
    "ReportInputError": "report.html",
    "serve_dashboard": "report.dashboard",
    "storage_url": "report.dashboard",
    "Benchmark": "table.benchmark",
    "TableKeyError": "table.benchmark",
    "write_release": "table.release",
    "read_release": "table.release",
    "ChecksumError": "table.release",
    "ReplayTable": "replay.table",
    "replay_many": "replay.simulate",
}

__all__ = [
    "CLAIMS",
    "Benchmark",
    "ChecksumError",
    "ReplayTable",
    "TableKeyError",
    "FigureFile",
    "ParetoFront",
    "ReportInputError",
    "Verdict",
    "aggregate",
    "check_claims",
    "frame_from_records",
    "hypervolume_2d",
    "load_results",
    "make_figures",
    "pareto_front",
    "pareto_fronts",
    "read_release",
    "replay_many",
    "serve_dashboard",
    "storage_url",
    "write_release",
    "write_report",
]

if TYPE_CHECKING:
    from analysis.claims.check import CLAIMS, Verdict, check_claims
    from analysis.load import aggregate, frame_from_records, load_results
    from analysis.replay.simulate import replay_many
    from analysis.replay.table import ReplayTable
    from analysis.report.dashboard import serve_dashboard, storage_url
    from analysis.report.figures import FigureFile, make_figures
    from analysis.report.html import ReportInputError, write_report
    from analysis.report.pareto import ParetoFront, hypervolume_2d, pareto_front, pareto_fronts
    from analysis.table.benchmark import Benchmark, TableKeyError
    from analysis.table.release import ChecksumError, read_release, write_release


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
