"""Do committed records reproduce? Re-run a random sample of them and compare exactly.

    nice python -m benchmarks.recheck docs/reproduction releases --sample 10 --seed 0 \\
        --max-wall-s 80 --out docs/reproduction/recheck.json

SOURCE: record exports (.csv, .parquet; ``analysis.table.release.read_records``) or folders of
them. A candidate is a CPU training record that finished (status ok, device cpu, no
zero-cost scores); the same record in several exports (a release and its candidate, two
sweeps sharing a design) is one candidate. The sample is random (``--seed``) and stratified:
first one record of each source, in a random order of the sources, then at random from all,
each among the candidates whose recorded ``wall_s`` is at most ``--max-wall-s`` (if given).

Each record is re-trained in a fresh process from its own ``fidelity_config`` (design,
dataset, seed, CPU, the threads it recorded), ``--at head`` with this checkout's training
code, or ``--at recorded`` with the code of its commit (``git archive`` of search_space/ and
evaluators/ into a temporary folder). CPU training is deterministic, so the same code gives
the same numbers: the report says, per record, whether the final val and test accuracy and
every curve row (train loss, train accuracy, val accuracy) are equal, and the differences
where they are not. The JSON names the training code of each side
(``evaluators.provenance.training_code``); ``analysis.claims.rank_agreement`` pools two
codes' records only when a recheck found them equal.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis.cli import ArgumentParser
from evaluators.provenance import (
    REPO,
    TRAINING_CODE,
    checkout_provenance,
    checkout_training_code,
    record_training_code,
    training_code,
)
from evaluators.record import KEY, utc_now, write_json_atomic

CURVE_FIELDS = ("train_loss", "train_acc", "val_acc")  # what a re-run must repeat per epoch
#: Tolerance for an accuracy read back from a CSV column (the parser may round the last
#: bit); the curve is JSON text and compared exactly.
COLUMN_TOL = 1e-12
# A fresh process per record (as a sweep's worker): the code under test is whatever
# `evaluators` its PYTHONPATH holds; Fidelity(**config) and evaluate() exist at every commit
# that made a committed record.
_RERUN = """
import json, sys
import evaluators as ev
a = json.loads(sys.argv[1])
cfg = dict(a["config"])
cfg["lr_milestones"] = tuple(cfg["lr_milestones"])
r = ev.evaluate(a["design_id"], ev.Fidelity(**cfg), a["dataset"], a["seed"], a["data_dir"],
                device="cpu")
print("RESULT " + json.dumps({"status": r.status, "reason": r.reason, "val_acc": r.val_acc,
                              "test_acc": r.test_acc, "curve": list(r.curve),
                              "wall_s": r.wall_s}))
