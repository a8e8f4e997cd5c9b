"""The C allocator's policy for a CPU trial: every block from the heap, none given back.

Why: glibc serves an allocation above its mmap threshold (at most 32 MiB on 64-bit, the
ceiling of its dynamic threshold) with a fresh ``mmap``, and the kernel then zero-fills it a
page at a time on first touch. A 64-image 32x32 activation of C = 144 is 37.7 MB, so at
32x32 every such tensor of every training step paid its pages again: a fresh 37.7 MB output
cost 19.4 ms, two thirds of the depth-wise 3x3 forward it was written by, and a whole
``plain8-c144-k1.12.12`` step took ~2.3-2.9 s where it takes ~1.0-1.3 s with the heap kept
(benchmarks/depthwise.py, ``benchmarks/results/depthwise_cpu_malloc_heap.json``;
``benchmarks/kernels.py`` times both policies in one run). glibc's ``mallopt``:
``M_MMAP_MAX`` = 0 serves every block from the heap (``brk``), and a trim threshold above
any trial's footprint keeps freed memory for the next step instead of returning it.

The cost: a process keeps its peak heap until it exits. A trial's process is its own (a Ray
worker's or ``studies/run.py``'s), and its peak is what the memory pre-screen bounds, so
nothing else changes. Set ``IGCBENCH_HEAP=0`` to leave glibc's defaults alone; on a C
library other than glibc (macOS, musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# <malloc.h>: mallopt's parameter numbers (glibc; stable since 2.0)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
KEEP_TRIM = 2**31 - 1  # mallopt takes an int: the largest, "never trim" in practice
# glibc's defaults as its dynamic threshold ends up after a process has freed a block of
# 32 MiB or more (DEFAULT_MMAP_THRESHOLD_MAX; trim at twice it): what "default" restores.
DEFAULT_MMAP_MAX = 65536
DEFAULT_MMAP_THRESHOLD = 32 * 2**20
DEFAULT_TRIM = 2 * DEFAULT_MMAP_THRESHOLD

_libc: dict[str, ctypes.CDLL | None] = {}


def _glibc() -> ctypes.CDLL | None:
    if "libc" not in _libc:
        name = ctypes.util.find_library("c")
        lib = None
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and name:
            lib = ctypes.CDLL(name)
        _libc["libc"] = lib
    return _libc["libc"]


def set_policy(policy: str) -> bool:
    """``"heap"``: every allocation from the heap, never trimmed; ``"default"``: glibc's
    settled defaults (mmap above 32 MiB, trim above 64 MiB). True where it was applied
    (glibc), False where there is nothing to set. Process-wide: a benchmark may switch
    between the two, a trial sets it once (:func:`for_trial`).

    >>> set_policy("neither")
    Traceback (most recent call last):
    ...
    ValueError: allocator policy 'neither': expected 'heap' or 'default'
    """
    if policy not in ("heap", "default"):
        raise ValueError(f"allocator policy {policy!r}: expected 'heap' or 'default'")
    libc = _glibc()
    if libc is None:
        return False
    if policy == "heap":
        settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, KEEP_TRIM))
    else:
        settings = ((M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD), (M_MMAP_MAX, DEFAULT_MMAP_MAX),
                    (M_TRIM_THRESHOLD, DEFAULT_TRIM))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)


def for_trial() -> str:
    """Apply the trial's policy (``heap`` unless ``IGCBENCH_HEAP=0``) and name what ran:
    ``"heap"``, ``"default"`` (turned off) or ``"n/a"`` (not glibc)."""
    if os.environ.get("IGCBENCH_HEAP", "1") == "0":
        return "default"
    return "heap" if set_policy("heap") else "n/a"
