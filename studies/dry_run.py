"""What a sweep would evaluate, with exact costs and estimated times, training nothing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TextIO

import search_space as ss
from studies.estimate import fmt_seconds

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
    designs: Iterable[ss.Design | str], out: TextIO, fmt: str = "table",
    num_classes: int = 100, seconds: Mapping[str, float] | None = None,
) -> int:
    """Write one line per design (``json``: a describe() object; ``table``: aligned columns).

    ``seconds``: the estimated seconds of one trial per design id, shown as a last column
    ``est`` (``json``: ``est_seconds``).
    """
    rows = [ss.describe(ss.parse(d) if isinstance(d, str) else d, num_classes)
            for d in designs]
    if fmt == "json":
        for r in rows:
            extra = {"est_seconds": round(seconds[r["id"]], 1)} if seconds else {}
            out.write(json.dumps({**r, **extra}) + "\n")
        return len(rows)
    cells = [[f.format(r[k]) for k, f in TABLE_COLUMNS] for r in rows]
    heads = [k for k, _ in TABLE_COLUMNS]
    if seconds:
        heads.append("est")
        for c, r in zip(cells, rows, strict=True):
            c.append(fmt_seconds(seconds[r["id"]]))
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    out.write("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip() + "\n")
    for c in cells:
        out.write("  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip() + "\n")
    return len(rows)
