"""What a sweep would evaluate, with exact costs, without training anything."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TextIO

import search_space as ss

TABLE_COLUMNS = (
    ("id", "{}"),
    ("family", "{}"),
    ("L", "{}"),
    ("width", "{}"),
    ("params", "{:,}"),
    ("flops", "{:,}"),
    ("complementarity", "{}"),
    ("density", "{:.3f}"),
    ("max_paths", "{}"),
    ("balance_deviation", "{:.2f}"),
    ("non_sparsity", "{:.4f}"),
)


def write_dry_run(
    designs: Iterable[ss.Design], out: TextIO, fmt: str = "table", num_classes: int = 100
) -> int:
    """Write one line per design (``json``: a describe() object; ``table``: aligned columns)."""
    rows = [ss.describe(d, num_classes) for d in designs]
    if fmt == "json":
        for r in rows:
            out.write(json.dumps(r) + "\n")
        return len(rows)
    cells = [[f.format(r[k]) for k, f in TABLE_COLUMNS] for r in rows]
    heads = [k for k, _ in TABLE_COLUMNS]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    out.write("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip() + "\n")
    for c in cells:
        out.write("  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip() + "\n")
    return len(rows)
