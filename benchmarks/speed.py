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
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

import search_space as ss
from evaluators.record import git_commit, write_json_atomic
from search_space.fast import DEVICE_PATH, FastBlock, FusedBlock
from search_space.modules import Net, ReferenceBlock

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


def block_impls(device: torch.device) -> dict[str, type]:
    """Implementations to compare: the reference, the default FastBlock, and (where the
    device's default is not the fused path in both modes) FusedBlock, so its numbers stay on
    record."""
    impls: dict[str, type] = {"reference": ReferenceBlock, "fast": FastBlock}
    if DEVICE_PATH.get(device.type) != ("fused", "fused"):
        impls["fused"] = FusedBlock
    return impls


def make_nets(design: str, impls: dict, device: torch.device,
              fmt: torch.memory_format = torch.channels_last) -> dict[str, torch.nn.Module]:
    plan = ss.net_plan(ss.parse(design), 100)
    torch.manual_seed(0)
    nets = {name: Net(plan, cls) for name, cls in impls.items()}
    state = nets["reference"].state_dict()
    for net in nets.values():
        net.load_state_dict(state)
    return {k: n.to(device).to(memory_format=fmt) for k, n in nets.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(names: list[str], reps: int, run) -> dict[str, list[float]]:
    """``run(name)`` -> seconds, for each name, reps times, in alternating order."""
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for n in names if r % 2 == 0 else names[::-1]:
            out[n].append(run(n))
    return out


def train_throughput(design: str, device: torch.device, batch: int, reps: int,
                     steps: int, impls: dict,
                     fmt: torch.memory_format = torch.channels_last) -> dict:
    """Images/s of SGD training steps (forward, loss, backward, step), median over reps."""
    nets = make_nets(design, impls, device, fmt)
    size = ss.input_size(ss.parse(design))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, 100, (batch,), generator=g).to(device)
    opts = {k: torch.optim.SGD(n.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                               weight_decay=1e-4) for k, n in nets.items()}
    cuda = device.type == "cuda"

    def run(name: str) -> float:
        net, opt = nets[name].train(), opts[name]
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        return time.perf_counter() - start

    for name in nets:  # warm-up: allocator, kernel selection
        run(name)
    times = interleaved(list(nets), reps, run)
    img_s = {k: batch * steps / statistics.median(v) for k, v in times.items()}
    return {"design": design, "batch": batch, "steps_per_rep": steps, "reps": reps,
            "seconds": times, "img_s": img_s,
            "img_s_best": {k: batch * steps / min(v) for k, v in times.items()},
            "speedup": {k: img_s[k] / img_s["reference"] for k in img_s if k != "reference"}}


def latency(design: str, device: torch.device, batch: int, reps: int, impls: dict,
            fmt: torch.memory_format = torch.channels_last) -> dict:
    """Median milliseconds of one eval-mode forward pass (inference_mode)."""
    nets = make_nets(design, impls, device, fmt)
    size = ss.input_size(ss.parse(design))
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    x = x.to(device).contiguous(memory_format=fmt)
    cuda = device.type == "cuda"

    def run(name: str) -> float:
        net = nets[name].eval()
        sync(device)
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            net(x)
        sync(device)
        return time.perf_counter() - start

    for name in nets:
        run(name), run(name)
    times = interleaved(list(nets), reps, run)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    return {"design": design, "batch": batch, "reps": reps,
            "ms_samples": {k: [1e3 * t for t in v] for k, v in times.items()}, "ms": ms,
            "ms_min": {k: 1e3 * min(v) for k, v in times.items()},
            "speedup": {k: ms["reference"] / ms[k] for k in ms if k != "reference"}}


def _worker(impl: str, design: str, batch: int, seconds: float, barrier, queue) -> None:
    """One process of the concurrency mode: its own model, trains for ``seconds``."""
    try:
        device = torch.device("cuda")
        nets = make_nets(design, {"reference": block_impls(device)[impl]}, device)
        net = nets["reference"].train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        size = ss.input_size(ss.parse(design))
        x = torch.randn(batch, 3, size, size, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 100, (batch,), device=device)

        def step() -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(5):
            step()
        torch.cuda.synchronize()
        barrier.wait(timeout=300)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            for _ in range(5):
                step()
            n += 5
            torch.cuda.synchronize()
        queue.put({"img_s": batch * n / (time.perf_counter() - start), "steps": n})
    except Exception as e:  # reported by the parent, which fails the run
        queue.put({"error": f"{type(e).__name__}: {e}"})


def concurrency(impl: str, design: str, batch: int, procs: int, seconds: float) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(impl, design, batch, seconds, barrier, queue))
               for _ in range(procs)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=seconds + 400) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError("; ".join(errors))
    per = [r["img_s"] for r in results]
    return {"impl": impl, "design": design, "batch": batch, "processes": procs,
            "seconds": seconds, "per_process_img_s": per, "aggregate_img_s": sum(per)}


