"""What a block costs on each of FastBlock's paths, and which path a block should take.

Torch-free counts over the plan, shared by the block implementation (``search_space.fast``
picks a path per block with :func:`choose_path`), the cost model (``evaluators.cost_model``
predicts a trial's seconds from the same counts) and the time budget's memory pre-screen
(``studies.time_budget``, :func:`saved_elements`). One home, so the rule FastBlock follows
and the time the cost model predicts for it cannot drift apart.

Per image at the plan's resolution, a block on a path does:

- ``elements``: activation values read or written by its forward (a run's input and output
  on the fused path; every conv's output and its BN, shuffle and ReLU passes on the
  reference path);
- ``macs``: multiply-adds of its forward (the spatial convs and one dense GEMM per run on
  the fused path, each conv's own on the reference path);
- ``gram``: the fused path's Gram matrix of each run's input (training only);
- ``compose``: the fused path's composition of each run's dense C x C matrix, one product
  per 1x1 convolution, done once per forward call whatever the batch (float64).

Why a rule. The fused path turns every run into one dense C x C GEMM: at C = 144 that saves
the reference path's BatchNorm and shuffle passes, but its multiply-adds grow with C^2 per
pixel against C * K for the group convolutions, and its composition with C^3 per step. A
training step of plain8-c1504-k1.16.16.16 took 37 s fused against 0.43 s on the reference
path (docs/performance.md); most of the 0.65M-parameter plain8 space is that wide.

Example:
    >>> from search_space import net_plan, parse
    >>> narrow = net_plan(parse("plain8-c200-k1.g2.g2.g2.g2.g2")).blocks[0]
    >>> wide = net_plan(parse("plain8-c1504-k1.16.16.16")).blocks[0]
    >>> [choose_path(b, training=True, batch=64, scale=1 / 16) for b in (narrow, wide)]
    ['fused', 'grouped']
    >>> choose_path(wide, training=False, batch=500, scale=1 / 16)  # grouped: training only
    'reference'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from . import allocator
from .plan import Block, Conv, Run, segments

PATHS = ("fused", "reference", "grouped")  # how FastBlock computes a block (search_space.fast)
#: "grouped" (search_space.grouped) is a training path only: the reference path's function
#: and multiply-adds with group-major batched GEMMs and fused BatchNorm-shuffle passes.
COMPOSE_MACS = 4  # probe-GEMM multiply-adds per multiply-add of a run's composition in
#                   training: w @ A and A @ cov, forward and backward, in float64 (12x the
#                   product), but square products run faster than the probes' tall GEMMs;
#                   4 was set from measured training steps of plain8-c620-k1.g4 and
#                   -c1504-k1.16.16.16 (8x8, batch 8; benchmarks/cost_model.py --wide)
COMPOSE_MACS_EVAL = 1  # in eval the products alone (no variances, no backward), once per
#                        parameter change; counted per forward call, which overstates it
#                        for an evaluation of many batches (the rule then errs toward the
#                        reference path, and only for nets where the two are close)

#: Seconds per activation element and per multiply-add of one image, on one CPU thread, for
#: a training step (forward, backward, update) and an evaluation forward, per path. Eval:
#: the coefficients ``evaluators.calibrate`` fitted for each implementation at 8x8, batch
#: 64, on the 2-core development machine (2026-11-29; the fused path's per-element cost fits
#: to 0 there: its passes hide behind its GEMMs). Only their ratios decide a path, and those
#: are a memory-bandwidth to arithmetic ratio, which CPUs share more than they share speed;
#: ``benchmarks/path_choice.py`` measures how often the rule picks the faster path.
CPU_COSTS = {
    # training: fused and reference as calibrated at 8x8 (the rule benchmarks/path_choice.py
    # validated between those two); grouped: the coefficients ``python -m benchmarks.path_costs``
    # fitted for it on block steps at the rungs' own settings, 16x16, batch 64, one thread
    # (benchmarks/results/path_costs_cpu.json, 2026-12-07: the C++ kernels, the folded
    # BatchNorms, channels-last grouped 3x3s). Whole nets judge the mixture:
    # ``python -m benchmarks.path_nets`` times 31 designs of the presets with every block
    # forced onto each path against this rule (benchmarks/results/path_nets_cpu.json,
    # docs/performance.md). On 27 plain8 nets measured while fitting, this rule found the
    # fastest path of every one, and still did with the grouped costs scaled by 0.83 or
    # 1.2; the fit's own fused and reference coefficients did too, but on whole nets before
    # the grouped path they mispicked more between those two.
    "train": {"fused": (0.0, 1.40e-10), "reference": (4.23e-9, 2.74e-10),
              "grouped": (9.99e-10, 1.31e-10)},
    "eval": {"fused": (0.0, 3.67e-11), "reference": (1.23e-9, 1.08e-11)},
}


@dataclass(frozen=True)
class BlockWork:
    """One block's work on one path; all but ``compose`` per image at the plan's size."""

    elements: float
    macs: float
    gram: float  # fused path, training only
    compose: float  # fused path, per forward call (not per image)


def block_work(block: Block, path: str) -> BlockWork:
    """The work of ``block`` on ``path`` ("fused" or "reference").

    Example:
        >>> from search_space import net_plan, parse
        >>> blk = net_plan(parse("plain8-c16-k1.4.4")).blocks[0]
        >>> w = block_work(blk, "fused")  # one run: depth-wise 3x3, then one 16x16 GEMM
        >>> w.macs == (16 * 9 + 16 * 16) * 32 * 32, w.compose == 2 * 16 ** 3
        (True, True)
    """
    if path == "fused":
        elements, macs = _fused(block)
        return BlockWork(elements, macs, _gram(block), _compose(block))
    if path in ("reference", "grouped"):  # the same function; "grouped" takes fewer passes
        elements, macs = _reference(block)
        return BlockWork(elements, macs, 0.0, 0.0)
    raise ValueError(f"path {path!r}; accepted: {', '.join(PATHS)}")


def path_seconds(block: Block, path: str, *, training: bool, batch: int, scale: float = 1.0,
                 costs: dict[str, dict[str, tuple[float, float]]] | None = None) -> float:
    """Predicted seconds per image of ``block`` on ``path`` (``CPU_COSTS`` by default).

    ``batch``: images per forward call (they share the composition); ``scale``: pixels at
    the running resolution over the plan's (1/16 for 8x8 images through a 32x32 plan).
    """
    a, b = (costs or CPU_COSTS)["train" if training else "eval"][path]
    w = block_work(block, path)
    macs = w.macs + (w.gram if training else 0.0)
    compose = (COMPOSE_MACS if training else COMPOSE_MACS_EVAL) * w.compose / max(batch, 1)
    return a * w.elements * scale + b * (macs * scale + compose)


def choose_path(block: Block, *, training: bool, batch: int, scale: float = 1.0) -> str:
    """The path predicted fastest for ``block`` (``CPU_COSTS``): "fused", "reference" or, in
    training and where ``_grouped_pays``, "grouped".

    Ties go to the earlier path of ``PATHS``: the fused path also needs less memory (it
    saves two tensors per run for the backward pass, the others two per convolution).
    """
    costs = CPU_COSTS["train" if training else "eval"]
    seconds = {p: path_seconds(block, p, training=training, batch=batch, scale=scale)
               for p in PATHS if p in costs and (p != "grouped" or _grouped_pays(block, batch,
                                                                                scale))}
    return min(seconds, key=lambda p: (seconds[p], PATHS.index(p)))


#: The grouped path folds a run's BatchNorms into its group 1x1 convolutions
#: (``search_space.bn_fold``) where every one of them has at most this many input channels
#: per group: the fold trades the BatchNorms' passes for a Gram matrix (K_in^2 multiply-adds
#: a pixel per group, forward and backward), which grows with K_in. Training steps of one
#: block, batch 64, one thread, grouped over folded time (2026-12-07, a 2-core machine under
#: a load of 4-6): at 16x16, K_in 2: 1.28, 4: 1.34, 6: 1.23, 8: 1.09, 12: 1.30-1.39, 16: 1.24,
#: 16/8: 1.17, 24: 1.05, 32: 1.02, 64: 0.83, 100: 0.81, 108: 0.85, 12/72: 0.83; a lone
#: 1x1 convolution between ReLUs, K_in 8: 1.14, 12: 1.12; at 8x8, K_in 4: 1.01, 6: 0.98,
#: 8/8 (after a ReLU): 0.89 and 1.02 (two runs), 8 alone: 0.99, 12/8: 1.24, 12: 1.49,
#: 12 alone: 1.07, 32: 1.12, 2: 1.47 (benchmarks.kernels measures whole nets).
FOLD_MAX_K = 24


def fold_pays(block: Block, run: Run) -> bool:
    """Whether the grouped path folds the BatchNorms of ``run`` (a run of ``block``) into its
    1x1 convolutions: where each has at most ``FOLD_MAX_K`` input channels a group.

    Example:
        >>> from search_space import net_plan, parse
        >>> narrow, wide = (net_plan(parse(d)).blocks[0] for d in ("plain8-c144-k1.12.12",
        ...                                                         "plain8-c256-k1.64.64"))
        >>> [fold_pays(b, segments(b)[0]) for b in (narrow, wide)]
        [True, False]
    """
    return bool(run.steps) and all(_conv_at(block, ci).branch_size <= FOLD_MAX_K
                                   for ci, *_ in run.steps)


#: glibc's largest dynamic mmap threshold: a fresh tensor above it is mmapped and
#: page-faulted anew every time (docs/performance.md, "Left undone").
MMAP_MAX_BYTES = 32 * 2 ** 20


def _grouped_pays(block: Block, batch: int, scale: float) -> bool:
    """Where the grouped path may win: not where a block's activations outgrow
    ``MMAP_MAX_BYTES`` (float32) and glibc maps each large tensor afresh. The grouped path
    makes about twice the fresh tensors of the fused one, and there each costs page faults:
    plain8-c144-k1.12.12 at 32x32 ran at half the fused path's speed (``benchmarks.roofline``),
    at 16x16 faster than it. A trial keeps its heap (``search_space.allocator``), and with it
    the folded grouped path ran that design at 32x32 1.84x the fused path
    (``benchmarks.kernels``, docs/performance.md).

    (Blocks whose 1x1 convolutions are all dense, Xception's, were excluded until the
    allocator and the C++ kernels: whole nets then ran them 1.2-1.3x slower grouped; now
    1.18-1.35x faster, ``benchmarks.path_nets``.)"""
    largest = max(c.cout * c.hw_out ** 2 for c in block.convs) * scale * batch * 4
    return largest <= MMAP_MAX_BYTES or allocator.trials_keep_heap()


def saved_elements(block: Block, path: str) -> float:
    """Activation values per image that a training forward keeps for the backward pass.

    Reference: each convolution's output (BatchNorm's input) and the tensor after its
    BatchNorm and shuffle (the next convolution's input; the ReLU is in place). Fused: per
    run, its centred input and its output (``fused_run.TrainRun`` saves X and y).
    """
    if path in ("reference", "grouped"):
        return float(sum(2 * c.cout * c.hw_out ** 2 for c in block.convs))
    if path == "fused":
        return float(sum((r.cin + r.cout) * _run_pixels(block, r.spatial)
                         for r in segments(block)))
    raise ValueError(f"path {path!r}; accepted: {', '.join(PATHS)}")


def _fused(block: Block) -> tuple[float, float]:
    """(elements, macs) of a block on the fused path: one GEMM per run."""
    elements = macs = 0.0
    for run in segments(block):
        pixels = _run_pixels(block, run.spatial)
        if run.spatial is not None:
            conv = _conv_at(block, run.spatial)
            elements += conv.cin * conv.hw_in ** 2
            macs += conv.macs
        elements += (run.cin + run.cout) * pixels
        macs += run.cin * run.cout * pixels
    return elements, macs


def _compose(block: Block) -> float:
    """Multiply-adds of one product per 1x1 conv of each run: (C_out x C_in) @ (C_in x cin)."""
    total = 0.0
    for run in segments(block):
        for conv_index, *_ in run.steps:
            conv = _conv_at(block, conv_index)
            total += conv.cout * conv.cin * run.cin
    return total


def _gram(block: Block) -> float:
    return float(sum(run.cin ** 2 * _run_pixels(block, run.spatial)
                     for run in segments(block)))


def _reference(block: Block) -> tuple[float, float]:
    """(elements, macs) on the reference path: conv, BN, [shuffle copy], [ReLU] each.

    (A group 1x1 convolution counted as dense, as ``../shared/notes/cpu-probes.md`` found
    at C=144, predicted wide nets 4x too slow: at C=432-620 their groups are cheap.)
    """
    elements = macs = 0.0
    for conv, shuffle, relu in zip(block.convs, block.shuffle, block.relu, strict=True):
        passes = 2 + (shuffle > 1) + relu
        elements += conv.cin * conv.hw_in ** 2 + passes * conv.cout * conv.hw_out ** 2
        macs += conv.macs
    return elements, macs


def _conv_at(block: Block, module_index: int) -> Conv:
    """The conv at a ReferenceBlock module index (conv, BN, [shuffle], [ReLU] per conv)."""
    idx = 0
    for conv, shuffle, relu in zip(block.convs, block.shuffle, block.relu, strict=True):
        if idx == module_index:
            return conv
        idx += 2 + (shuffle > 1) + relu
    raise IndexError(module_index)


def _run_pixels(block: Block, spatial: int | None) -> int:
    """Pixels of a run: its spatial conv's output, else the block's (1x1 keeps the size)."""
    if spatial is not None:
        return _conv_at(block, spatial).hw_out ** 2
    return block.convs[-1].hw_out ** 2



#: The modules whose code sets how fast a block trains or evaluates on each path (and which
#: path it takes): a measurement of speed belongs to their version.
SPEED_SOURCES = ("allocator.py", "bn_fold.py", "fast.py", "fused_run.py", "group_gemm.cpp",
                 "grouped.py", "kernels.cpp", "kernels.py", "modules.py", "simd.h", "work.py")


def speed_code() -> str:
    """A fingerprint of ``SPEED_SOURCES`` (12 hex digits of their SHA-256): a calibration
    of the cost model (``evaluators.calibrate``) is cached under it, so a change of kernel
    or path rule measures the machine again instead of pricing trials with the old code's
    speed.

    Example:
        >>> len(speed_code()), speed_code() == speed_code()
        (12, True)
    """
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in SPEED_SOURCES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return h.hexdigest()[:12]
