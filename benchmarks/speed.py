"""Speed of the block implementations: training images/s and inference latency, fast vs reference.

    python -m benchmarks.speed --device cpu --out benchmarks/results/speed_cpu.json
    python -m benchmarks.speed --device auto --out benchmarks/results/speed_gpu.json

Every comparison is measured in one process with the implementations interleaved (ref, fast,
fast, ref, ...) and the median taken, so a busy machine slows both alike; the best-of is kept
too (contention only adds time), and the load average is recorded per section. Both nets
start from the same weights. Synthetic data (random images and labels on the device): this
measures compute, not input pipelines.

On CPU: ``torch.set_num_threads(--threads)``, float32, channels_last (--nchw: NCHW, as the
evaluators train on CPU). On CUDA: bf16 autocast,
channels_last, and a third mode measuring training throughput of one design with 1, 2 and 4
processes sharing the GPU (each its own model), aggregate and per process. A global time
budget (--budget-s, default 450 on CUDA) skips what would not fit, and says so in the JSON.

Exit status: 0 when every section ran (or was skipped for time), 1 when a measurement raised,
2 on bad arguments. The JSON is written in every case, atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

import search_space as ss
from benchmarks.block_numerics import numerics_check
from benchmarks.block_timing import block_impls, concurrency, latency, train_throughput
from evaluators.provenance import git_commit
from evaluators.record import write_json_atomic
from search_space.fast import DEVICE_PATH

REPO = Path(__file__).resolve().parents[1]

TRAIN_DESIGNS = ("plain8-c144-k1.12.12", "plain8-c64-k1.64", "res20-c216-k1.8.8.8-stem64")
# One design per block kind, for the inference-latency comparison (batch 1 and 64).
KIND_DESIGNS = {
    "igcv2-ii (plain8 C=144)": "plain8-c144-k1.12.12",
    "xception (plain8 C=64)": "plain8-c64-k1.64",
    "igcv2* res20 C=216": "res20-c216-k1.8.8.8-stem64",
    "igcv2-i (plain8 C=98)": "plain8-c98-k2.7.7",
    "igcv1 (plain8 C=96)": "plain8-c96-k2.g2",
    "igcv1 res20 C=48": "res20-c48-k2.g2",
    "nonlinear (plain8 C=64)": "plain8-c64-k1.8.8-relu",
    "per-stage K res8": "res8-c64-k1.8.8/1.16.16/1.32.32",
    "mobilenetv2 (224)": "mobilenet2-c32-kg1.1.g1-s2-t6-relu",
    "igcv3 (224)": "igcv3net-c32-kg2.1.g2-s2-t6-relu",
}
CONCURRENCY_DESIGN = "plain8-c144-k1.12.12"


def machine_name(device: torch.device) -> str:
    """The JSON's ``device``: the card, or the CPU model and its core count (more than a
    record's ``device``, evaluators.runtime.device_name: speeds differ between CPUs)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()}"


def summary(record: dict) -> str:
    parts = [record["device"]]
    for t in record["train"]:
        others = " ".join(f"{k} {v:.1f} (x{t['speedup'][k]:.2f})" for k, v in t["img_s"].items()
                          if k != "reference")
        parts.append(f"train {t['design']} b{t['batch']} img/s: ref "
                     f"{t['img_s']['reference']:.1f} {others}")
    if record["latency"]:
        med = min((r["speedup"]["fast"], r["design"], r["batch"]) for r in record["latency"])
        best = min((r["ms_min"]["reference"] / r["ms_min"]["fast"], r["design"], r["batch"])
                   for r in record["latency"])
        parts.append(f"latency worst ref/fast: median x{med[0]:.2f} ({med[1]} b{med[2]}), "
                     f"best-of x{best[0]:.2f} ({best[1]} b{best[2]})")
    for c in record["concurrency"]:
        parts.append(f"{c['impl']} x{c['processes']} procs: {c['aggregate_img_s']:.0f} img/s")
    if record["skipped"]:
        parts.append(f"skipped {len(record['skipped'])} (time budget)")
    if record["errors"]:
        parts.append(f"ERRORS {len(record['errors'])}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    error = _bad_input(args)
    if error is not None:
        print(f"speed.py: {error}", file=sys.stderr)
        return 2
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    cuda = device.type == "cuda"
    out = args.out or REPO / f"benchmarks/results/speed_{'gpu' if cuda else 'cpu'}.json"
    if not cuda:
        torch.set_num_threads(args.threads)
    budget = args.budget_s if args.budget_s is not None else (450.0 if cuda else float("inf"))
    impls = block_impls(device)
    fmt = torch.contiguous_format if args.nchw else torch.channels_last
    t0 = time.perf_counter()
    record = _new_record(args, device, impls)
    sections = _Sections(record, t0, budget, args.quiet_load, args.quiet_wait_s)
    _run_sections(sections.run, args, device, impls, fmt)
    record["loadavg_end"] = os.getloadavg()
    record["wall_s"] = round(time.perf_counter() - t0, 1)
    record["summary"] = summary(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, record, sort_keys=False)
    print(record["summary"])
    print(f"wrote {out}")
    return 1 if record["errors"] else 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default benchmarks/results/speed_<cpu|gpu>.json)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--nchw", action="store_true",
                   help="models and inputs in NCHW (torch.contiguous_format), not channels_last")
    p.add_argument("--train-designs", nargs="+", default=list(TRAIN_DESIGNS))
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--train-reps", type=int, default=None, help="default 3 (CPU), 5 (CUDA)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="steps per timed rep; default 1 (CPU), 20 (CUDA)")
    p.add_argument("--latency-designs", nargs="*", default=list(KIND_DESIGNS.values()))
    p.add_argument("--latency-batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--latency-reps", type=int, default=None,
                   help="default 41 (CPU batch 1: a shared machine stalls many of them, the "
                        "best-of needs enough), 5 (CPU, larger batches), 20 (CUDA)")
    p.add_argument("--concurrency", nargs="*", type=int, default=[1, 2, 4],
                   help="CUDA only: process counts sharing the GPU")
    p.add_argument("--concurrency-impls", nargs="*", default=["reference", "fused"],
                   help="fast trains on the reference path on CUDA (DEVICE_PATH)")
    p.add_argument("--concurrency-seconds", type=float, default=12.0)
    p.add_argument("--quiet-load", type=float, default=None,
                   help="before each section wait (up to --quiet-wait-s) until the 1-minute "
                        "load average is below this: other work on a shared machine")
    p.add_argument("--quiet-wait-s", type=float, default=600.0)
    p.add_argument("--budget-s", type=float, default=None,
                   help="skip sections that would start after this many seconds "
                        "(default: 450 on CUDA, none on CPU)")
    return p


