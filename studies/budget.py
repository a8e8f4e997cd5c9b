"""Parsing a parameter budget as users write it: ``0.65M``, ``650k``, ``650000``."""

from __future__ import annotations

import re

_UNITS = {"": 1, "k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000}


def parse_budget(text: str) -> int:
    """``"0.65M"`` -> 650000.

    Raises:
        ValueError: naming the value and the accepted forms, for anything else, zero or
            a negative number.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)\s*", str(text))
    if not m:
        raise ValueError(
            f"budget {text!r} is not a parameter count; accepted: 650000, 650k, 0.65M"
        )
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if value < 1:
        raise ValueError(f"budget {text!r} must be a positive number of parameters (>= 1)")
    if value != int(value):
        raise ValueError(f"budget {text!r} is not a whole number of parameters")
    return int(value)
