"""Per-epoch checkpoints of a trial, so an interrupted trial resumes at its next epoch.

:func:`evaluators.train.train_epochs` writes one after every epoch when given an
:class:`EpochCheckpoint`: the model, the optimiser, the LR schedule, every random generator
the trial draws from (the data-order/augmentation generator, torch's global CPU generator,
and the CUDA ones on a GPU) and the curve so far. Started again with the same checkpoint it
restores all of that and trains the remaining epochs, so the finished curve, accuracies and
weights equal those of an uninterrupted run with the same seed (on the CPU bit for bit).

A checkpoint is written to a temporary file beside its path, fsync'ed and ``os.replace``d:
after ``kill -9`` at any moment the path holds the previous epoch's checkpoint or the new
one, whole. A file that cannot be read, or that belongs to another trial (its ``identity``
differs: design, fidelity config, dataset, seed, device kind), is ignored and the trial
starts from epoch 1. Removing it once the trial's record is safely written is the caller's
job (:func:`remove_checkpoint`).

Example:
    >>> import tempfile, torch
    >>> path = Path(tempfile.mkdtemp()) / "trial.pt"
    >>> ckpt = EpochCheckpoint(path, identity={"design_id": "plain8-c16-k1.4.4", "seed": 0})
    >>> save_checkpoint(ckpt, {"epoch": 1, "curve": [{"epoch": 1}]}, elapsed_s=2.5)
    >>> load_checkpoint(ckpt)["epoch"], ckpt.resumed_epochs, ckpt.resumed_s
    (1, 1, 2.5)
    >>> load_checkpoint(EpochCheckpoint(path, identity={"seed": 1})) is None  # another trial
    True
    >>> remove_checkpoint(path); path.exists()
    False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evaluators.record import write_atomic

FORMAT = 1  # bump when the saved fields change; an older file is then ignored


@dataclass
class EpochCheckpoint:
    """Where a trial keeps its per-epoch state, and what a saved state must match.

    ``path`` and ``identity`` are the caller's; ``resumed_epochs`` and ``resumed_s`` are set
    by :func:`load_checkpoint` (so the caller can tell a resumed trial and count the time the
    interrupted runs spent): epochs restored, and the wall seconds of training up to them.
    """

    path: Path
    identity: dict[str, Any]  # JSON values naming the trial; a file with others is ignored
    resumed_epochs: int = field(default=0, init=False)
    resumed_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)


def save_checkpoint(checkpoint: EpochCheckpoint, state: dict[str, Any], *,
                    elapsed_s: float) -> None:
    """Write ``state`` (tensors, dicts, lists, numbers, strings) atomically to the path.

    ``elapsed_s``: wall seconds of training so far, the interrupted runs' included.
    """
    path = checkpoint.path
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "identity": checkpoint.identity, "elapsed_s": elapsed_s,
               **state}
    write_atomic(path, lambda f: torch.save(payload, f))


def load_checkpoint(checkpoint: EpochCheckpoint) -> dict[str, Any] | None:
    """The saved state if the path holds a readable checkpoint of this trial, else None.

    Read with ``weights_only=True``: a checkpoint holds tensors and plain containers only,
    so a crafted file in a shared run directory cannot run code.
    """
    try:
        state = torch.load(checkpoint.path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # truncated, corrupt, or not a torch file: start afresh
        return None
    if (not isinstance(state, dict) or state.get("format") != FORMAT
            or state.get("identity") != checkpoint.identity):
        return None
    checkpoint.resumed_epochs = int(state["epoch"])
    checkpoint.resumed_s = float(state["elapsed_s"])
    return state


def remove_checkpoint(path: Path | str) -> None:
    """Delete a trial's checkpoint and any temporary file a killed write left beside it."""
    path = Path(path)
    path.unlink(missing_ok=True)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        leftover.unlink(missing_ok=True)


def rng_state(device: torch.device, generator: torch.Generator) -> dict[str, Any]:
    """Every random generator a trial draws from, as tensors."""
    state = {"generator": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], device: torch.device,
                  generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` saved."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state_all(state["torch_cuda"])
