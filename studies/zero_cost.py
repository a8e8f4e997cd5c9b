"""``python -m studies.zero_cost --preset table40k --seeds 0,1,2 --out zc.jsonl``: zero-cost
proxies of many designs (``evaluators.zero_cost``), one ``zc`` record per (design, seed).

Designs come from a preset, a budget (``--budget 0.65M --net res20``, the enumeration) or
``--designs ID [ID ...]``. Records are JSON lines in ``--out``, rewritten whole after each
(design, seed), so a killed run leaves a complete file; the same command again computes
only what the file lacks. A file made with another config (batch, resolution, dataset...)
is refused. Bad input prints one line and exits 2, having written nothing.

Example (synthetic data, two designs, seconds):
    python -m studies.zero_cost --designs plain8-c16-k1.4.4 plain8-c16-k1.g1 \\
        --dataset synthetic --seeds 0 --out /tmp/zc.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import search_space as ss
from evaluators.catalog import NUM_CLASSES as DATASET_CLASSES
from evaluators.record import write_atomic
from studies.budget import parse_budget
from studies.cli import UsageError
from studies.cli import one_line as _one_line
from studies.plan import parse_seeds
from studies.presets import PRESETS, get_preset


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m studies.zero_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", help="the designs of a preset: " + ", ".join(PRESETS))
    p.add_argument("--budget", help="every design under this many parameters: 650000, "
                                    "650k or 0.65M (with --net)")
    p.add_argument("--net", help="with --budget: plain8 (default), res20, resD")
    p.add_argument("--designs", nargs="+", metavar="ID", help="design ids")
    p.add_argument("--seeds", default="0,1,2", help="initialisation seeds: N (0..N-1) or "
                                                    "0,1,2 (default)")
    p.add_argument("--dataset", default="cifar10", help="whose train split gives the batch: "
                   + ", ".join(DATASET_CLASSES) + " (default cifar10)")
    p.add_argument("--data-dir", help="directory holding the dataset; default "
                                      "$IGCBENCH_DATA or ./data")
    p.add_argument("--out", required=True, help="JSON-lines file of records (resumed)")
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
        out = Path(args.out)
        if not out.parent.is_dir():
            raise UsageError(f"--out {args.out!r}: directory {str(out.parent)!r} does not exist")
        if args.latency_reps < 0:
            raise UsageError(f"--latency-reps {args.latency_reps} must be >= 0")
        from evaluators import zero_cost as zc  # torch: after the cheap checks

        config = zc.ZeroCostConfig(
            dataset=args.dataset, batch_size=args.batch_size, batch_seed=args.batch_seed,
            resolution=args.resolution, latency_reps=args.latency_reps,
            latency_warmup=1 if args.latency_reps else 0, threads=args.threads)
        if args.latency_reps < 0:
            raise UsageError(f"--latency-reps {args.latency_reps} must be >= 0")
        import evaluators as ev

        data = ev.load_dataset(args.dataset, args.data_dir)
        batch = zc.proxy_batch(data, config)
        done = _read(out, {**config.to_dict(), "batch_indices": list(batch.indices)})
    except (ValueError, OSError) as e:  # UsageError, bad budget/id/config, data, --out
        print(f"zero_cost: error: {_one_line(e)}", file=sys.stderr)
        return 2
    run(designs, seeds, batch, config, out, done, num_classes=data.num_classes)
    return 0


def run(designs: Iterable[ss.Design], seeds: tuple[int, ...], batch: Any, config: Any,
        out: Path, records: list[dict[str, Any]], *, num_classes: int) -> list[dict]:
    """Score what ``records`` lacks, rewriting ``out`` whole after each (design, seed)."""
    from evaluators import zero_cost as zc

    have = {(r["design_id"], r["seed"]) for r in records}
    todo = [(d, s) for d in designs for s in seeds if (d.id, s) not in have]
    print(f"{len(todo)} to score, {len(have)} in {out}", file=sys.stderr)
    start = time.perf_counter()
    for i, (d, seed) in enumerate(todo, 1):
        rec = zc.zc_record(d, seed, batch, config, num_classes=num_classes)
        records.append(rec)
        _write(out, records)
        note = rec["reason"] or ", ".join(f"{k} {v}" for k, v in
                                          (rec["zero_cost"]["errors"] or {}).items())
        print(f"[{time.perf_counter() - start:7.0f}s] {i}/{len(todo)} {d.id} s{seed} "
              f"{rec['status']} {rec['wall_s']:.1f}s {note}".rstrip(), file=sys.stderr)
    return records


def _designs(args: argparse.Namespace) -> list[ss.Design]:
    given = [n for n in ("preset", "budget", "designs") if getattr(args, n) is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --preset, --budget, --designs "
                         f"(got {', '.join('--' + g for g in given) or 'none'})")
    if args.dataset not in DATASET_CLASSES:
        raise UsageError(
            f"unknown dataset {args.dataset!r}; accepted: {', '.join(DATASET_CLASSES)}")
    if args.net is not None and args.budget is None:
        raise UsageError("--net goes with --budget")
    if args.preset is not None:
        designs = [ss.parse(i) for i in get_preset(args.preset).design_ids]
    elif args.budget is not None:
        designs = ss.enumerate_designs(parse_budget(args.budget), args.net or "plain8",
                                       num_classes=DATASET_CLASSES[args.dataset])
    else:
        designs = [ss.parse(i) for i in args.designs]
    if args.max_designs is not None:
        if args.max_designs < 1:
            raise UsageError(f"--max-designs {args.max_designs} must be >= 1")
        designs = designs[: args.max_designs]
    if not designs:
        raise UsageError("no designs to score")
    return designs


def _read(out: Path, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The records already in ``out``, all of them made with ``config``."""
    if not out.exists():
        return []
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    for r in records:
        if r.get("fidelity_config") != config:
            raise UsageError(f"--out {str(out)!r} holds records of another config "
                             f"({r.get('design_id')} s{r.get('seed')}); use another file")
    return records


def _write(out: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
    write_atomic(out, lambda f: f.write(text.encode()))


if __name__ == "__main__":
    sys.exit(main())
