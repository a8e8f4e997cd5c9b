"""Training throughput of the multi-model engine against the one-model path, per lever (JSON).

    python -m benchmarks.engine_throughput --device cuda --out engine_throughput_gpu.json
    python -m benchmarks.engine_throughput --device cpu --tiny --out engine_throughput_cpu.json

For each design of the presets (fig3: 6 designs, table2: 6) it times whole training epochs of
synthetic CIFAR-shaped data (``--steps`` steps of ``--batch`` images per model, the first
epoch a warm-up: cuDNN autotuning, CUDA-graph capture) through the code the runs use:

- ``baseline``: the one-model path, ``train_epochs`` as ``evaluate()`` runs it
  (deterministic, default implementation, bf16 + channels_last on CUDA); N sequential runs
  have its images/s in aggregate (``baseline_nondeterministic``: the same without
  deterministic kernels, last, on CUDA);
- the engine (``evaluators.multi_model``) with the design's ``--seeds`` seeds folded into
  one net, under each lever: the group 1x1 layout (grouped / dense / bmm), CUDA graphs,
  deterministic kernels on or off, 4x the batch per model; ``together``: all designs of the
  preset side by side in one process (one CUDA stream each);
- ``vmap``: the alternative formulation (``torch.func.stack_module_state`` + ``vmap`` over N
  reference nets), a bare forward-backward-SGD loop against the folded net's same loop.

Images/s count every model's images. Targets (issue 13), checked in ``targets``: fig3's
aggregate >= 50,000 img/s, and fig3 and table2 (3 seeds each) at the ``proxy15`` rung
(15 epochs of 45,000 images, 5,000 validation images an epoch, 10,000 test) projected from the
measured training and evaluation rates to finish within 600 s of one GPU. A missed target
gets a ``profile``: torch.profiler's top operations over one epoch of the slowest design.

``--budget-s`` bounds the run: a measurement that would not fit is listed under ``skipped``,
and the JSON is rewritten after every measurement, so a killed run leaves what it measured.
"""


from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.engine_measure import (
    DEFAULT_LEVER,
    LEVERS,
    Bench,
    profile_epoch,
    time_baseline,
    time_engine,
    time_eval,
    time_vmap,
)
from benchmarks.engine_report import choose, markdown, targets
from studies.presets import get_preset


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.choose is not None:
        return _print_choice(args)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    error = _settle(args)
    if error is not None:
        print(f"engine_throughput.py: error: {error}", file=sys.stderr)
        return 2
    args.threads = args.threads or torch.get_num_threads()
    bench = Bench(args)
    run(bench)
    bench.out["targets"] = targets(bench.out)
    missed = [k for k, v in bench.out["targets"].items() if isinstance(v, dict) and (
        v.get("proxy15_within_600_s") is False or v.get("aggregate_at_least_50000") is False)]
    if missed:
        slowest = bench.out["targets"][missed[0]]["slowest_design"]
        _measure_profile(bench, slowest)
    bench.save()
    print(json.dumps(bench.out["targets"], indent=1))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, help="the JSON to write (required unless --choose)")
    p.add_argument("--choose", type=Path, metavar="JSON",
                   help="print proxy_gpu.py flags for --preset chosen from a measured JSON")
    p.add_argument("--preset", default="fig3", help="with --choose")
    p.add_argument("--within", type=float, default=float("inf"),
                   help="with --choose: seconds the preset's run may take")
    p.add_argument("--presets", nargs="+", default=["fig3", "table2"], metavar="PRESET",
                   help="preset names (default: fig3 table2)")
    p.add_argument("--seeds", type=int, default=3, help="models per design (its seeds)")
    p.add_argument("--batch", type=int, default=64, help="images per model per step")
    p.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    p.add_argument("--epochs", type=int, default=3, help="the first is a warm-up")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--budget-s", type=float, default=150.0)
    p.add_argument("--reserve-s", type=float, default=10.0,
                   help="start no measurement with less budget left than this")
    p.add_argument("--levers", nargs="+", default=list(LEVERS), metavar="LEVER",
                   help=f"a subset of {', '.join(LEVERS)} (the first two are "
                        "always measured: the engine's default and the one-model baseline)")
    p.add_argument("--tiny", action="store_true",
                   help="--resolution 8 --batch 8 --steps 2 --epochs 2: a check that "
                        "everything runs (CPU, tests)")
    p.add_argument("--markdown", type=Path, metavar="JSON",
                   help="print the docs/performance.md block of a measured JSON")
    return p


