"""How much memory a trial needs: a torch-free estimate from the plan, for pre-screening.

A CPU trial's peak resident memory is the process (Python, torch, the dataset it loads) plus
the larger of a training step's activations (what the forward pass keeps for the backward
pass, on the path each block takes: ``search_space.work.saved_elements``, times the batch,
plus what the allocator holds beyond them) and an evaluation forward's (a few of the
widest activation tensors at once, times the evaluation batch). The constants come from
peak RSS measured for training steps and ``evaluate()`` of 0.65M-parameter plain8 nets at
8x8 (docs/studies.md, "Memory"): 0.6 GB for C=64, 3.4-3.9 GB for C=1504-2888. They are
meant to err high: a trial over its limit is killed, a design skipped is only reported.

Example:
    >>> cfg = {"resolution": 8, "batch_size": 64, "eval_batch_size": 500}
    >>> small = trial_memory_bytes("plain8-c64-k1.64", cfg, "cifar10")
    >>> wide = trial_memory_bytes("plain8-c2888-k1.2.2.2.2.2", cfg, "cifar10")
    >>> round(small / 2**30, 2), round(wide / 2**30, 2)  # measured: 0.60, 3.87 GB
    (0.69, 4.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluators.catalog import DATASETS
from search_space.design import Design, parse
from search_space.plan import net_plan
from search_space.work import choose_path, saved_elements

FLOAT_BYTES = 4
PROCESS_BYTES = 0.45 * 2**30  # Python, torch and the trial's own imports: plain8-c64-k1.64's
#                               evaluate() peaked at 0.60 GB with its 0.18 GB of CIFAR
HEAP_BYTES = 32 * 2**20  # glibc's largest dynamic mmap threshold: bigger tensors are mapped
#                          and unmapped whole; smaller ones come from the heap, which
#                          fragments across steps
HEAP_FACTOR = 2.6  # peak over saved activations for heap-sized tensors: plain8-c1504-k1.16.16.16
#                    (24.6 MB tensors at 8x8, batch 64) peaked at 2.6x its saved activations
#                    after two training steps (1.5-1.7x after one, for C = 620-1024)
MAPPED_FACTOR = 1.15  # the same for mapped tensors: 1.04-1.10x for C = 2888-5038
EVAL_TENSORS = 3.0  # widest activations alive at once in an evaluation forward (conv
#                     output, BatchNorm output, shuffle copy)


def trial_memory_bytes(design: Design | str, fidelity: Mapping[str, Any], dataset: str, *,
                       num_classes: int | None = None) -> float:
    """Predicted peak bytes of one CPU trial of ``design`` at ``fidelity`` (a
    ``Fidelity.to_dict()``): batch, evaluation batch and resolution matter, image counts
    do not (the dataset is loaded whole either way)."""
    d = parse(design) if isinstance(design, str) else design
    spec = DATASETS[dataset]
    n_train, n_test, side = spec.train_size, spec.test_size, spec.side
    plan = net_plan(d, num_classes or spec.classes, side)
    resolution = fidelity.get("resolution") or side
    scale = (resolution / plan.input_size) ** 2
    batch = int(fidelity.get("batch_size", 64))
    eval_batch = int(fidelity.get("eval_batch_size", 500))
    data = (n_train + n_test) * 3 * side * side  # uint8, loaded whole
    stem = plan.stem.cout * plan.stem.hw_out ** 2 * scale
    train = HEAP_FACTOR * 2 * stem * FLOAT_BYTES * batch
    widest = stem
    for block in (*plan.blocks, *plan.head):
        path = choose_path(block, training=True, batch=batch, scale=scale)
        tensor = max(c.cout * c.hw_out ** 2 for c in block.convs) * scale
        factor = HEAP_FACTOR if tensor * batch * FLOAT_BYTES <= HEAP_BYTES else MAPPED_FACTOR
        train += factor * saved_elements(block, path) * scale * FLOAT_BYTES * batch
        widest = max(widest, tensor)
    evals = EVAL_TENSORS * FLOAT_BYTES * eval_batch * widest
    return PROCESS_BYTES + data + max(train, evals)


def release_memory() -> bool:
    """Return the freed heap of a finished trial to the system; True if glibc did.

    Called after each trial (``studies.trainable``) and each zero-cost record
    (``studies.zero_cost``). Ray reuses its workers across trials (``reuse_actors``), and
    tensors under glibc's mmap threshold come from its heap, which fragments: in the 1-hour
    0.65M run one worker held 15 GB after a few dozen trials of nets predicted under 5.5 GB,
    and Ray's memory monitor killed a trial; a zero-cost run of the 0.65M plain8 space held
    5.9 GB after 174 records, scoring a net that peaks at 3 GB in a fresh process (a guard
    killed it). ``malloc_trim`` hands the free pages inside the heap back.
    """
    import ctypes
    import gc

    gc.collect()
    try:  # the process's own symbols: libc's, without searching for the library file
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return False
