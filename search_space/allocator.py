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
M_MMAP_MAX = -4
KEEP_TRIM = 2**31 - 1  # mallopt takes an int: the largest, "never trim" in practice

_libc: dict[str, ctypes.CDLL | None] = {}


def _glibc() -> ctypes.CDLL | None:
    if "libc" not in _libc:
        name = ctypes.util.find_library("c")
        lib = None
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and name:
            lib = ctypes.CDLL(name)
        _libc["libc"] = lib
    return _libc["libc"]


def keep_heap() -> bool:
    """Serve every allocation from the heap and never trim it. True where it was applied
    (glibc), False where there is nothing to set. Process-wide and one-way: memory the heap
    has grown to stays there, so glibc's defaults cannot be had back in the same process
    (a benchmark compares the two policies in two processes)."""
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(param, value) == 1
               for param, value in ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, KEEP_TRIM)))


def trials_keep_heap() -> bool:
    """Whether a trial started in this environment keeps its heap (:func:`for_trial`): what
    the path rule (``search_space.work``) assumes of the process a block trains in."""
    return os.environ.get("IGCBENCH_HEAP", "1") != "0" and _glibc() is not None


def for_trial() -> str:
    """Apply the trial's policy (the kept heap unless ``IGCBENCH_HEAP=0``) and name what
    runs: ``"heap"``, ``"untouched"`` (turned off) or ``"n/a"`` (not glibc).

    >>> import os
    >>> os.environ["IGCBENCH_HEAP"] = "0"
    >>> for_trial()
    'untouched'
    >>> del os.environ["IGCBENCH_HEAP"]
    """
    if os.environ.get("IGCBENCH_HEAP", "1") == "0":
        return "untouched"
    return "heap" if trials_keep_heap() and keep_heap() else "n/a"
