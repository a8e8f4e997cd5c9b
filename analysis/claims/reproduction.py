"""The reproduction report: committed record exports -> the verdict table of docs/reproduction.md.

    python -m analysis.claims.reproduction export runs/fig3-cpu-cifar10 ... --out docs/reproduction
    python -m analysis.claims.reproduction reports docs/reproduction  # HTML reports from CSVs
    python -m analysis.claims.reproduction table docs/reproduction

``export`` writes, per run directory, a compact records export (``<run>.csv``: one row per
record, the curve as JSON text; not Ray's working files) and the run's HTML report with its
figures (``<run>/report.html``). ``table`` recomputes every claim verdict from the exports
alone (each export one family of verdicts, Holm-adjusted) and prints the markdown tables
that docs/reproduction.md carries between its ``summary``, ``verdicts`` and ``designs``
markers; a test regenerates them and compares, so every number in the document comes from
the committed records. ``--update`` also rewrites the ``power`` block (analysis.claims.power_report:
the seeds and hours that resolve each claim) with ``power.json`` beside the exports (what
``studies/run.py --seeds-for-power`` reads), and the ``eq14`` block (analysis.claims.eq14: eq. 14
over the design space, reported once).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.claims.texts import CLAIMS, DESIGN_SPACE
from analysis.claims.verdicts import EXACT, Verdict
from analysis.cli import ArgumentParser
from analysis.stats import INCONCLUSIVE

#: The claims docs/reproduction.md must resolve or cost (issue 23, "What must hold"): Figure
#: 3's accuracy curve, Table 2 at each budget, Table 5 (balance), Tables 3 and 6.
MUST_RESOLVE = ("fig3_accuracy_concave", "fig3_best_not_widest", "table2_igcv2_vs_xception",
                "table5_igcv2ii_best", "table3_igcv2_vs_xception", "table3_igcv2_vs_igcv1",
                "table6_igcv2_vs_igcv1")
NO_VARIANCE = "no seed variance to scale (the power table lists none)"


def export(run_dirs: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """Write ``<run>.csv`` and ``<run>/report.html`` for each run directory."""
    from analysis.load import load_results
    from analysis.report.html import write_report
    from analysis.table.release import write_records

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for run in map(Path, run_dirs):
        df = load_results(run)
        written.append(write_records(df, out / f"{run.name}.csv"))
        write_report(run, out / run.name / "report.html")
    return written


def reports(export_dir: str | Path) -> list[Path]:
    """Rewrite ``<name>/report.html`` (and its figures) of every export from its CSV alone,
    so the committed reports follow the analysis code without the run directories."""
    import shutil

    from analysis.report.html import write_frame_report
    from analysis.table.release import read_records

    written = []
    for csv in sorted(Path(export_dir).glob("*.csv")):
        df = read_records(csv)  # before touching anything: a bad CSV changes nothing
        shutil.rmtree(csv.parent / csv.stem / "figures", ignore_errors=True)  # no stale ones
        written.append(write_frame_report(df, csv.parent / csv.stem / "report.html",
                                          name=csv.stem, config={"records export": csv.name}))
    return written


def verdict_rows(export_dir: str | Path) -> list[tuple[str, Verdict]]:
    """(sweep name, Verdict) for every claim tested on every export in the folder; each
    export is one sweep, so one family (claims.check_claims)."""
    from analysis.claims.check import check_claims
    from analysis.claims.code_groups import read_equalities
    from analysis.table.release import read_records

    equal = read_equalities(export_dir)  # the rechecks beside the exports
    rows = []
    for csv in sorted(Path(export_dir).glob("*.csv")):
        df = read_records(csv)
        rows += [(csv.stem, v) for v in check_claims(df, equalities=equal)]
    return rows


def _num(x: float) -> str:
    """Three significant digits; an exact zero (either sign) prints as 0.

    >>> _num(-0.0), _num(0.0123456), _num(float("nan"))
    ('0', '0.0123', '')
    """
    return "" if not math.isfinite(x) else f"{x + 0.0:.3g}"


def _ci(lo: float, hi: float) -> str:
    return "" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:.3g}, {hi:.3g}]"


def _adjusted(v: Verdict) -> str:
    if v.unit == EXACT:
        return "(exact)"
    return f"{_ci(v.adj_low, v.adj_high)} at {v.adj_level:.1%}"


def verdict_table(export_dir: str | Path) -> str:
    """The markdown table of every tested verdict of all exports in the folder: the
    Holm-adjusted decision, the raw one, both intervals, the unit of inference, and the
    training code of its records (with those left out for another code)."""
    lines = [
        "| sweep | claim | paper | verdict (Holm) | raw verdict | effect | raw 95% interval | "
        "adjusted interval | p (raw / Holm) | unit | n | training code (records) | detail |",
        "| --- | --- | --- | --- | --- | ---: | --- | --- | --- | --- | ---: | --- | --- |",
    ]
    for sweep, v in verdict_rows(export_dir):
        if not v.tested:
            continue
        p = "" if not math.isfinite(v.p_value) else f"{v.p_value:.2g} / {v.p_adjusted:.2g}"
        lines.append(
            f"| {sweep} | {v.statement} | {CLAIMS[v.claim].source} | **{v.verdict}** | "
            f"{v.raw_verdict} | {_num(v.effect)} | {_ci(v.ci_low, v.ci_high)} | "
            f"{_adjusted(v)} | {p} | {v.unit} | {v.n} | {v.training_code} | "
            f"{v.detail.replace('|', '/')} |"
        )
    return "\n".join(lines)


def code_table(export_dir: str | Path) -> str:
    """Per export and slice: the training codes of its records, the one its verdicts use
    (analysis.claims.code_groups.one_code, as check_claims) and the records left out."""
    from analysis.claims import code_groups, selection
    from analysis.table.release import read_records

    equal = code_groups.read_equalities(export_dir)
    lines = ["| sweep | fidelity | records per training code | the verdicts use | left out |",
             "| --- | --- | --- | --- | ---: |"]
    for csv in sorted(Path(export_dir).glob("*.csv")):
        for fid, _ds, rows in selection.slices(read_records(csv)):
            kept, choice = code_groups.one_code(rows, equal)
            counts = code_groups.with_training_code(rows)[code_groups.CODE_COLUMN]
            per_code = ", ".join(f"{c}: {n}" for c, n in sorted(counts.value_counts().items()))
            lines.append(f"| {csv.stem} | {fid} | {per_code} | {choice.describe()} | "
                         f"{choice.n_left_out} |")
    return "\n".join(lines)


#: Why a claim no sweep can test is not tested, where more can be said than "no designs".
UNTESTED = {
    "balance_condition": "not tested: no sweep holds balanced and unbalanced separated-form "
                         "designs (channel-wise 3x3) at equal L and parameters; the paper tests "
                         "eq. 11 by Table 5 (IGCV2 II, balanced, against IGCV2 I and IGCV1): "
                         "its row below",
}


def summary_table(export_dir: str | Path) -> str:
    """One row per claim of the paper: its adjusted verdict on each sweep that tested it;
    for a claim of :data:`MUST_RESOLVE`, each verdict that does not resolve and each sweep
    (or preset never run) that cannot test it says what resolving it takes
    (power_report.statements: seeds per design and hours, from the measured variance)."""
    from analysis.claims import power_report

    needs = power_report.statements(export_dir)
    by_claim: dict[str, list[str]] = {c: [] for c in CLAIMS}
    tested = set()
    for sweep, v in verdict_rows(export_dir):
        if v.tested:
            tested.add((sweep, v.claim))
            interval = _ci(v.adj_low, v.adj_high) if v.unit != EXACT else "exact"
            cell = f"{sweep}: **{v.verdict}** ({v.unit}; {_num(v.effect)} {interval})"
            if v.claim in MUST_RESOLVE and v.verdict == INCONCLUSIVE:
                cell += f"; to resolve: {needs.get((sweep, v.claim), NO_VARIANCE)}"
            by_claim[v.claim].append(cell)
    for (sweep, claim), text in needs.items():
        if claim in MUST_RESOLVE and (sweep, claim) not in tested:
            not_run = "" if sweep.endswith("(not run)") else ": not tested (too few seeds)"
            by_claim[claim].append(f"{sweep}{not_run}; to resolve: {text}")
    lines = ["| claim | paper | verdicts (Holm-adjusted; effect and adjusted interval) |",
             "| --- | --- | --- |"]
    for claim, cells in by_claim.items():
        text = "<br>".join(cells) or UNTESTED.get(
            claim, "not tested: no sweep here holds its designs")
        if claim in DESIGN_SPACE:  # arithmetic over designs: reported once, not a verdict
            text = "a fact of the design space, not a data verdict: see \"Eq. 14 over the " \
                   "design space\""
        lines.append(f"| {CLAIMS[claim].statement} | {CLAIMS[claim].source} | {text} |")
    return "\n".join(lines)


def cost_table(export_dir: str | Path) -> str:
    """Per export: trials, trial seconds, and the span from the first trial's start to the
    last one's end (from each record's ``created`` and ``wall_s``; a span includes any
    pause between interrupted runs of the sweep and the load of the machine then)."""
    import pandas as pd

    from analysis.table.release import read_records

    lines = ["| sweep | fidelity | trials | seconds per trial (median, range) | trial-hours | "
             "span, first start to last end |", "| --- | --- | ---: | --- | ---: | --- |"]
    for csv in sorted(Path(export_dir).glob("*.csv")):
        df = read_records(csv)
        end = pd.to_datetime(df["created"], utc=True)
        start = end - pd.to_timedelta(df["wall_s"], unit="s")
        span = (end.max() - start.min()).total_seconds()
        w = df["wall_s"]
        lines.append(f"| {csv.stem} | {df['fidelity'].iloc[0]} | {len(df)} | {w.median():.0f} "
                     f"({w.min():.0f}-{w.max():.0f}) | {w.sum() / 3600:.2f} | "
                     f"{int(span // 3600)} h {int(span % 3600 // 60):02d} min |")
    return "\n".join(lines)


def design_table(export_dir: str | Path) -> str:
    """Per sweep and design: test and validation accuracy over seeds (mean, sd, n), wall s."""
    from analysis.table.release import read_records

    lines = [
        "| sweep | design | family | L | width | params | test acc (mean ± sd) | "
        "val acc | seeds | wall s / trial |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for csv in sorted(Path(export_dir).glob("*.csv")):
        df = read_records(csv)
        ok = df[df["status"] == "ok"]
        for design_id, g in sorted(ok.groupby("design_id"), key=lambda x: -x[1].test_acc.mean()):
            r = g.iloc[0]
            sd = f" ± {g.test_acc.std(ddof=1):.3f}" if len(g) > 1 else ""  # one seed: no sd
            lines.append(
                f"| {csv.stem} | `{design_id}` | {r.family} | {r.L} | {r.width} | "
                f"{int(r.params):,} | {g.test_acc.mean():.3f}{sd} | "
                f"{g.val_acc.mean():.3f} | {len(g)} | {g.wall_s.mean():.0f} |"
            )
    return "\n".join(lines)


def update_doc(doc_path: str | Path, export_dir: str | Path) -> bool:
    """Rewrite the summary, cost, verdict, rank-agreement and design tables between their
    markers in ``doc_path``: those it carries (docs/reproduction.md all, docs/fidelities.md
    the rank agreement), at least one.

    The rest of the document is left as it is; the file is replaced atomically. Returns
    whether anything changed.
    """
    from analysis.claims import eq14, power_report
    from analysis.claims.rank_agreement import table as rank_table
    from analysis.doc_blocks import markers
    from analysis.doc_blocks import update_doc as rewrite

    makers = {"summary": summary_table, "costs": cost_table, "verdicts": verdict_table,
              "codes": code_table,
              "ranks": rank_table, "designs": design_table, "power": power_report.table,
              "eq14": lambda _d: eq14.table()}
    text = Path(doc_path).read_text()
    carried = [b for b in makers if all(m in text for m in markers(b))]
    if not carried:
        raise ValueError(f"no block of {', '.join(makers)} between its markers")
    blocks = {b: makers[b](export_dir) for b in carried}
    changed = False
    if "power" in carried:
        changed = write_plan(export_dir)
    return rewrite(doc_path, blocks) or changed


def write_plan(export_dir: str | Path) -> bool:
    """Write ``power.json`` (power_report.plan) beside the exports; whether it changed."""
    import json

    from analysis.claims import power_report
    from evaluators.record import write_json_atomic

    path = Path(export_dir) / "power.json"
    data = power_report.plan(export_dir)
    if path.is_file() and json.loads(path.read_text()) == data:
        return False
    write_json_atomic(path, data)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m analysis.claims.reproduction", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=ArgumentParser)
    e = sub.add_parser("export", help="records export + HTML report per run directory")
    e.add_argument("runs", nargs="+")
    e.add_argument("--out", required=True)
    r = sub.add_parser("reports", help="rewrite every export's HTML report from its CSV")
    r.add_argument("export_dir")
    t = sub.add_parser("table", help="print the verdict table from the exports")
    t.add_argument("export_dir")
    what = t.add_mutually_exclusive_group()
    what.add_argument("--designs", action="store_true", help="the per-design table instead")
    what.add_argument("--summary", action="store_true", help="the per-claim summary instead")
    t.add_argument("--update", metavar="DOC", default=None,
                   help="rewrite every table in DOC (between their markers) instead of printing")
    args = p.parse_args(argv)
    if args.cmd == "export":
        missing = [r for r in args.runs if not (Path(r) / "records").is_dir()]
        if missing:
            print(f"{p.prog}: error: no records in {missing[0]}", file=sys.stderr)
            return 2
        for path in export(args.runs, args.out):
            print(path)
        return 0
    if not any(Path(args.export_dir).glob("*.csv")):
        print(f"{p.prog}: error: no *.csv exports in {args.export_dir}", file=sys.stderr)
        return 2
    if args.cmd == "reports":
        for path in reports(args.export_dir):
            print(path)
        return 0
    if args.update:
        try:
            changed = update_doc(args.update, args.export_dir)
        except (OSError, ValueError) as exc:
            print(f"{p.prog}: error: {args.update}: {exc}", file=sys.stderr)
            return 2
        print(f"{args.update}: tables {'updated' if changed else 'already current'}")
        return 0
    table = (design_table if args.designs else summary_table if args.summary
             else verdict_table)
    print(table(args.export_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
