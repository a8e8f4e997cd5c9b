"""The control for a re-timed sweep: the release's own code and this tree's, now, same machine.

    python -m benchmarks.retime_control --commit 5da8024 --reps 2 \\
        plain8-c32-k1.2.2.2.2.2 plain8-c24-k1.24.24.24.24.24 plain8-c64-k1.g8.g8.g8 \\
        --out benchmarks/results/retime_control_cpu.json --update-doc docs/performance.md

Why: ``benchmarks.retime`` compares a re-run's trials with the seconds a release recorded,
on whatever machine and under whatever load that sweep ran. Where a design ran slower now,
either the code or the machine changed. Here each design's trial (``evaluators.evaluate``,
the ``cpu`` fidelity, CIFAR-10, seed 0, one thread, each in a fresh process as a sweep's
worker runs it) is run with the release's commit (checked out into a temporary git
worktree) and with this tree, alternating, ``--reps`` times each: the ratio of the
release's code now to the record is the machine's, the ratio of the two codes now is the
code's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.roofline import ROOT, publish
from evaluators.provenance import UNKNOWN_CODE, git_commit, training_code

OUT = ROOT / "benchmarks" / "results" / "retime_control_cpu.json"
RELEASE = ROOT / "releases" / "igcbench-1.1.parquet"
# one trial, timed as a record's wall_s, printed as JSON (run with the tree on PYTHONPATH)
TRIAL = ("import json, sys, evaluators as ev; r = ev.evaluate(sys.argv[1], fidelity='cpu', "
         "dataset='cifar10', seed=0, data_dir=sys.argv[2]); "
         "print(json.dumps({'wall_s': r.wall_s, 'status': r.status, 'test_acc': r.test_acc}))")


def trial(tree: Path, design: str, data_dir: Path) -> dict[str, Any]:
    """One trial of ``design`` with the code in ``tree``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", TRIAL, design, str(data_dir)], cwd=tree,
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(designs: list[str], commit: str, reps: int, data_dir: Path,
        release: pd.DataFrame) -> dict[str, Any]:
    """Per design: the recorded seconds, and each code's median seconds now."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "release"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), commit], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            for d in designs:
                rec = release[(release.design_id == d) & (release.seed == 0)
                              & (release.fidelity == "cpu") & (release.status == "ok")]
                times: dict[str, list[float]] = {"release_code": [], "this_code": []}
                accs: dict[str, set[float]] = {"release_code": set(), "this_code": set()}
                for r in range(reps):
                    order = [("release_code", old), ("this_code", ROOT)]
                    for name, tree in (order if r % 2 == 0 else order[::-1]):
                        t = trial(tree, d, data_dir)
                        times[name].append(t["wall_s"])
                        accs[name].add(t["test_acc"])
                        print(f"{d} {name} rep {r + 1}/{reps}: {t['wall_s']:.1f} s",
                              file=sys.stderr)
                med = {k: statistics.median(v) for k, v in times.items()}
                recorded = float(rec.wall_s.iloc[0]) if len(rec) else None
                rows.append({
                    "design": d, "recorded_s": recorded, "samples_s": times, **{
                        f"{k}_s": v for k, v in med.items()},
                    "machine_factor": None if recorded is None else med["release_code"] / recorded,
                    "code_speedup": med["release_code"] / med["this_code"],
                    "same_test_acc": accs["release_code"] == accs["this_code"]})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                           check=False, capture_output=True)
    return {"commit_release": commit, "reps": reps, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| design | recorded s | release's code now, s | this code now, s | machine "
             "(now / recorded) | code (release / this) |", "| --- | ---: | ---: | ---: | ---: "
             "| ---: |"]
    for r in result["rows"]:
        rec = "-" if r["recorded_s"] is None else f"{r['recorded_s']:.1f}"
        mf = "-" if r["machine_factor"] is None else f"{r['machine_factor']:.2f}"
        lines.append(f"| `{r['design']}` | {rec} | {r['release_code_s']:.1f} | "
                     f"{r['this_code_s']:.1f} | {mf} | {r['code_speedup']:.2f} |")
    lines.append("")
    lines.append(f"Release commit {result['commit_release']}, this tree at "
                 f"{result['commit'][:7]}, {result['reps']} trial(s) each, alternating, "
                 f"medians. Written {result['created']} (`{result['command']}`).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.retime_control",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("designs", nargs="+", help="design ids the release recorded at cpu, seed 0")
    p.add_argument("--commit", required=True, help="the release's commit")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--release", default=str(RELEASE))
    p.add_argument("--data-dir", default=str(ROOT / "data"))
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--update-doc", metavar="MD",
                   help="rewrite the <!-- retime-control --> block of this markdown file")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.exit(2, f"--reps {args.reps}: accepted: an integer >= 1\n")
    if not Path(args.release).is_file():
        p.exit(2, f"--release {args.release!r}: accepted: an existing release .parquet\n")
    if not (Path(args.data_dir) / "cifar-10-batches-py").is_dir():
        p.exit(2, f"--data-dir {args.data_dir!r}: no cifar-10-batches-py there; accepted: a "
               "directory holding CIFAR-10 (../shared/data/README)\n")
    if training_code(args.commit) == UNKNOWN_CODE:  # git does not know it
        p.exit(2, f"--commit {args.commit!r}: accepted: a commit of this repository\n")
    release = pd.read_parquet(args.release)
    unknown = [d for d in args.designs if d not in set(release.design_id)]
    if unknown:
        p.exit(2, f"design {unknown[0]!r}: accepted: a design the release recorded\n")
    result = run(args.designs, args.commit, args.reps, Path(args.data_dir), release)
    result["commit"] = git_commit()
    result["command"] = "python -m benchmarks.retime_control " + " ".join(
        sys.argv[1:] if argv is None else argv)
    result["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    print(markdown(result))
    publish(args, result, "retime-control", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