"""


def candidates(sources: Sequence[Path]) -> list[dict[str, Any]]:
    """The CPU training records of the exports, one per distinct record, with its sources."""
    from analysis.table.release import read_records

    files = [f for s in sources for f in
             (sorted([*s.glob("*.csv"), *s.glob("*.parquet")]) if s.is_dir() else [s])]
    seen: dict[tuple, dict[str, Any]] = {}
    for f in files:
        df = read_records(f)
        ok = df["status"].eq("ok") & df["device"].eq("cpu")
        if "zero_cost" in df.columns:
            ok &= df["zero_cost"].isna()
        for rec in df[ok].to_dict("records"):
            ident = (*(rec[k] for k in KEY), rec.get("commit"), rec["val_acc"], rec["test_acc"])
            seen.setdefault(ident, {**rec, "sources": []})["sources"].append(f.name)
    return list(seen.values())


def sample(records: list[dict[str, Any]], n: int, seed: int,
           max_wall_s: float | None) -> list[dict[str, Any]]:
    """``n`` records: one per source first (sources in a random order), then any."""
    rng = random.Random(seed)
    pool = [r for r in records if max_wall_s is None or float(r["wall_s"]) <= max_wall_s]
    rng.shuffle(pool)
    sources = sorted({s for r in pool for s in r["sources"]})
    rng.shuffle(sources)
    picked: list[dict[str, Any]] = []
    for source in sources:
        first = next((r for r in pool if source in r["sources"] and r not in picked), None)
        if first is not None and len(picked) < n:
            picked.append(first)
    picked += [r for r in pool if r not in picked][:n - len(picked)]
    return picked


def rerun(record: dict[str, Any], code_root: Path, data_dir: Path) -> dict[str, Any]:
    """Train the record again with the training code under ``code_root``."""
    args = {"config": record["fidelity_config"], "design_id": record["design_id"],
            "dataset": record["dataset"], "seed": int(record["seed"]),
            "data_dir": str(data_dir)}
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    done = subprocess.run([sys.executable, "-c", _RERUN, json.dumps(args)], cwd=code_root,
                          env=env, capture_output=True, text=True, check=False)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not lines:
        tail = " ".join(done.stderr.split()[-40:])
        return {"status": "failed", "reason": f"re-run exited {done.returncode}: {tail}"}
    return json.loads(lines[-1][len("RESULT "):])


def compare(record: dict[str, Any], again: dict[str, Any]) -> dict[str, Any]:
    """Equal or not, and by how much: final accuracies and every curve row."""
    if again.get("status") != "ok":
        return {"equal": False, "why": again.get("reason") or "not ok"}
    old, new = record["curve"], again["curve"]
    rows = min(len(old), len(new))
    curve_diff = {f: max((abs(new[i][f] - old[i][f]) for i in range(rows)), default=0.0)
                  for f in CURVE_FIELDS}
    val_diff = again["val_acc"] - float(record["val_acc"])
    test_diff = again["test_acc"] - float(record["test_acc"])
    equal = (len(old) == len(new) and all(v == 0 for v in curve_diff.values())
             and abs(val_diff) <= COLUMN_TOL and abs(test_diff) <= COLUMN_TOL)
    return {"equal": equal, "val_acc_diff": val_diff, "test_acc_diff": test_diff,
            "curve_max_abs_diff": curve_diff, "epochs": [len(old), len(new)]}


def duplicates(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rechecks that cost nothing: a key the exports hold under two training codes (a design
    two sweeps share, made by different code) compared as a re-run is. One entry per such
    pair of codes and key, the older code as "recorded"."""
    by_key: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        by_key.setdefault(tuple(r[k] for k in KEY), []).append(r)
    out = []
    for same in by_key.values():
        coded = {record_training_code(r): r for r in sorted(same, key=lambda r: r["created"])}
        codes = list(coded)
        for i, a in enumerate(codes):
            for b in codes[i + 1:]:
                old, new = coded[a], coded[b]
                again = {"status": "ok", **{k: new[k] for k in ("val_acc", "test_acc",
                                                                  "curve", "wall_s")}}
                out.append({**{k: old[k] for k in KEY},
                            "sources": sorted({*old["sources"], *new["sources"]}),
                            "commit": old["commit"], "recorded_code": a, "at": "exports",
                            "rerun_code": b, "recorded": _numbers(old), "rerun": _numbers(new),
                            **compare(old, again)})
    return out


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(record[k]) for k in ("val_acc", "test_acc", "wall_s")}


def archive(commit: str, into: Path) -> None:
    """The training code of ``commit`` (TRAINING_CODE folders) under ``into``."""
    tar = subprocess.run(["git", "archive", commit, *TRAINING_CODE], cwd=REPO,
                         capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)


def recheck_one(record: dict[str, Any], at: str, data_dir: Path) -> dict[str, Any]:
    start = time.perf_counter()
    if at == "head":
        code = checkout_training_code(REPO)  # before: the re-run imports the code as it is
        again = rerun(record, REPO, data_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="recheck-") as tmp:
            archive(record["commit"], Path(tmp))
            again, code = rerun(record, Path(tmp), data_dir), training_code(record["commit"])
    return {**{k: record[k] for k in KEY}, "sources": record["sources"],
            "commit": record["commit"], "recorded_code": record_training_code(record),
            "at": at, "rerun_code": code, "recorded": _numbers(record),
            "rerun": {k: again.get(k) for k in ("status", "reason", "val_acc", "test_acc",
                                                "wall_s")},
            **compare(record, again), "seconds": time.perf_counter() - start}


