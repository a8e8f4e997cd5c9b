"""Inference latency: median wall time of one forward pass, after warm-up.

Eval mode, ``torch.inference_mode``, on the device at hand with the trial's thread count; on
CUDA in bf16 autocast and channels_last (as trained), synchronised around each pass.

Example:
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten())
    >>> ms = measure_latency(net, 8, device=torch.device("cpu"), warmup=1, reps=2)
    >>> sorted(ms)
    [1, 64]
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from evaluators.record import LATENCY_BATCHES


def measure_latency(model: nn.Module, resolution: int, *, device: torch.device,
                    warmup: int = 3, reps: int = 10,
                    batch_sizes: tuple[int, ...] = LATENCY_BATCHES) -> dict[int, float]:
    """Median milliseconds per forward pass of ``model`` for each batch size.

    Args:
        model: the network (on ``device``); restored to its train/eval mode afterwards.
        resolution: input side in pixels (input is B x 3 x resolution x resolution).
        device: where ``model`` lives.
        warmup: untimed passes before timing.
        reps: timed passes; the median is returned.

    Returns:
        {batch size: median milliseconds}.
    """
    if reps < 1:
        raise ValueError(f"reps={reps}; need at least 1 timed pass")
    cuda = device.type == "cuda"
    was_training = model.training
    model.eval()
    out: dict[int, float] = {}
    try:
        with torch.inference_mode():
            for batch in batch_sizes:
                x = torch.randn(batch, 3, resolution, resolution,
                                generator=torch.Generator().manual_seed(0)).to(device)
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                times = []
                for i in range(warmup + reps):
                    if cuda:
                        torch.cuda.synchronize(device)
                    start = time.perf_counter()
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                        model(x)
                    if cuda:
                        torch.cuda.synchronize(device)
                    if i >= warmup:
                        times.append(time.perf_counter() - start)
                out[batch] = 1000 * statistics.median(times)
    finally:
        model.train(was_training)
    return out
