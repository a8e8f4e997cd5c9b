"""The reproduction report: committed record exports -> the verdict table of docs/reproduction.md.

    python -m analysis.reproduction export runs/fig3-cpu-cifar10 ... --out docs/reproduction
    python -m analysis.reproduction table docs/reproduction

``export`` writes, per run directory, a compact records export (``<run>.csv``: one row per
record, the curve as JSON text; not Ray's working files) and the run's HTML report with its
figures (``<run>/report.html``). ``table`` recomputes every claim verdict from the exports
alone and prints the markdown table that docs/reproduction.md carries between its
``verdicts`` markers; a test regenerates it and compares, so every number in the document
comes from the committed records.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from .doc_blocks import between, markers

BEGIN, END = markers("verdicts")
DESIGNS_BEGIN, DESIGNS_END = markers("designs")


def export(run_dirs: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """Write ``<run>.csv`` and ``<run>/report.html`` for each run directory."""
    from .load import load_results
    from .release import write_records
    from .report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for run in map(Path, run_dirs):
        df = load_results(run)
        written.append(write_records(df, out / f"{run.name}.csv"))
        write_report(run, out / run.name / "report.html")
    return written


def verdict_rows(export_dir: str | Path) -> list[tuple[str, object]]:
    """(sweep name, Verdict) for every claim tested on every export in the folder."""
    from .claims import check_claims
    from .release import read_records

    rows = []
    for csv in sorted(Path(export_dir).glob("*.csv")):
        df = read_records(csv)
        rows += [(csv.stem, v) for v in check_claims(df)]
    return rows


def verdict_table(export_dir: str | Path) -> str:
    """The markdown verdict table of all exports in the folder."""
    lines = [
        "| sweep | claim | fidelity / dataset | verdict | effect | 95% interval | n | detail |",
        "| --- | --- | --- | --- | ---: | --- | ---: | --- |",
    ]
    for sweep, v in verdict_rows(export_dir):
        ci = "" if math.isnan(v.ci_low) else f"[{v.ci_low:.3g}, {v.ci_high:.3g}]"
        effect = "" if math.isnan(v.effect) else f"{v.effect:.3g}"
        lines.append(
            f"| {sweep} | {v.statement} | {v.fidelity} / {v.dataset} | **{v.verdict}** | "
            f"{effect} | {ci} | {v.n} | {v.detail.replace('|', '/')} |"
        )
    return "\n".join(lines)


def design_table(export_dir: str | Path) -> str:
    """Per sweep and design: test and validation accuracy over seeds (mean, sd, n), wall s."""
    from .release import read_records

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
            lines.append(
                f"| {csv.stem} | `{design_id}` | {r.family} | {r.L} | {r.width} | "
                f"{int(r.params):,} | {g.test_acc.mean():.3f} ± {g.test_acc.std(ddof=1):.3f} | "
                f"{g.val_acc.mean():.3f} | {len(g)} | {g.wall_s.mean():.0f} |"
            )
    return "\n".join(lines)


def table_in_doc(doc: str, begin: str = BEGIN, end: str = END) -> str:
    """The table a document carries between two markers (the verdicts block by default)."""
    return between(doc, begin, end)


def update_doc(doc_path: str | Path, export_dir: str | Path) -> bool:
    """Rewrite the verdict and design tables between their markers in ``doc_path``.

    The rest of the document is left as it is; the file is replaced atomically. Returns
    whether anything changed.
    """
    from .doc_blocks import update_doc as rewrite

    return rewrite(doc_path, {"verdicts": verdict_table(export_dir),
                              "designs": design_table(export_dir)})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.reproduction", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="records export + HTML report per run directory")
    e.add_argument("runs", nargs="+")
    e.add_argument("--out", required=True)
    t = sub.add_parser("table", help="print the verdict table from the exports")
    t.add_argument("export_dir")
    t.add_argument("--designs", action="store_true", help="the per-design table instead")
    t.add_argument("--update", metavar="DOC", default=None,
                   help="rewrite both tables in DOC (between their markers) instead of printing")
    args = p.parse_args(argv)
    if args.cmd == "export":
        missing = [r for r in args.runs if not (Path(r) / "records").is_dir()]
        if missing:
            print(f"analysis.reproduction: error: no records in {missing[0]}", file=sys.stderr)
            return 2
        for path in export(args.runs, args.out):
            print(path)
        return 0
    if not any(Path(args.export_dir).glob("*.csv")):
        print(f"analysis.reproduction: error: no *.csv exports in {args.export_dir}",
              file=sys.stderr)
        return 2
    if args.update:
        try:
            changed = update_doc(args.update, args.export_dir)
        except (OSError, ValueError) as exc:
            print(f"analysis.reproduction: error: {args.update}: {exc}", file=sys.stderr)
            return 2
        print(f"{args.update}: tables {'updated' if changed else 'already current'}")
        return 0
    print(design_table(args.export_dir) if args.designs else verdict_table(args.export_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
