"""``python -m studies.zero_cost --preset table40k --seeds 0,1,2 --run-dir runs/zc-table40k``:
zero-cost proxies of many designs (``evaluators.zero_cost``), one record per (design, seed).

Designs come from a preset, a budget (``--budget 0.65M --net res20``, the enumeration) or
``--designs ID [ID ...]``. Records go to a run directory's record store
(``RUN_DIR/records/<key>.json``, ``studies.store.RecordStore``, atomic), at the fidelity
``ZeroCostConfig.name``: ``zc`` for the default settings, ``zc-r16``, ``zc-b16-r16-l1``...
when they differ. The same command again computes only what the store lacks (a killed run
loses at most the record it was computing); a store holding records of this fidelity made
with another config (another batch) is refused. Keep zc run directories apart from a
sweep's: a sweep owns its own. Bad input prints one line and exits 2, having written
nothing.

Example (synthetic data, two designs, seconds):
    python -m studies.zero_cost --designs plain8-c16-k1.4.4 plain8-c16-k1.g1 \\
        --dataset synthetic --seeds 0 --run-dir /tmp/zc
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import search_space as ss
from evaluators.catalog import DATASETS, DEFAULT_DATASET
from evaluators.memory import release_memory
from evaluators.record import trial_key
from studies.budget import parse_budget
from studies.cli import UsageError, UsageParser
from studies.cli import one_line as _one_line
from studies.estimate import fmt_seconds
from studies.plan import parse_seeds
from studies.presets import PRESETS, get_preset
from studies.store import RecordStore


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="python -m studies.zero_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", help="the designs of a preset: " + ", ".join(PRESETS))
    p.add_argument("--budget", help="every design under this many parameters: 650000, "
                                    "650k or 0.65M (with --net)")
    p.add_argument("--net", help="with --budget: plain8 (default), res20, resD")
    p.add_argument("--designs", nargs="+", metavar="ID", help="design ids")
    p.add_argument("--seeds", default="0,1,2", help="initialisation seeds: N (0..N-1) or "
                                                    "0,1,2 (default)")
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help="whose train split gives the batch: " + ", ".join(DATASETS)
                   + f" (default {DEFAULT_DATASET})")
    p.add_argument("--data-dir", help="directory holding the dataset; default "
                                      "$IGCBENCH_DATA or ./data")
    p.add_argument("--run-dir", required=True,
                   help="run directory of the records (RUN_DIR/records; resumed)")
    p.add_argument("--batch-size", type=int, default=64, help="images in the batch (64)")
    p.add_argument("--batch-seed", type=int, default=0, help="draws the batch (0)")
    p.add_argument("--resolution", type=int, help="batch image side; default the net's")
    p.add_argument("--latency-reps", type=int, default=3,
                   help="timed passes per batch size (3; 0 skips latency)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    p.add_argument("--max-designs", type=int, help="only the first N designs")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        designs = _designs(args)
        seeds = parse_seeds(args.seeds)
        run_dir = Path(args.run_dir)
        if not run_dir.parent.is_dir():
            raise UsageError(f"--run-dir {args.run_dir!r}: directory "
                             f"{str(run_dir.parent)!r} does not exist")
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--run-dir {args.run_dir!r} is a file, not a directory")
        if args.latency_reps < 0:
            raise UsageError(f"--latency-reps {args.latency_reps} must be >= 0")
        from evaluators import zero_cost as zc  # torch: after the cheap checks

        config = zc.ZeroCostConfig(
            dataset=args.dataset, batch_size=args.batch_size, batch_seed=args.batch_seed,
            resolution=args.resolution, latency_reps=args.latency_reps, threads=args.threads)
        import evaluators as ev

        data = ev.load_dataset(args.dataset, args.data_dir)
        batch = zc.proxy_batch(data, config)
        store = RecordStore(run_dir)
        have = _recorded(store, {**config.to_dict(), "batch_indices": list(batch.indices)},
                         config.name, batch.dataset)
    except (ValueError, OSError) as e:  # UsageError, bad budget/id/config, data, run dir
        print(f"zero_cost: error: {_one_line(e)}", file=sys.stderr)
        return 2
    before = len(store.keys())
    try:
        run(designs, seeds, batch, config, store, have, num_classes=data.num_classes)
    except KeyboardInterrupt:  # each record is written whole as it is made: none is torn
        written = len(store.keys()) - before
        print(f"\nzero_cost: interrupted: {written} record{'s' * (written != 1)} written "
              f"this run in {store.dir}; the same command computes the rest", file=sys.stderr)
        return 130
    return 0


def run(designs: Iterable[ss.Design], seeds: tuple[int, ...], batch: Any, config: Any,
        store: RecordStore, have: set[str], *, num_classes: int) -> list[str]:
    """Score the (design, seed) pairs whose key is not in ``have``, writing each record to
    ``store`` as soon as it is made; return the keys written."""
    from evaluators import zero_cost as zc

    pairs = [(d, s) for d in designs for s in seeds]
    todo = [(d, s) for d, s in pairs
            if trial_key(d.id, config.name, batch.dataset, s) not in have]
    print(f"{len(todo)} to score, {len(pairs) - len(todo)} of {len(pairs)} recorded already "
          f"in {store.dir} (fidelity {config.name})", file=sys.stderr)
    # A proxy's time grows with the design's multiply-adds (widest: seconds to minutes), so
    # the time left is the time so far scaled by the multiply-adds left over those done.
    work = [float(ss.describe(d, num_classes=num_classes)["flops"]) for d, _ in todo]
    total_work, done_work = sum(work), 0.0
    start, written = time.perf_counter(), []
    for i, (d, seed) in enumerate(todo, 1):
        rec = zc.zc_record(d, seed, batch, config, num_classes=num_classes)
        written.append(store.write(rec.to_dict()))
        release_memory()  # the heap of a wide net's scoring would stay with the process
        errors = (rec.zero_cost or {}).get("errors") or {}
        note = rec.reason or ", ".join(f"{k} {v}" for k, v in errors.items())
        elapsed = time.perf_counter() - start
        done_work += work[i - 1]
        eta = time_left(elapsed, done_work, total_work - done_work)
        print(f"[{elapsed:7.0f}s] {i}/{len(todo)} {d.id} s{seed} {rec.status} "
              f"{rec.wall_s:.1f}s {note}".rstrip()
              + (f" | left ~{fmt_seconds(eta)}" if eta else ""), file=sys.stderr)
    return written


def time_left(elapsed: float, done_work: float, left_work: float) -> float:
    """Seconds left: ``elapsed`` scaled by the work left over the work done (0 when none).

    >>> time_left(60.0, 2e9, 1e9), time_left(60.0, 0.0, 1e9), time_left(60.0, 1e9, 0.0)
    (30.0, 0.0, 0.0)
    """
    return elapsed * left_work / done_work if done_work > 0 and left_work > 0 else 0.0


def _designs(args: argparse.Namespace) -> list[ss.Design]:
    given = [n for n in ("preset", "budget", "designs") if getattr(args, n) is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --preset, --budget, --designs "
                         f"(got {', '.join('--' + g for g in given) or 'none'})")
    if args.dataset not in DATASETS:
        raise UsageError(f"unknown dataset {args.dataset!r}; accepted: {', '.join(DATASETS)}")
    if args.net is not None and args.budget is None:
        raise UsageError("--net goes with --budget")
    if args.preset is not None:
        designs = [ss.parse(i) for i in get_preset(args.preset).design_ids]
    elif args.budget is not None:
        designs = ss.enumerate_designs(parse_budget(args.budget), args.net or "plain8",
                                       num_classes=DATASETS[args.dataset].classes)
    else:
        designs = [ss.parse(i) for i in args.designs]
    if args.max_designs is not None:
        if args.max_designs < 1:
            raise UsageError(f"--max-designs {args.max_designs} must be >= 1")
        designs = designs[: args.max_designs]
    if not designs:
        raise UsageError("no designs to score")
    return designs


def _recorded(store: RecordStore, config: dict[str, Any], fidelity: str,
              dataset: str) -> set[str]:
    """Keys already in ``store``; refuses a store whose records of ``fidelity`` and
    ``dataset`` were made with another config (a different batch, say)."""
    keys = store.keys()
    for record in store.records():
        if record["fidelity"] != fidelity or record["dataset"] != dataset:
            continue
        if record.get("fidelity_config") != config:
            raise UsageError(
                f"--run-dir {str(store.run_dir)!r} holds {fidelity} records of another config "
                f"({record['design_id']} s{record['seed']}); use another run directory")
    return keys


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before scoring started: nothing was written yet
        print("\nzero_cost: interrupted", file=sys.stderr)
        sys.exit(130)
