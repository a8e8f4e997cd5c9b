"""Measure this machine's speed for the cost model (evaluators.cost_model), and cache it.

A few seconds of training steps and evaluation forwards of probe nets, built as trials
build them (``search_space.build``, the default block implementation) and run as trials run
them (the fidelity's resolution, batch size and thread count, on the device): their times
against the probes' work per image (``per_image_work``) give the seconds per activation
element, per multiply-add and per image of a training step and of an evaluation forward.
The result is cached per machine (host name, CPU model, cores), torch version, device,
threads, block paths, resolution, batch size and the version of the block code
(``search_space.work.speed_code``) in ``$IGCBENCH_CACHE`` (default
``~/.cache/igcbench``)/calibration.json; ``save_calibration`` stores a refitted one.

Example:
    >>> import evaluators as ev
    >>> cal = get_calibration(ev.get_fidelity("smoke"), device="cpu")  # doctest: +SKIP
    >>> cal.train  # seconds per element, per multiply-add, per image  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import nnls

import search_space as ss
from evaluators.cost_model import Calibration, per_image_work
from evaluators.fidelity import Fidelity
from evaluators.record import utc_now, write_json_atomic
from evaluators.runtime import device_name
from evaluators.train import make_optimizer
from search_space import allocator
from search_space.work import speed_code

#: Xception at three widths: elements grow with C and multiply-adds with C^2, so they
#: separate the per-element, per-multiply-add and per-image costs; an IGCV2 net with three
#: group convolutions adds the passes of the reference path (on the fused path it costs
#: what Xception at its width does). Narrow enough that the whole measurement takes a few
#: seconds (about 4 s idle at the cpu fidelity's 16x16).
PROBES = ("plain8-c32-k1.32", "plain8-c64-k1.64", "plain8-c128-k1.128", "plain8-c96-k1.8.12")
STEPS = 3  # timed training steps per probe (after one untimed), median taken
EVAL_BATCH = 64  # images per timed evaluation forward


def cache_path() -> Path:
    """``$IGCBENCH_CACHE/calibration.json`` (default ``~/.cache/igcbench``)."""
    root = os.environ.get("IGCBENCH_CACHE") or Path.home() / ".cache" / "igcbench"
    return Path(root) / "calibration.json"


def machine_id() -> str:
    """``host|CPU model|cores``: what a cached calibration belongs to."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{socket.gethostname()}|{model}|{os.cpu_count()} cores"


def block_paths(device: torch.device, impl: str | None = None) -> tuple[str, str]:
    """(training, evaluation) path of block implementation ``impl`` (default: the default
    one) on ``device``."""
    from search_space.fast import DEVICE_PATH

    impl = impl or ss.DEFAULT_IMPL
    if impl in ("reference", "fused"):
        return (impl, impl)
    return DEVICE_PATH.get(device.type, ("reference", "reference"))


def cache_key(cal: Calibration) -> str:
    return (f"{cal.machine}|torch {cal.torch_version}|{cal.device}|{cal.threads} threads|"
            f"{'/'.join(cal.paths)}|{cal.resolution}px|batch {cal.batch_size}|code {cal.code}")


def get_calibration(fidelity: Fidelity, *, device: torch.device | str = "cpu",
                    threads: int | None = None, refresh: bool = False) -> Calibration:
    """The cached calibration for this machine and ``fidelity``'s shape, or a new one.

    ``threads``: default ``fidelity.threads`` or 1. ``refresh``: measure even if cached.
    """
    dev = torch.device(device)
    threads = threads or fidelity.threads or 1
    if not refresh:
        cal = cached_calibration(fidelity, device=dev, threads=threads)
        if cal is not None:
            return cal
    cal = measure(fidelity, device=dev, threads=threads)
    save_calibration(cal)
    return cal


def cached_calibration(fidelity: Fidelity, *, device: torch.device | str = "cpu",
                       threads: int | None = None) -> Calibration | None:
    """The cached calibration :func:`get_calibration` would return, or None (it would
    measure one)."""
    wanted = _identity(fidelity, torch.device(device), threads or fidelity.threads or 1)
    cached = _read_cache().get(cache_key(wanted))
    return None if cached is None else Calibration.from_dict(cached)


def save_calibration(cal: Calibration) -> None:
    """Store ``cal`` in the cache under its key (atomically; other keys kept)."""
    path = cache_path()
    entries = _read_cache()
    entries[cache_key(cal)] = cal.to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, entries)


