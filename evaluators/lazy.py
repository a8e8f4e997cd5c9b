"""Package attributes that load their module on first use (PEP 562).

``evaluators`` and ``analysis`` export names whose modules import torch or pandas; a package
that hands them out through :func:`lazy_exports` stays cheap to import, and the first use of
a name imports its module once.

Example:
    >>> import evaluators
    >>> evaluators.measure_latency.__module__
    'evaluators.latency'
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``exports`` map each lazy name
    to the submodule defining it (e.g. ``{"load_results": "load"}``)."""

    def getattr_(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip this hook
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return getattr_, dir_