def markdown(doc: dict[str, Any]) -> str:
    """The table docs/fidelities.md carries: one row per re-run record, then the count;
    for ``--at exports``, one row per pair of codes."""
    if doc["at"] == "exports":
        return _pairs_markdown(doc)
    lines = ["| record (design, fidelity, seed) | in | training code: recorded -> re-run | "
             "val acc: recorded, re-run | test acc: recorded, re-run | equal |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in doc["records"]:
        again = r["rerun"]
        val = "-" if again.get("val_acc") is None else f"{again['val_acc']:.5f}"
        test = "-" if again.get("test_acc") is None else f"{again['test_acc']:.5f}"
        equal = "yes" if r["equal"] else (
            "no" if "curve_max_abs_diff" not in r else
            f"no (train loss up to {r['curve_max_abs_diff']['train_loss']:.3g} apart)")
        lines.append(
            f"| `{r['design_id']}` {r['fidelity']} {r['seed']} | "
            f"{', '.join(x.rsplit('.', 1)[0] for x in r['sources'])} | "
            f"{r['recorded_code']} -> {r['rerun_code']} | "
            f"{r['recorded']['val_acc']:.5f}, {val} | {r['recorded']['test_acc']:.5f}, {test} | "
            f"{equal} |")
    lines.append(f"\n{doc['equal']} of {doc['rechecked']} re-ran equal "
                 f"(`--at {doc['at']}`, head {doc['head'][:10]}).")
    return "\n".join(lines)


def _pairs_markdown(doc: dict[str, Any]) -> str:
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in doc["records"]:
        pairs.setdefault((r["recorded_code"], r["rerun_code"]), []).append(r)
    lines = ["| older code -> newer code | keys held under both | equal | in |",
             "| --- | --- | ---: | --- |"]
    for (a, b), rows in sorted(pairs.items()):
        keys = ", ".join(f"`{r['design_id']}` {r['fidelity']} {r['seed']}" for r in rows[:3])
        more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
        sources = sorted({s.rsplit(".", 1)[0] for r in rows for s in r["sources"]})
        lines.append(f"| {a} -> {b} | {keys}{more} | {sum(r['equal'] for r in rows)} of "
                     f"{len(rows)} | {', '.join(sources)} |")
    lines.append(f"\n{doc['equal']} of {doc['rechecked']} pairs equal (`--at exports`: no "
                 "re-run, the committed records of one key under two codes compared).")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.recheck",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("sources", nargs="*", type=Path, help="record exports or folders of them")
    p.add_argument("--sample", type=int, default=10, help="records to re-run (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seeds the sample (default 0)")
    p.add_argument("--at", choices=("head", "recorded", "exports"), default="head",
                   help="the training code to re-run with (default head); exports: re-run "
                        "nothing, compare the keys the exports hold under two codes")
    p.add_argument("--max-wall-s", type=float, default=None,
                   help="sample only records whose recorded wall_s is at most this")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("IGCBENCH_DATA",
                                                                          "data")))
    p.add_argument("--out", type=Path, required=True, help="the JSON report to write")
    p.add_argument("--markdown", action="store_true",
                   help="print the doc's table from --out and re-run nothing")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return 0
    if not args.sources:
        p.error("no SOURCE: give record exports (.csv, .parquet) or folders of them")
    if args.sample < 1:
        p.error(f"--sample {args.sample}: expected an integer >= 1")
    missing = [str(s) for s in args.sources if not s.exists()]
    if missing:
        p.error(f"no such export or folder: {missing[0]}")
    try:
        found = candidates(args.sources)
    except (OSError, ValueError) as exc:
        p.error(" ".join(str(exc).split()))
    picked = [] if args.at == "exports" else sample(found, args.sample, args.seed,
                                                    args.max_wall_s)
    if not picked and args.at != "exports":
        p.error("no CPU training record in the sources (within --max-wall-s)")
    data_dir = args.data_dir.resolve()
    results = duplicates(found) if args.at == "exports" else []
    for record in picked:
        results.append(recheck_one(record, args.at, data_dir))
        print(f"{record['design_id']} {record['fidelity']} seed {record['seed']}: "
              f"{'equal' if results[-1]['equal'] else 'differs'}", flush=True)
    write_json_atomic(args.out, {
        "command": " ".join(["python -m benchmarks.recheck", *map(str, argv or sys.argv[1:])]),
        "created": utc_now(), "head": checkout_provenance(REPO).commit,
        "sample": args.sample, "seed": args.seed, "at": args.at,
        "max_wall_s": args.max_wall_s, "records": results,
        "equal": sum(r["equal"] for r in results), "rechecked": len(results)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
