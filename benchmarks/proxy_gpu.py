"""Run a preset's trials on one GPU without Ray: N processes share the device.

The lent GPU machines have torch but neither Ray nor Optuna, and cannot install them; this
script is the prepared, time-boxed run for them. It does what ``studies/run.py --preset P
--gpus-per-trial 1/N`` does with Ray (N trials side by side on one GPU), writing the same
records into the same store (``RUN_DIR/records/<key>.json``, atomic), so
``analysis.load_results`` and a later ``studies/run.py`` on that run directory treat them
alike, and a re-run skips what is recorded.

    python benchmarks/proxy_gpu.py --preset fig3 --fidelity proxy --seeds 0,1 --procs 4 \\
        --data-dir DATA --run-dir runs/fig3-proxy-gpu --deadline-s 330

Trials start in the grid order of ``studies.plan.Plan`` (seed-major: every design once before
any twice) and none starts after ``--deadline-s``; those running then finish. ``--epochs N``
shortens the fidelity, named as ``studies/run.py`` names a changed one (``proxy+epochs=N``).
Exit status 0 when every started trial was recorded, 2 on bad input.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluators.fidelity import get_fidelity, with_changes  # noqa: E402
from studies.plan import Plan, parse_seeds  # noqa: E402
from studies.presets import get_preset  # noqa: E402
from studies.store import RecordStore  # noqa: E402


def _trial(design_id: str, fidelity, dataset: str, seed: int, data_dir: str,
           device: str) -> dict:
    import evaluators as ev

    def progress(row: dict) -> None:  # a trial can outlast the deadline: show its pace
        print(f"  {design_id} s{seed} epoch {row['epoch']}: val {row['val_acc']:.3f} "
              f"({row['seconds']:.1f}s)", flush=True)

    return ev.evaluate(design_id, fidelity=fidelity, dataset=dataset, seed=seed,
                       data_dir=data_dir, device=device, progress=progress).to_dict()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", required=True)
    p.add_argument("--fidelity", default=None, help="default: the preset's")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the fidelity's epochs; records are named FIDELITY+epochs=N")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--seeds", default="1", help="N (seeds 0..N-1) or a list 0,1,2")
    p.add_argument("--procs", type=int, default=4, help="trials sharing the device at once")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--deadline-s", type=float, default=330.0,
                   help="start no trial after this many seconds")
    args = p.parse_args(argv)
    try:
        preset = get_preset(args.preset)
        seeds = parse_seeds(args.seeds)
        fidelity = get_fidelity(args.fidelity or preset.fidelity)
        if args.epochs is not None:
            if args.epochs < 1:
                raise ValueError(f"--epochs {args.epochs} must be >= 1")
            fidelity = with_changes(fidelity, epochs=args.epochs)
    except ValueError as e:
        print(f"proxy_gpu.py: error: {e}", file=sys.stderr)
        return 2
    if args.procs < 1:
        print(f"proxy_gpu.py: error: --procs {args.procs} must be >= 1", file=sys.stderr)
        return 2
    store = RecordStore(args.run_dir)
    plan = Plan(name=preset.name, design_ids=preset.design_ids, seeds=seeds,
                fidelity=fidelity.name, dataset=args.dataset)
    todo = [(d, s) for d, s in plan.ordered_pairs() if not store.has(plan.key(d, s))]
    print(f"{len(todo)} trials to run ({preset.name}, {fidelity.name}, {args.dataset}, seeds "
          f"{seeds}) on {args.device} with {args.procs} at once", flush=True)
    start, failed = time.time(), 0
    with ProcessPoolExecutor(args.procs, mp_context=mp.get_context("spawn")) as pool:
        running: dict = {}
        while todo or running:
            while todo and len(running) < args.procs and time.time() - start < args.deadline_s:
                d, s = todo.pop(0)
                fut = pool.submit(_trial, d, fidelity, args.dataset, s, args.data_dir,
                                  args.device)
                running[fut] = (d, s)
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                d, s = running.pop(fut)
                try:
                    record = fut.result()
                except Exception as e:  # a crashed worker: report, keep the sweep going
                    failed += 1
                    print(f"[{time.time() - start:6.0f}s] {d} seed {s}: worker error {e!r}",
                          flush=True)
                    continue
                store.write(record)
                print(f"[{time.time() - start:6.0f}s] {d} seed {s}: {record['status']} "
                      f"val {record['val_acc']} test {record['test_acc']} "
                      f"({record['wall_s']:.0f}s)", flush=True)
    left = len(todo)
    print(f"done in {time.time() - start:.0f}s; {left} trials not started (deadline); "
          f"{failed} worker errors; records in {store.dir}", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
