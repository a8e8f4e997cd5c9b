"""``build``: a design's torch module, with the block implementation chosen by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .design import Design
from .plan import net_plan

if TYPE_CHECKING:
    from torch import nn

#: Block implementations: name -> "module:attribute" of an nn.Module class taking a Block.
IMPLS = {"reference": "search_space.modules:ReferenceBlock", "fast": "search_space.fast:FastBlock",
         "fused": "search_space.fast:FusedBlock", "grouped": "search_space.fast:GroupedBlock"}
DEFAULT_IMPL = "fast"  # measured: benchmarks/speed.py, docs/performance.md


def build(
    d: Design,
    num_classes: int | None = None,
    impl: str | None = None,
    input_size: int | None = None,
) -> nn.Module:
    """The torch module of a design; ``sum(p.numel()) == describe(d)["params"]``.

    Args:
        d: the design (or its id).
        num_classes: classifier outputs (default 100 for CIFAR nets, 1000 for ImageNet nets).
        impl: block implementation, one of ``IMPLS`` (default: the fastest measured,
            ``DEFAULT_IMPL``); ``"reference"`` is ``nn.Conv2d(groups)`` plus channel shuffle.
        input_size: 32 (CIFAR) or 64 (Tiny ImageNet, stride-2 stem) for CIFAR nets.
    """
    import importlib

    from . import modules

    if isinstance(d, str):
        from .design import parse

        d = parse(d)
    name = impl or DEFAULT_IMPL
    if name not in IMPLS:
        raise ValueError(f"unknown impl {name!r}; accepted: {', '.join(sorted(IMPLS))}")
    mod, attr = IMPLS[name].split(":")
    block_cls = getattr(importlib.import_module(mod), attr)
    return modules.Net(net_plan(d, num_classes, input_size), block_cls)
