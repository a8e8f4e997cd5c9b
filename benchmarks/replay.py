"""Replay every search strategy against a table in simulated time; JSON summary + figures.

    python -m benchmarks.replay TABLE --workers 1 4 --repeats 10 --out DIR
    python -m benchmarks.replay --synthetic 100x3x30 --workers 1 4 --repeats 10 --out DIR

TABLE is a run directory, a records export or a release (analysis.table.benchmark.Benchmark.load).
``--synthetic DxSxE`` first writes a synthetic table of D designs x S seeds x E epochs (a run
directory and its release under DIR/synthetic/) and replays that, for trying the machinery.

Writes DIR/replay.json (settings, the table's best design, per (strategy, scheduler, workers)
the mean/std/median/min/max over repeats of the simulated time and of the epochs to reach the
best design, every repeat's numbers (``epochs_to_near`` too: the epochs until the incumbent
came within the table's seed noise, ``near_regret``, of the best), and the load/query
timings of the table) and
DIR/regret_time.{png,svg}, DIR/regret_epochs.{png,svg}. Bad input: one line, exit 2, no files.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

from analysis.cli import ArgumentParser, fail
from evaluators.record import write_json_atomic

QUERY_REPS = 2000  # warm queries timed (a dict hit)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from analysis.replay.simulate import SCHEDULERS, SEED_MODES
    from studies.searches import SEARCHES, SWEEP_SEARCHES

    p = ArgumentParser(prog="python -m benchmarks.replay", description=__doc__.split("\n\n")[0])
    p.add_argument("table", nargs="?", help="run directory, records export or release")
    p.add_argument("--synthetic", metavar="DxSxE", help="replay a synthetic table instead")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--fidelity", help="the table's fidelity (needed when it has several)")
    p.add_argument("--dataset", help="the table's dataset (needed when it has several)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--strategies", nargs="+", default=list(SWEEP_SEARCHES), choices=SEARCHES)
    p.add_argument("--scores", help="zero-cost scores of the table's designs (a scores CSV "
                                    "or zc run directory), for the zc-* strategies")
    p.add_argument("--proxy", nargs="+", default=["synflow"],
                   help="the zero-cost score(s) of the zc-* strategies, each replayed")
    p.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS), choices=SCHEDULERS)
    p.add_argument("--seed-mode", default="draw", choices=SEED_MODES)
    p.add_argument("--reduction-factor", type=float, default=3.0)
    p.add_argument("--grace-period", type=int, default=1)
    p.add_argument("--max-trials", type=int, default=None)
    args = p.parse_args(argv)
    if (args.table is None) == (args.synthetic is None):
        p.error("give TABLE or --synthetic DxSxE (one of them)")
    if args.synthetic and not re.fullmatch(r"\d+x\d+x\d+", args.synthetic):
        p.error(f"--synthetic {args.synthetic!r}: expected DxSxE, e.g. 100x3x30")
    if min(args.workers) < 1 or args.repeats < 1:
        p.error("--workers and --repeats must be >= 1")
    if args.reduction_factor <= 1 or args.grace_period < 1:
        p.error("--reduction-factor must be > 1 and --grace-period >= 1")
    scored = sorted(s for s in args.strategies if SEARCHES[s].needs_scores)
    if args.scores is None and scored:
        p.error(f"--strategies {' '.join(scored)} need --scores")
    return args


def synthetic_records(designs: int, seeds: int, epochs: int, *, rng_seed: int = 0,
                      fidelity: str = "proxy", dataset: str = "cifar10") -> list[dict[str, Any]]:
    """A table with planted structure: accuracy grows with log(params), peaks at L = 4;
    per-epoch seconds grow with FLOPs; seed noise on both."""
    import numpy as np

    from evaluators.provenance import Provenance
    from evaluators.record import describe_info, make_result

    rng = np.random.default_rng(rng_seed)
    tails = [(16,), (32,), (8, 8), (12, 12), (4, 4, 4), (6, 6, 6), (2, 2, 2, 2), (3, 3, 3, 3)]
    pool = {d["id"]: d for t in tails for w in range(32, 480, 8) if all(w % k == 0 for k in t)
            for d in [describe_info(f"plain8-c{w}-k1.{'.'.join(map(str, t))}", 10)]}
    ids = sorted(rng.choice(sorted(pool), size=min(designs, len(pool)), replace=False))
    out = []
    for d in (pool[i] for i in ids):
        final = 0.6 + 0.05 * math.log(d["params"] / 1e5) - 0.01 * (d["L"] - 4) ** 2
        final += rng.normal(0, 0.01)
        for s in range(seeds):
            acc = float(np.clip(final + rng.normal(0, 0.004), 0.05, 0.99))
            shape = (1 - np.exp(-4 * np.arange(1, epochs + 1) / epochs)) / (1 - math.exp(-4))
            val = np.clip(acc * shape + rng.normal(0, 0.003, epochs), 0, 1)
            val[-1] = acc
            sec = (1.0 + d["flops"] / 2e7) * rng.uniform(0.95, 1.05, epochs)
            curve = [{"epoch": e + 1, "train_loss": float(2.3 * (1 - val[e])),
                      "train_acc": float(min(1.0, val[e] + 0.05)), "val_acc": float(val[e]),
                      "seconds": float(sec[e])} for e in range(epochs)]
            out.append(make_result(
                d, fidelity=fidelity, fidelity_config={"name": fidelity, "epochs": epochs},
                dataset=dataset, seed=s, curve=curve, val_acc=acc, test_acc=acc - 0.005,
                wall_s=float(sec.sum()) + 2.0,
                latency={1: 0.2 + d["flops"] / 2e8, 64: 4 + d["flops"] / 1e7},
                device="synthetic", torch_version="none", made=Provenance("0" * 40, None),
                created="2025-01-01T00:00:00+00:00").to_dict())
    return out


def make_synthetic(spec: str, out: Path) -> Path:
    """Write DIR/synthetic/run (records) and DIR/synthetic/release; return the manifest."""
    from analysis.table.release import write_release
    from studies.store import RecordStore

    d, s, e = (int(x) for x in spec.split("x"))
    store = RecordStore(out / "synthetic" / "run")
    for record in synthetic_records(d, s, e):
        store.write(record)
    return write_release(store.run_dir, out / "synthetic" / "release", "synthetic",
                         overwrite=True)


def timings(bench: Any, fidelity: str, dataset: str, load_s: float,
            import_s: float) -> dict[str, Any]:
    """Microseconds per query on a just-loaded table: cold (each answer computed once, the
    first time it is asked) for a mean over seeds, one seed, one seed at epoch 1; and warm
    (the same query again, a dict hit)."""
    from analysis.table.benchmark import TableKeyError

    here = bench.frame[bench.frame["fidelity"].eq(fidelity) & bench.frame["dataset"].eq(dataset)]
    pairs = list(zip(here["design_id"], (int(s) for s in here["seed"]), strict=True))
    asks = {"mean": [(d, {}) for d in dict.fromkeys(here["design_id"])],
            "seed": [(d, {"seed": s}) for d, s in pairs],
            "epoch": [(d, {"seed": s, "epoch": 1}) for d, s in pairs]}
    cold = {}
    for name, calls in asks.items():
        ts = []
        for d, kw in calls:
            t0 = time.perf_counter()
            try:
                bench.query(d, fidelity=fidelity, dataset=dataset, **kw)
            except TableKeyError:  # a failed seed without a curve has no epoch 1
                continue
            ts.append(time.perf_counter() - t0)
        ts.sort()
        cold[name] = {"queries": len(ts), "median_us": 1e6 * ts[len(ts) // 2],
                      "max_us": 1e6 * ts[-1]}
    d0 = asks["mean"][0][0]
    t0 = time.perf_counter()
    for _ in range(QUERY_REPS):
        bench.query(d0, fidelity=fidelity, dataset=dataset)
    warm = 1e6 * (time.perf_counter() - t0) / QUERY_REPS
    return {"import_s": import_s, "load_s": load_s, "records": len(bench),
            "designs": len(bench.design_ids), "query_cold": cold, "query_warm_us": warm}


def mean_rank(result: Any, table: Any, start: int, stop: int) -> float | None:
    """The mean rank in the table (0 = its best by mean val_acc) of the designs of trials
    start+1 .. stop: whether a search proposes good designs once past its startup, which
    time to the one best design alone does not show."""
    import numpy as np

    rank = {table.design_ids[i]: k for k, i in enumerate(np.argsort(-table.mean_val,
                                                                     kind="stable"))}
    ranks = [rank[t.design_id] for t in result.trials[start:stop]]
    return float(np.mean(ranks)) if ranks else None


def main(argv: list[str] | None = None) -> int:
    import_s = _import_seconds()
    from analysis.replay import report as replay_report
    from analysis.table.benchmark import Benchmark

    args = parse_args(argv)
    out = Path(args.out)
    try:
        if args.table is not None and not Path(args.table).exists():
            raise FileNotFoundError(f"no table at {args.table}")
        table_path = Path(args.table) if args.table else make_synthetic(args.synthetic, out)
        t0 = time.perf_counter()
        bench = Benchmark.load(table_path)
        load_s = time.perf_counter() - t0
        fidelity, dataset = bench.resolve(args.fidelity, args.dataset)
    except (OSError, ValueError, KeyError) as exc:
        return fail("python -m benchmarks.replay", exc)
    timing = timings(bench, fidelity, dataset, load_s, import_s)
    try:
        table = _replay_table(bench, fidelity, dataset, args.scores, args.proxy)
    except (OSError, ValueError) as exc:
        return fail("python -m benchmarks.replay", exc)
    print(f"table {table_path}: {timing['records']} records, {timing['designs']} designs; "
          f"import {import_s:.2f} s, load {load_s * 1e3:.0f} ms, query cold median "
          f"{timing['query_cold']['mean']['median_us']:.0f} us, warm "
          f"{timing['query_warm_us']:.1f} us")
    t0 = time.perf_counter()
    runs = _replays(table, args)
    replay_s = time.perf_counter() - t0
    summary = replay_report.summarize(runs)
    figures = replay_report.plot_regret(runs, out)
    doc = _replay_doc(table, args, runs, summary, figures,
                      source={"table": str(table_path), "fidelity": fidelity, "dataset": dataset},
                      timing={**timing, "replay_s": replay_s, "replays": len(runs)})
    write_json_atomic(out / "replay.json", doc, sort_keys=False)
    cols = ["strategy", "scheduler", "workers", "reached", "time_to_best_mean",
            "time_to_best_std", "epochs_to_best_mean", "epochs_to_best_std"]
    print(summary[cols].to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    print(f"{len(runs)} replays in {replay_s:.1f} s; wrote {out / 'replay.json'} and "
          f"{len(figures)} figure files")
    return 0


def _import_seconds() -> float:
    """Seconds to import the table API and the replays (a user's first call pays them)."""
    t0 = time.perf_counter()
    for name in ("analysis.replay.simulate", "analysis.replay.report", "analysis.table.benchmark",
                 "analysis.replay.table"):
        importlib.import_module(name)
    return time.perf_counter() - t0


def _replay_table(bench: Any, fidelity: str, dataset: str, scores: str | None,
                  proxies: list[str]) -> Any:
    """The table to replay: ``bench`` at one fidelity and dataset, with the zero-cost
    ``scores`` when given (each of ``proxies`` among them)."""
    from analysis.replay.table import ReplayTable

    table = ReplayTable.from_benchmark(bench, fidelity=fidelity, dataset=dataset)
    if scores is not None:
        from analysis.proxies.ranks import read_scores

        table = table.with_scores(read_scores(scores, dataset=dataset))
        absent = [p for p in proxies if p not in table.scores]
        if absent:
            raise ValueError(f"--proxy {' '.join(absent)}: the scores have "
                             f"{', '.join(sorted(table.scores))}")
    return table


def _replays(table: Any, args: argparse.Namespace) -> list[Any]:
    """Every (strategy, scheduler, workers) the arguments ask for, ``--repeats`` times; the
    zc-* strategies once per ``--proxy``."""
    from analysis.replay import simulate as rp
    from studies.searches import SEARCHES

    common = dict(schedulers=args.schedulers, workers=args.workers, repeats=args.repeats,
                  seed_mode=args.seed_mode, reduction_factor=args.reduction_factor,
                  grace_period=args.grace_period, max_trials=args.max_trials)
    plain = [s for s in args.strategies if not SEARCHES[s].needs_scores]
    zc = [s for s in args.strategies if SEARCHES[s].needs_scores]
    runs = rp.replay_many(table, strategies=plain, **common) if plain else []
    for proxy in args.proxy if zc else ():  # each zc-* search once per proxy
        runs += rp.replay_many(table, strategies=zc, proxy=proxy, **common)
    return runs


def _replay_doc(table: Any, args: argparse.Namespace, runs: list[Any], summary: Any,
                figures: list[Path], *, source: dict[str, Any],
                timing: dict[str, Any]) -> dict[str, Any]:
    """replay.json: ``source`` (the table's path, fidelity, dataset), the table's best
    design, the settings, ``timing``, and the replays summarised and one by one."""
    near = table.seed_noise  # "near the best": within the table's seed noise of it
    return {
        **source, "designs": len(table.design_ids), "epochs": table.epochs,
        "best_design": table.design_ids[table.best],
        "best_mean_val_acc": float(table.mean_val[table.best]),
        "near_regret": near,
        "settings": {k: getattr(args, k) for k in ("workers", "repeats", "strategies",
                     "schedulers", "seed_mode", "reduction_factor", "grace_period",
                     "max_trials", "scores", "proxy")},
        "timing": timing,
        "summary": json.loads(summary.to_json(orient="records")),
        "runs": [{"strategy": r.strategy, "scheduler": r.scheduler, "workers": r.workers,
                  "seed": r.seed, "time_to_best": r.time_to_best,
                  "epochs_to_best": r.epochs_to_best, "total_time": r.total_time,
                  "total_epochs": r.total_epochs, "final_regret": r.final_regret,
                  "mean_rank_11_30": mean_rank(r, table, 10, 30),
                  "epochs_to_near": None if near is None else r.epochs_to_regret(near)}
                 for r in runs],
        "figures": [str(p) for p in figures],
    }  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
