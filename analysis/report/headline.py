"""The headline, recorded: runs of ``python studies/run.py --budget 0.65M --time-budget T``,
what each answered, and how its predictions compare with what a longer run measured.

``collect`` copies each run's state (``time_budget.json``, holding the answer and the whole
space, measured or predicted) and its records (a CSV, ``analysis.table.release``) into one
folder; ``table`` renders the two docs/studies.md blocks from that folder alone, so the test
that regenerates them needs no run directory:

- ``headline-runs``: per run, the time used, the designs measured (per rung) and predicted,
  the surrogate's held-out coverage, and the best design with its test interval;
- ``headline-check``: for each pair of runs, the designs one run *predicted* and the other
  *measured* at the same fidelity: how many, Kendall's tau between predicted and measured
  validation accuracy, and how often the prediction's 95% interval (of one seed's accuracy)
  covered the measured value.

    python -m analysis.report.headline collect runs/hl-15m-a runs/hl-15m-b runs/hl-1h \\
        --out docs/studies/headline
    python -m analysis.report.headline table docs/studies/headline --update docs/studies.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evaluators.record import write_atomic
from studies.estimate import fmt_seconds

STATE = "time_budget.json"
BLOCKS = ("headline-runs", "headline-check")


def collect(run_dirs: Sequence[str | Path], out: str | Path) -> list[Path]:
    """Copy each run's state and records into ``out/NAME/`` (NAME: the run folder's name)."""
    from analysis.load import load_results
    from analysis.table.release import write_records

    written = []
    for run in map(Path, run_dirs):
        if not (run / STATE).is_file():
            raise FileNotFoundError(f"{run}: no {STATE} (not a --time-budget run directory)")
        dest = Path(out) / run.name
        dest.mkdir(parents=True, exist_ok=True)
        state = (run / STATE).read_bytes()
        write_atomic(dest / STATE, lambda f, b=state: f.write(b))
        written.append(write_records(load_results(run), dest / "records.csv"))
    return written


def read_runs(folder: str | Path) -> dict[str, dict[str, Any]]:
    """``{name: {"state": ..., "records": DataFrame of ok records}}``, by name."""
    from analysis.table.release import read_records

    runs = {}
    for state in sorted(Path(folder).glob(f"*/{STATE}")):
        records = read_records(state.parent / "records.csv")
        runs[state.parent.name] = {"state": json.loads(state.read_text()),
                                   "records": records[records["status"] == "ok"]}
    if not runs:
        raise FileNotFoundError(f"{folder}: no run folders with a {STATE}")
    return runs


def run_row(name: str, state: Mapping[str, Any], records: pd.DataFrame) -> dict[str, Any]:
    """One run's line: its code (the records' commits), budget, time used, per-rung counts,
    the space, the best design."""
    answer = state["answer"]
    space = answer.get("space") or {}
    held = space.get("heldout") or {}
    best = answer.get("best") or {}
    commits = sorted({str(c)[:7] for c in records.get("commit", pd.Series()).dropna()})
    return {
        "run": name, "code": ", ".join(commits) or "?",
        "budget_s": answer["time_budget_s"], "used_s": answer["seconds"],
        "rungs": [(r["ladder"], r["ok"]) for r in answer["rungs"]],
        "measured": space.get("measured"), "predicted": space.get("predicted"),
        "candidates": answer["candidates"],
        "covered": (held.get("covered"), held.get("designs")),
        "kendall": held.get("kendall"),
        "best": best.get("design_id"), "best_rung": best.get("rung"),
        "test": (best.get("test_acc"), *(best.get("test_ci") or (None, None))),
    }


def check(predictor: Mapping[str, Any], measurer: pd.DataFrame) -> dict[str, Any]:
    """The designs ``predictor``'s answer predicted and ``measurer``'s records measured at
    the answer's reference fidelity: n, Kendall tau (predicted vs measured mean val_acc),
    and how many measured seeds fell inside the predicted 95% interval."""
    from scipy import stats

    space = predictor["answer"].get("space") or {}
    ref = space.get("reference")
    at = (measurer[measurer["fidelity"] == ref] if "fidelity" in measurer.columns
          else pd.DataFrame({"design_id": [], "val_acc": []}))  # a run with no record
    means = at.groupby("design_id")["val_acc"].mean()
    pairs = [(row, means[row["design_id"]]) for row in space.get("designs", [])
             if row["kind"] == "predicted" and row.get("val_acc") is not None
             and row["design_id"] in means.index]
    out: dict[str, Any] = {"reference": ref, "n": len(pairs), "kendall": None,
                           "covered": None, "seeds": None}
    if len(pairs) >= 3:
        tau = stats.kendalltau([p["val_acc"] for p, _ in pairs], [m for _, m in pairs])
        # NaN when either side is constant (a surrogate fitted on too few designs predicts
        # their mean for all): no ranking to compare.
        out["kendall"] = None if math.isnan(tau.statistic) else float(tau.statistic)
    inside = [(lo <= v <= hi) for p, _ in pairs if p.get("interval")
              for lo, hi in [p["interval"]]
              for v in at[at["design_id"] == p["design_id"]]["val_acc"]]
    if inside:
        out["covered"], out["seeds"] = sum(inside), len(inside)
    return out


def runs_block(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """The ``headline-runs`` markdown table."""
    lines = ["| run | code | budget | used | trained (rung: designs ok) | measured / predicted / "
             "designs | surrogate held out: 95% interval covered, tau | best (rung) | "
             "test [95% interval] |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, run in runs.items():
        r = run_row(name, run["state"], run["records"])
        cov, n = r["covered"]
        held = (f"{cov} of {n}, {r['kendall']:+.2f}" if cov is not None and
                r["kendall"] is not None else "none")
        acc, lo, hi = r["test"]
        test = f"{acc:.3f} [{lo:.3f}, {hi:.3f}]" if acc is not None else "none"
        best = f"`{r['best']}` ({r['best_rung']})" if r["best"] else "none (predicted only)"
        lines.append(f"| {name} | {r['code']} | {fmt_seconds(r['budget_s'])} | "
                     f"{fmt_seconds(r['used_s'])} | "
                     + ", ".join(f"{lad}: {ok}" for lad, ok in r["rungs"])
                     + f" | {r['measured']} / {r['predicted']} / {r['candidates']} | {held} "
                     f"| {best} | {test} |")
    return "\n".join(lines)


def check_block(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """The ``headline-check`` markdown table: every ordered pair with something to compare."""
    lines = ["| predicted by | measured by | designs | Kendall tau | measured seeds inside "
             "the 95% interval |", "| --- | --- | --- | --- | --- |"]
    for a, ra in runs.items():
        for b, rb in runs.items():
            if a == b:
                continue
            c = check(ra["state"], rb["records"])
            if not c["n"]:
                continue
            tau = (f"{c['kendall']:+.2f}" if c["kendall"] is not None else
                   "n < 3" if c["n"] < 3 else "undefined (a constant side)")
            cov = f"{c['covered']} of {c['seeds']}" if c["seeds"] else "none"
            lines.append(f"| {a} | {b} | {c['n']} | {tau} | {cov} |")
    if len(lines) == 2:
        lines.append("| (no design predicted by one run was measured by another) | | | | |")
    return "\n".join(lines)


def blocks(folder: str | Path) -> dict[str, str]:
    runs = read_runs(folder)
    return dict(zip(BLOCKS, (runs_block(runs), check_block(runs)), strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    from analysis.doc_blocks import update_doc

    p = argparse.ArgumentParser(prog="python -m analysis.report.headline",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="copy runs' state and records into one folder")
    c.add_argument("runs", nargs="+")
    c.add_argument("--out", required=True)
    t = sub.add_parser("table", help="print (or --update a doc's) headline blocks")
    t.add_argument("folder")
    t.add_argument("--update", metavar="DOC")
    a = p.parse_args(argv)
    try:
        if a.cmd == "collect":
            for path in collect(a.runs, a.out):
                print(path)
            return 0
        new = blocks(a.folder)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.update:
        update_doc(a.update, new)
    else:
        print("\n\n".join(new.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