def _bad_input(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments (a CUDA run without CUDA, a bad design id), or None."""
    if args.device == "cuda" and not torch.cuda.is_available():
        return "--device cuda but torch.cuda.is_available() is False"
    for d in {*args.train_designs, *args.latency_designs}:
        try:
            ss.parse(d)
        except ValueError as e:
            return str(e)
    return None


def _new_record(args: argparse.Namespace, device: torch.device, impls: dict) -> dict:
    """The JSON's settings and provenance, with empty sections for the measurements."""
    cuda = device.type == "cuda"
    return {
        "benchmark": "speed", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": machine_name(device), "torch": torch.__version__, "commit": git_commit(),
        "threads": torch.get_num_threads(), "dtype": "bf16 autocast" if cuda else "float32",
        "memory_format": "nchw" if args.nchw else "channels_last",
        "device_path": dict(zip(("train", "eval"), DEVICE_PATH.get(device.type, ()),
                                strict=False)),
        "impls": list(impls), "argv": sys.argv[1:],
        "loadavg_start": os.getloadavg(), "checks": [], "train": [], "latency": [],
        "concurrency": [], "skipped": [], "errors": [],
    }


class _Sections:
    """Runs each section of the benchmark into the record: skipped past the time budget,
    after waiting for a quiet machine when asked, its error recorded rather than raised."""

    def __init__(self, record: dict, start: float, budget: float, quiet_load: float | None,
                 quiet_wait_s: float) -> None:
        self.record, self.start, self.budget = record, start, budget
        self.quiet_load, self.quiet_wait_s = quiet_load, quiet_wait_s

    def run(self, label: str, fn: Callable[[], dict], into: str) -> None:
        record = self.record
        if time.perf_counter() - self.start > self.budget:
            record["skipped"].append(label)
            return
        if self.quiet_load is not None:
            deadline = time.perf_counter() + self.quiet_wait_s
            while os.getloadavg()[0] >= self.quiet_load and time.perf_counter() < deadline:
                time.sleep(5)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        try:
            result = fn()
            result["wall_s"] = round(time.perf_counter() - started, 2)
            result["loadavg_1min"] = [load, os.getloadavg()[0]]
            record[into].append(result)
            print(f"  {label}: {json.dumps(_brief(result))}", flush=True)
        except Exception as e:
            record["errors"].append({"section": label, "error": f"{type(e).__name__}: {e}",
                                     "traceback": traceback.format_exc()})
            print(f"  {label}: ERROR {type(e).__name__}: {e}", flush=True)


def _run_sections(section: Callable[[str, Callable[[], dict], str], None],
                  args: argparse.Namespace, device: torch.device, impls: dict,
                  fmt: torch.memory_format) -> None:
    """Every section in order: the numerics check (CUDA), training, latency, concurrency
    (CUDA); repetitions default per device."""
    cuda = device.type == "cuda"
    train_reps = args.train_reps or (5 if cuda else 3)
    train_steps = args.train_steps or (20 if cuda else 1)
    lat_reps = args.latency_reps or (20 if cuda else 41)
    if cuda:
        section("numerics check", lambda: numerics_check(device), "checks")
    for d in args.train_designs:
        section(f"train {d}", lambda d=d: train_throughput(
            d, device, args.train_batch, train_reps, train_steps, impls, fmt), "train")
    for d in args.latency_designs:
        for b in args.latency_batches:
            reps = lat_reps if b == 1 or cuda else min(lat_reps, 5)
            section(f"latency {d} b{b}",
                    lambda d=d, b=b, r=reps: latency(d, device, b, r, impls, fmt), "latency")
    if cuda:
        for impl in args.concurrency_impls:
            for n in args.concurrency:
                section(f"concurrency {impl} x{n}", lambda impl=impl, n=n: concurrency(
                    impl, CONCURRENCY_DESIGN, args.train_batch, n, args.concurrency_seconds),
                    "concurrency")


def _brief(result: dict) -> dict:
    keys = ("img_s", "ms", "speedup", "aggregate_img_s", "per_process_img_s",
            "max_rel_error_vs_float64_reference")
    return {k: v for k, v in result.items() if k in keys}


if __name__ == "__main__":
    sys.exit(main())
