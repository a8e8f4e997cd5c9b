"""A sweep re-run with today's code, timed against the records a release holds for it.

    python -m benchmarks.retime RUN_DIR --release releases/igcbench-1.1.parquet --seed 0 \\
        --out benchmarks/results/retime_table40k_cpu.json --update-doc docs/performance.md

Issue 24 asks for table 1.1's ``cpu`` sweep of seed 0 re-timed with the grouped path:
``python studies/run.py --preset table40k --fidelity cpu --seeds 0 --data-dir data --yes
--run-dir RUN_DIR`` (two trials at a time, as the release's sweep ran), then this. Each trial's
``wall_s`` (its whole evaluation: data, training, scoring, latency) is compared with the
release's record of the same design, fidelity and seed, design by design; a sweep cut short
compares the designs it finished. Both sweeps ran two trials side by side on this 2-core
machine; the load each saw beyond that is not known, so the ratio is a sweep's, not a
kernel's (``benchmarks.roofline`` times the steps alone).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from evaluators.record import read_records, records_dir, write_json_atomic

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "retime_table40k_cpu.json"


def compare(run_dir: Path, release: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Per design finished ``ok`` in ``run_dir`` at ``seed``: its seconds now and recorded."""
    now = {r["design_id"]: r for _, r in read_records(records_dir(run_dir))
           if r.get("status") == "ok" and r.get("seed") == seed}
    if not now:
        raise ValueError(f"{run_dir}: no ok record of seed {seed}")
    fidelities = {r["fidelity"] for r in now.values()}
    old = release[(release.seed == seed) & release.fidelity.isin(fidelities)
                  & (release.status == "ok")].set_index("design_id")
    rows = [{"design": d, "recorded_s": float(old.wall_s[d]), "now_s": float(r["wall_s"]),
             "speedup": float(old.wall_s[d]) / float(r["wall_s"])}
            for d, r in sorted(now.items()) if d in old.index]
    if not rows:
        raise ValueError(f"{run_dir}: none of its designs is in the release at seed {seed}")
    recorded, took = (sum(r[k] for r in rows) for k in ("recorded_s", "now_s"))
    return {"fidelities": sorted(fidelities), "seed": seed,
            "commits_now": sorted({r["commit"] for r in now.values()}),
            "commits_recorded": sorted(set(old.commit[[r["design"] for r in rows]])),
            "designs_in_release": int(len(old)), "rows": rows,
            "summary": {"designs": len(rows), "recorded_s": recorded, "now_s": took,
                        "total_speedup": recorded / took,
                        "median_speedup": statistics.median(r["speedup"] for r in rows),
                        "min_speedup": min(r["speedup"] for r in rows),
                        "max_speedup": max(r["speedup"] for r in rows)}}


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    return (f"{s['designs']} of the release's {result['designs_in_release']} designs "
            f"(fidelity {', '.join(result['fidelities'])}, seed {result['seed']}), trials' "
            f"seconds: {s['recorded_s'] / 3600:.2f} h recorded (commit "
            f"{', '.join(c[:7] for c in result['commits_recorded'])}), "
            f"{s['now_s'] / 3600:.2f} h now (commit "
            f"{', '.join(c[:7] for c in result['commits_now'])}): **{s['total_speedup']:.2f}x** "
            f"in total; per design median {s['median_speedup']:.2f}x, range "
            f"{s['min_speedup']:.2f}-{s['max_speedup']:.2f}x. Written {result['created']} "
            f"(`{result['command']}`).")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.retime",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="the re-run sweep's run directory")
    p.add_argument("--release", required=True, help="a release's .parquet (its records)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--update-doc", metavar="MD",
                   help="rewrite the <!-- retime --> block of this markdown file")
    args = p.parse_args(argv)
    if not records_dir(args.run_dir).is_dir():
        p.exit(2, f"run_dir {args.run_dir!r}: no records/ in it; accepted: a sweep's run "
               "directory\n")
    if not Path(args.release).is_file() or not args.release.endswith(".parquet"):
        p.exit(2, f"--release {args.release!r}: accepted: an existing release .parquet\n")
    if not Path(args.out).parent.is_dir():
        p.exit(2, f"--out {args.out!r}: directory {Path(args.out).parent} does not exist\n")
    try:
        result = compare(Path(args.run_dir), pd.read_parquet(args.release), args.seed)
    except ValueError as e:
        p.exit(2, f"{e}\n")
    result["command"] = "python -m benchmarks.retime " + " ".join(
        sys.argv[1:] if argv is None else argv)
    result["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    write_json_atomic(args.out, result)
    print(markdown(result))
    if args.update_doc:
        from analysis.doc_blocks import update_doc

        update_doc(args.update_doc, {"retime": markdown(result)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