def _read_cache() -> dict[str, Any]:
    try:
        entries = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _identity(fidelity: Fidelity, device: torch.device, threads: int) -> Calibration:
    return Calibration(
        machine=machine_id(), torch_version=torch.__version__, device=device_name(device),
        threads=threads, paths=block_paths(device), resolution=fidelity.resolution or 32,
        batch_size=fidelity.batch_size, train=(0.0, 0.0, 0.0), eval=(0.0, 0.0, 0.0),
        code=speed_code())


def measure(fidelity: Fidelity, *, device: torch.device, threads: int,
            probes: tuple[str, ...] | None = None, impl: str | None = None) -> Calibration:
    """Time the probes and fit the cost model's coefficients (non-negative least squares).

    ``impl``: the block implementation to time (default: ``search_space.DEFAULT_IMPL``);
    the benchmark calibrates ``"reference"`` too, for records made before the fast path.
    Where the implementation's paths are "auto" (FastBlock on the CPU picks a path per
    block), each path is timed on the probes, fitting its own coefficients (the grouped
    path in training only: in eval its blocks take the other two).
    """
    probes = probes or PROBES
    base = _identity(fidelity, device, threads)
    if impl is not None:
        base = dataclasses.replace(base, paths=block_paths(device, impl))
    if "auto" in base.paths:  # blocks take either path: fit each path's coefficients
        fused = _measure_path(base, "fused", probes, fidelity.batch_size, device)
        reference = _measure_path(base, "reference", probes, fidelity.batch_size, device)
        grouped = _measure_path(base, "grouped", probes, fidelity.batch_size, device)
        return Calibration(**{**base.to_dict(), "train": fused[0], "eval": fused[1],
                              "ref_train": reference[0], "ref_eval": reference[1],
                              "grp_train": grouped[0], "created": utc_now()})
    train, evals = _measure_path(base, impl, probes, fidelity.batch_size, device)
    return Calibration(**{**base.to_dict(), "train": train, "eval": evals,
                          "created": utc_now()})


def _measure_path(base: Calibration, impl: str | None, probes: tuple[str, ...], batch: int,
                  device: torch.device) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(train, eval) coefficients of block implementation ``impl`` timed on the probes."""
    paths = block_paths(device, impl)
    saved = torch.get_num_threads()
    torch.set_num_threads(base.threads)
    if device.type == "cpu":
        allocator.for_trial()  # time the probes under the trials' allocator policy
    try:
        timings = [_time_probe(ss.parse(p), base.resolution, batch, device, impl)
                   for p in probes]
    finally:
        torch.set_num_threads(saved)
    works = [per_image_work(p, resolution=base.resolution, paths=paths, batch_size=batch)
             for p in probes]
    train = _fit([(w.train_elements, w.train_macs) for w in works], [t[0] for t in timings])
    evals = _fit([(w.eval_elements, w.eval_macs) for w in works], [t[1] for t in timings])
    return train, evals


def _fit(features: list[tuple[float, float]], seconds: list[float]) -> tuple[float, ...]:
    """Non-negative (a, b, c) with seconds ~ a * elements + b * macs + c, in relative terms
    (each probe's equation divided by its own time, so the narrow probe counts as much)."""
    X = np.array([[e, m, 1.0] for e, m in features])
    y = np.array(seconds)
    coef, _ = nnls(X / y[:, None], np.ones_like(y))
    return tuple(float(c) for c in coef)


def _time_probe(design: ss.Design, resolution: int, batch: int, device: torch.device,
                impl: str | None = None) -> tuple[float, float]:
    """(seconds per image of a training step, of an evaluation forward), medians."""
    torch.manual_seed(0)
    model = ss.build(design, num_classes=10, impl=impl).to(device)
    optimizer = make_optimizer(model, Fidelity(name="calibration"))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, resolution, resolution, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train = _median_time(step, STEPS, sync) / batch
    model.eval()
    xe = torch.randn(EVAL_BATCH, 3, resolution, resolution, generator=g).to(device)
    if cuda:
        xe = xe.contiguous(memory_format=torch.channels_last)

    def forward() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16,
                                                    enabled=cuda):
            model(xe)

    evaluate = _median_time(forward, 2, sync) / EVAL_BATCH
    return train, evaluate


def _median_time(fn: Any, reps: int, sync: Any) -> float:
    fn()  # untimed: allocator, caches, lazy initialisation
    times = []
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