def _settle(args: argparse.Namespace) -> str | None:
    """Apply ``--tiny`` and check the values of a measuring run: the error, or None."""
    if args.out is None:
        return "--out is required"
    if args.tiny:
        args.resolution, args.batch, args.steps, args.epochs = 8, 8, 2, 2
    try:
        args.presets = [get_preset(name).name for name in args.presets]
    except ValueError as e:
        return str(e)
    unknown = [lv for lv in args.levers if lv not in LEVERS]
    if unknown:
        return f"--levers {','.join(unknown)}: accepted {', '.join(LEVERS)}"
    for flag in ("seeds", "batch", "steps", "epochs", "resolution"):
        if getattr(args, flag) < 1:
            return f"--{flag} {getattr(args, flag)} must be >= 1"
    return None


def _measure(bench: Bench, section: str, what: str, fn: Callable[[], dict]) -> None:
    """Run one measurement if the budget allows; record it, or the error, and save."""
    if bench.left() < bench.args.reserve_s:
        bench.out["skipped"].append(f"{section}: {what}")
        return
    try:
        row = fn()
    except Exception as exc:  # one failed measurement must not lose the others
        bench.out["errors"].append(f"{section}: {what}: {type(exc).__name__}: "
                                   + " ".join(str(exc).split())[:300])
    else:
        bench.out[section].append(row)
        print(section, json.dumps(row), flush=True)
        _add_ratio(bench, section, row)
    bench.save()


def _add_ratio(bench: Bench, section: str, row: dict) -> None:
    """Engine images/s over the one-model path's, for a single design measured both ways."""
    if section != "engine" or len(row["designs"]) != 1:
        return
    base = next((b["img_s"] for b in bench.out["baseline"] if b["design"] == row["designs"][0]),
                None)
    if base:
        row["over_baseline"] = round(row["img_s"] / base, 2)


def _print_choice(args: argparse.Namespace) -> int:
    """``--choose``: the engine's defaults when the JSON is missing or unreadable (a
    benchmark that crashed must not stop the proxy run)."""
    try:
        out = json.loads(args.choose.read_text())
        get_preset(args.preset)
        flags = choose(out, args.preset, args.within)
    except (OSError, ValueError, KeyError, ZeroDivisionError) as exc:
        print(f"engine_throughput.py: no choice from {args.choose} ({exc!r}); defaults",
              file=sys.stderr)
        flags = ["--conv1x1", "dense"]
    print(" ".join(flags))
    return 0


def _measure_profile(bench: Bench, design: str) -> None:
    if bench.left() < bench.args.reserve_s / 2:
        bench.out["skipped"].append(f"profile: {design}")
        return
    try:
        bench.out["profile"] = profile_epoch(bench, design)
    except Exception as exc:
        bench.out["errors"].append(f"profile: {design}: {type(exc).__name__}: {exc}"[:400])


def run(bench: Bench) -> None:
    """Every measurement, most wanted first (the budget cuts from the end): per preset the
    engine's default and the one-model path per design, forward rates and all designs side
    by side; then the other levers on the first preset's designs; then vmap."""
    presets = {name: list(get_preset(name).design_ids) for name in bench.args.presets}
    for name, designs in presets.items():
        for d in designs:
            _measure(bench, "engine", f"{d} {DEFAULT_LEVER}",
                     lambda d=d: time_engine(bench, [d], DEFAULT_LEVER))
        for d in designs:
            _measure(bench, "baseline", d, lambda d=d: time_baseline(bench, d))
        for row in bench.out["engine"]:
            _add_ratio(bench, "engine", row)
        for d in designs:
            _measure(bench, "eval", d, lambda d=d: time_eval(bench, d))
        _measure(bench, "together", f"{name} {DEFAULT_LEVER}",
                 lambda designs=designs: time_engine(bench, designs, DEFAULT_LEVER))
    first = presets[bench.args.presets[0]]
    for lever in [lv for lv in bench.args.levers if lv not in (DEFAULT_LEVER, "vmap")]:
        for d in first:
            _measure(bench, "engine", f"{d} {lever}",
                     lambda d=d, lever=lever: time_engine(bench, [d], lever))
    if "vmap" in bench.args.levers:
        _measure(bench, "vmap", first[1], lambda d=first[1]: time_vmap(bench, d))
    if bench.device.type == "cuda":  # the one-model path without deterministic kernels
        for d in first:
            _measure(bench, "baseline_nondeterministic", d,
                     lambda d=d: time_baseline(bench, d, deterministic=False))


if __name__ == "__main__":
    sys.exit(main())
