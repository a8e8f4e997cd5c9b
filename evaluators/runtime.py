"""The torch process state a trial runs under (threads, deterministic kernels, on the CPU the
C allocator's policy: search_space/allocator.py) and the name
of the device it ran on, shared by the one-model path (evaluation) and the multi-model
engine (multi_model), and used by benchmarks/engine_throughput.py to time as they train."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from search_space import allocator


@contextlib.contextmanager
def torch_state(threads: int, device: torch.device, *,
                deterministic: bool = True) -> Iterator[None]:
    """Thread count and deterministic algorithms for one trial; restored afterwards.

    ``deterministic=False`` (``Fidelity.deterministic``) matters on CUDA only: cuDNN then
    autotunes and may pick non-deterministic kernels."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.set_num_threads(threads)
    if device.type == "cpu":
        allocator.for_trial()  # once per process in effect: the policy is the process's
    # On CUDA a few kernels have no deterministic variant: warn rather than fail the trial.
    deterministic = deterministic or device.type != "cuda"
    torch.use_deterministic_algorithms(deterministic, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark = not deterministic
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.benchmark = saved[3]


def device_name(device: torch.device) -> str:
    """A record's ``device``: ``cuda:<card name>`` or the device type (``cpu``)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type
