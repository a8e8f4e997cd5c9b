"""The result record: one per (design, fidelity, dataset, seed); schema in docs/internals.md.

Example:
    >>> r = Result.from_dict({"id": "x", "design_id": "x", "fidelity": "smoke",
    ...     "fidelity_config": {}, "dataset": "synthetic", "seed": 0, "status": "ok",
    ...     "reason": None, "curve": [], "val_acc": 0.5, "test_acc": 0.5, "wall_s": 1.0,
    ...     "latency_b1_ms": None, "latency_b64_ms": None, "device": "cpu",
    ...     "torch_version": "2", "commit": "unknown", "created": "2025-01-01T00:00:00+00:00"})
    >>> r.design["id"], Result.from_dict(r.to_dict()) == r
    ('x', True)
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ok", "failed")


@dataclass(frozen=True)
class Result:
    """What one evaluation produced. ``to_dict()`` flattens ``design`` into the top level."""

    design_id: str  # same as design["id"]
    fidelity: str  # the fidelity's name
    fidelity_config: dict[str, Any]  # Fidelity.to_dict() of the config that ran
    dataset: str  # synthetic, cifar10, cifar100, tinyimagenet
    seed: int
    status: str  # "ok" or "failed"
    reason: str | None  # for "failed": "diverged: ...", "out of memory: ...", "error: ..."
    curve: tuple[dict[str, Any], ...]  # per epoch: epoch, train_loss, train_acc, val_acc, seconds
    val_acc: float | None  # final, in [0, 1]
    test_acc: float | None  # final, in [0, 1]
    wall_s: float  # the whole evaluation, data loading included
    latency_b1_ms: float | None  # median forward latency on `device`, batch 1
    latency_b64_ms: float | None  # batch 64
    device: str  # "cpu", "cuda:NVIDIA H100 80GB HBM3", ...
    torch_version: str
    commit: str  # git commit of the code; "unknown" outside a git checkout
    created: str  # ISO-8601 UTC
    design: dict[str, Any] = field(default_factory=dict)  # search_space.describe() of the net

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r}; expected one of {STATUSES}")
        if (self.status == "failed") != (self.reason is not None):
            raise ValueError(f"status={self.status!r} with reason={self.reason!r}: a reason "
                             "is given exactly when the status is 'failed'")

    @property
    def ok(self) -> bool:
        """True when training finished."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the describe() keys, then the record's own keys."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "design"}
        clash = own.keys() & self.design.keys()
        if clash:
            raise ValueError(f"describe() keys {sorted(clash)} clash with record keys")
        own["curve"] = list(self.curve)
        return copy.deepcopy({**self.design, **own})

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Result:
        """Inverse of :meth:`to_dict`: keys not of the record itself are describe() keys."""
        names = {f.name for f in dataclasses.fields(cls)} - {"design"}
        missing = names - record.keys()
        if missing:
            raise ValueError(f"record lacks keys {sorted(missing)}")
        own = {k: copy.deepcopy(v) for k, v in record.items() if k in names}
        own["curve"] = tuple(own["curve"])
        design = {k: copy.deepcopy(v) for k, v in record.items() if k not in names}
        return cls(**own, design=design)