def numerics_check(device: torch.device) -> dict:
    """Relative error against the float64 reference on ``device``, of the fused FastBlock and of
    the reference, both in float32 (TF32 off): the largest ||a - b|| / ||b|| over outputs,
    input and parameter gradients, train and eval mode, per block kind.

    A norm, not the largest element: where a pre-ReLU value lies within float32 rounding of
    zero, any float32 implementation may flip that one mask bit (float64 says 6e-8, float32
    says -1e-8), and the flipped pixel's whole gradient then differs.
    """
    import copy

    blocks = {"igcv2-ii": ("plain8-c144-k1.12.12", 0), "res20 transition": (
        "res20-c216-k1.8.8.8-stem64", 6), "mobilenetv2 expansion": (
        "mobilenet2-c32-kg1.1.g1-s2-t6-relu", 1), "nonlinear": ("plain8-c64-k1.8.8-relu", 0)}
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    out: dict[str, dict[str, float]] = {"fast": {}, "reference": {}}
    try:
        for kind, (design, i) in blocks.items():
            blk = ss.net_plan(ss.parse(design)).blocks[i]
            torch.manual_seed(0)
            ref = ReferenceBlock(blk)
            with torch.no_grad():  # no parameter at a value that zeroes a gradient
                for m in ref.modules():
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.5)
                        m.running_mean.normal_(0, 0.5), m.running_var.uniform_(0.5, 1.5)
            fast = FastBlock(blk, path="fused")
            fast.load_state_dict(ref.state_dict())
            models = {"truth": copy.deepcopy(ref).double(), "reference": ref, "fast": fast}
            x = torch.randn(4, blk.cin, 12, 12, dtype=torch.float64) + 1.0
            errs: dict[str, list[float]] = {"fast": [], "reference": []}
            for train in (True, False):
                res = {}
                for name, m in models.items():
                    m = m.to(device).train(train)
                    xx = x.to(device, next(m.parameters()).dtype)
                    xx = xx.contiguous(memory_format=torch.channels_last).requires_grad_()
                    y = m(xx)
                    r = torch.linspace(-1, 1, y.numel(), device=device, dtype=y.dtype)
                    (y * r.view_as(y)).sum().backward()
                    res[name] = [y.detach(), xx.grad] + [p.grad for p in m.parameters()]
                    m.zero_grad(set_to_none=True)
                # BN shifts followed by another BN have zero gradient: floor the scale.
                floor = 1e-2 * max(t.norm().item() for t in res["truth"][2:])
                for name in errs:
                    for a, b in zip(res[name], res["truth"], strict=True):
                        scale = max(b.norm().item(), floor)
                        errs[name].append((a.double() - b).norm().item() / scale)
            for name in errs:
                out[name][kind] = max(errs[name])
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    return {"max_rel_error_vs_float64_reference": out}


def device_name(device: torch.device) -> str:
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
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("speed.py: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    for d in {*args.train_designs, *args.latency_designs}:
        try:
            ss.parse(d)
        except ValueError as e:
            print(f"speed.py: {e}", file=sys.stderr)
            return 2
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    cuda = device.type == "cuda"
    out = args.out or REPO / f"benchmarks/results/speed_{'gpu' if cuda else 'cpu'}.json"
    if not cuda:
        torch.set_num_threads(args.threads)
    budget = args.budget_s if args.budget_s is not None else (450.0 if cuda else float("inf"))
    train_reps = args.train_reps or (5 if cuda else 3)
    train_steps = args.train_steps or (20 if cuda else 1)
    lat_reps = args.latency_reps or (20 if cuda else 41)
    impls = block_impls(device)
    fmt = torch.contiguous_format if args.nchw else torch.channels_last
    t0 = time.perf_counter()
    record: dict = {
        "benchmark": "speed", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": device_name(device), "torch": torch.__version__, "commit": git_commit(),
        "threads": torch.get_num_threads(), "dtype": "bf16 autocast" if cuda else "float32",
        "memory_format": "nchw" if args.nchw else "channels_last",
        "device_path": dict(zip(("train", "eval"), DEVICE_PATH.get(device.type, ()),
                                strict=False)),
        "impls": list(impls), "argv": sys.argv[1:],
        "loadavg_start": os.getloadavg(), "checks": [], "train": [], "latency": [],
        "concurrency": [], "skipped": [], "errors": [],
    }

    def section(label: str, fn, into: str) -> None:
        if time.perf_counter() - t0 > budget:
            record["skipped"].append(label)
            return
        if args.quiet_load is not None:
            deadline = time.perf_counter() + args.quiet_wait_s
            while os.getloadavg()[0] >= args.quiet_load and time.perf_counter() < deadline:
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
    record["loadavg_end"] = os.getloadavg()
    record["wall_s"] = round(time.perf_counter() - t0, 1)
    record["summary"] = summary(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, record, sort_keys=False)
    print(record["summary"])
    print(f"wrote {out}")
    return 1 if record["errors"] else 0


def _brief(result: dict) -> dict:
    keys = ("img_s", "ms", "speedup", "aggregate_img_s", "per_process_img_s",
            "max_rel_error_vs_float64_reference")
    return {k: v for k, v in result.items() if k in keys}


if __name__ == "__main__":
    sys.exit(main())
