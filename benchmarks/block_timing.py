"""Timings of the block implementations side by side (benchmarks/speed.py): nets of one
design with the same weights per implementation, training images/s and inference latency
measured interleaved, and training throughput of processes sharing one GPU.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

import search_space as ss
from search_space.fast import DEVICE_PATH, FastBlock, FusedBlock
from search_space.modules import Net, ReferenceBlock


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
