"""Budgets as users write them: parameters (``0.65M``, ``650k``, ``650000``) and time
(``2h``, ``90m``)."""

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


_DURATION = re.compile(r"([0-9]*\.?[0-9]+)([dhms])")
_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(text: str, *, option: str = "duration") -> float:
    """Seconds of a duration as users write it: ``2h``, ``90m``, ``1h30m``, ``45s``, ``1.5h``.

    A bare number is seconds; ``0`` is allowed (no time).

    Example:
        >>> parse_duration("1h30m"), parse_duration("2.5h"), parse_duration("45")
        (5400.0, 9000.0, 45.0)

    Raises:
        ValueError: naming ``option``, the value and the accepted forms.
    """
    s = "".join(str(text).lower().split())  # "1h 30m" too
    try:
        return _nonnegative(float(s))
    except ValueError:
        pass
    parts = _DURATION.findall(s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"{option} {text!r} is not a duration; accepted: 2h, 90m, 1h30m, "
                         "45s, 1.5h, or seconds")
    return sum(float(n) * _SECONDS[u] for n, u in parts)


def _nonnegative(value: float) -> float:
    if not value >= 0:  # NaN too
        raise ValueError
    return value
