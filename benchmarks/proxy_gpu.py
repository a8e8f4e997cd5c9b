"""Run a preset's trials on one GPU without Ray, many small nets at once (the multi-model engine).

The lent GPU machines have torch but neither Ray nor Optuna, and cannot install them; this
script is the prepared, time-boxed run for them. Each design's seeds train as one folded net
(``evaluators.multi_model``), ``--designs-per-batch`` designs side by side in one process,
and the records go into the same store as ``studies/run.py``'s (``RUN_DIR/records/<key>.json``,
written atomically by the worker as its batch ends), so ``analysis.load_results`` and a later
``studies/run.py`` on that run directory treat them alike, and a re-run skips what is recorded.

    python -m benchmarks.proxy_gpu --preset fig3 --fidelity proxy15 --seeds 0,1,2 \\
        --data-dir DATA --run-dir runs/fig3-proxy15-gpu --deadline-s 330

Batches start in the preset's design order and none starts after ``--deadline-s``; those
running then finish. Exit status 0 when every started batch was recorded, 1 when a worker
crashed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from analysis.cli import ArgumentParser
from evaluators.fidelity import get_fidelity, with_changes
from evaluators.folded import CONV1X1
from studies.plan import Plan, parse_seeds
from studies.presets import get_preset
from studies.store import RecordStore


def _batch(trials: list[tuple[str, list[int]]], fidelity, dataset: str, data_dir: str,
           device: str, engine: dict, run_dir: str) -> list[dict]:
    """One process's work: ``trials`` at once; store and return their records."""
    from evaluators.multi_model import EngineOptions, evaluate_many

    def progress(design_id: str, seed: int, row: dict) -> None:
        print(f"  {design_id} s{seed} epoch {row['epoch']}: val {row['val_acc']:.3f} "
              f"({row['seconds']:.1f}s share)", flush=True)

    records = [r.to_dict() for r in evaluate_many(
        trials, fidelity, dataset, data_dir, device=device, options=EngineOptions(**engine),
        progress=progress)]
    store = RecordStore(run_dir)
    for record in records:
        store.write(record)
    return records


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m benchmarks.proxy_gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", required=True)
    p.add_argument("--fidelity", default=None, help="default: the preset's")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the fidelity's epochs; records are named FIDELITY+epochs=N")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--seeds", default="1", help="N (seeds 0..N-1) or a list 0,1,2")
    p.add_argument("--designs-per-batch", type=int, default=1,
                   help="designs trained side by side in one process (each with its seeds)")
    p.add_argument("--procs", type=int, default=1, help="batches sharing the device at once")
    p.add_argument("--conv1x1", default="dense", help=", ".join(CONV1X1))
    p.add_argument("--no-cuda-graph", action="store_true", help="eager steps on CUDA")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--deadline-s", type=float, default=330.0,
                   help="start no batch after this many seconds")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        preset = get_preset(args.preset)
        seeds = parse_seeds(args.seeds)
        fidelity = get_fidelity(args.fidelity or preset.fidelity)
        if args.epochs is not None:
            if args.epochs < 1:
                raise ValueError(f"--epochs {args.epochs} must be >= 1")
            fidelity = with_changes(fidelity, epochs=args.epochs)
        for flag in ("procs", "designs_per_batch"):
            if getattr(args, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')} {getattr(args, flag)} must be >= 1")
        if args.conv1x1 not in CONV1X1:
            raise ValueError(f"--conv1x1 {args.conv1x1!r}; accepted: {', '.join(CONV1X1)}")
    except ValueError as e:
        print(f"proxy_gpu.py: error: {e}", file=sys.stderr)
        return 2
    store = RecordStore(args.run_dir)
    plan = Plan(name=preset.name, design_ids=preset.design_ids, seeds=seeds,
                fidelity=fidelity.name, dataset=args.dataset)
    # A design's seeds train together (one folded net), so batches go design by design.
    groups = [(d, [s for s in seeds if not store.has(plan.key(d, s))])
              for d in preset.design_ids]
    groups = [(d, left) for d, left in groups if left]
    k = args.designs_per_batch
    batches = [groups[i:i + k] for i in range(0, len(groups), k)]
    engine = {"conv1x1": args.conv1x1, "cuda_graph": not args.no_cuda_graph}
    print(f"{sum(len(s) for _, s in groups)} trials to run ({preset.name}, {fidelity.name}, "
          f"{args.dataset}, seeds {seeds}) on {args.device}: {len(batches)} batches of up to "
          f"{k} designs, {args.procs} at once, engine {engine}", flush=True)
    return _run(batches, fidelity, args, engine, store)


def _run(batches: list, fidelity, args: argparse.Namespace, engine: dict,
         store: RecordStore) -> int:
    start, failed = time.time(), 0
    with ProcessPoolExecutor(args.procs, mp_context=mp.get_context("spawn")) as pool:
        running: dict = {}
        while batches or running:
            while batches and len(running) < args.procs and time.time() - start < args.deadline_s:
                batch = batches.pop(0)
                fut = pool.submit(_batch, batch, fidelity, args.dataset, args.data_dir,
                                  args.device, engine, str(store.run_dir))
                running[fut] = batch
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                batch = running.pop(fut)
                try:
                    records = fut.result()
                except Exception as e:  # a crashed worker: report, keep the sweep going
                    failed += 1
                    print(f"[{time.time() - start:6.0f}s] {batch}: worker error {e!r}",
                          flush=True)
                    continue
                for r in records:
                    print(f"[{time.time() - start:6.0f}s] {r['design_id']} seed {r['seed']}: "
                          f"{r['status']} val {r['val_acc']} test {r['test_acc']} "
                          f"({r['wall_s']:.0f}s share) {r['reason'] or ''}", flush=True)
    print(f"done in {time.time() - start:.0f}s; {len(batches)} batches not started "
          f"(deadline); {failed} worker errors; records in {store.dir}", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
