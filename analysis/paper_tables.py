"""Tables 2-6 as tests, on the paper's own designs (search_space.paper.PAPER_NETS).

Each table compares block kinds row by row at about equal parameters (a budget, a width or a
depth): a *group*. A claim's effect is the mean over the groups present of the claimed arm
minus the other (for Table 5, minus the better of the other two). Both units are reported:
seeds within designs (how sure we are about these designs at this fidelity) and, with two
or more groups, the groups themselves (whether it holds across budgets or depths).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from search_space.paper import PAPER_NETS

from .contrasts import over_groups, replicated, statistic
from .selection import Slice
from .verdicts import BUDGETS, DEPTHS, WIDTHS, Verdict, make_verdict, untested


@dataclass(frozen=True)
class Comparison:
    """Claimed arm (label prefix) against one or more others within each group of a table."""

    claim: str
    table: str
    group_size: int  # consecutive PAPER_NETS rows of the table that form one group
    arm: str
    others: tuple[str, ...]
    unit: str  # what a group is: the unit of the across-groups estimate


COMPARISONS = (
    Comparison("table2_igcv2_vs_xception", "2", 2, "IGCV2", ("Xception",), BUDGETS),
    Comparison("table3_igcv2_vs_xception", "3", 3, "IGCV2*", ("Xception",), WIDTHS),
    Comparison("table3_igcv2_vs_igcv1", "3", 3, "IGCV2*", ("IGCV1",), WIDTHS),
    Comparison("table4_igcv2_vs_xception", "4", 2, "IGCV2", ("Xception",), DEPTHS),
    Comparison("table5_igcv2ii_best", "5", 3, "IGCV2 II", ("IGCV1", "IGCV2 I "), BUDGETS),
    Comparison("table6_igcv2_vs_igcv1", "6", 2, "IGCV2", ("IGCV1",), DEPTHS),
)
CLAIMS = tuple(c.claim for c in COMPARISONS)


def groups(table: str, size: int) -> list[list[tuple[str, str]]]:
    """(label, design id) of the paper's rows of ``table``, in groups of ``size``.

    >>> [[lab for lab, _ in g] for g in groups("2", 2)][0]
    ['Xception C64', 'IGCV2 C144']
    """
    rows = [(n.label, n.design_id) for n in PAPER_NETS if n.table == table]
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def _pick(group: list[tuple[str, str]], prefix: str) -> str | None:
    hits = [i for lab, i in group if (lab + " ").startswith(prefix)]
    return hits[0] if len(hits) == 1 else None


def paper_tables(s: Slice) -> list[Verdict]:
    """Every comparison of Tables 2-6 that the slice holds designs for."""
    rows = replicated(s.designs)
    have = set(rows["design_id"])
    return [v for c in COMPARISONS for v in compare(s, rows, have, c)]


def compare(s: Slice, rows: pd.DataFrame, have: set[str], c: Comparison) -> list[Verdict]:
    """One comparison: pooled over seeds, and over groups when there are two or more."""
    found = []
    for g in groups(c.table, c.group_size):
        ids = [_pick(g, c.arm)] + [_pick(g, o) for o in c.others]
        if all(i in have for i in ids):
            found.append((g, ids))
    if not found:
        return [untested(c.claim, s.fidelity, s.dataset,
                         f"no group of Table {c.table} with every design and >= 2 seeds")]
    ids = [i for _g, group_ids in found for i in group_ids]
    k = 1 + len(c.others)

    def fn(m: np.ndarray) -> np.ndarray:  # mean over groups of arm - max(others)
        per = m.reshape(m.shape[0], len(found), k)
        return (per[:, :, 0] - per[:, :, 1:].max(axis=2)).mean(axis=1)

    est = statistic(rows, ids, fn, n_boot=s.opts.n_boot, rng=s.opts.rng())
    means = rows.set_index("design_id")["mean"]
    diffs = [means[gi[0]] - max(means[i] for i in gi[1:]) for _g, gi in found]
    listed = "; ".join(f"{gi[0]} {means[gi[0]]:.4f} vs " + " / ".join(
        f"{i} {means[i]:.4f}" for i in gi[1:]) for _g, gi in found)
    detail = (f"Table {c.table}, {len(found)} of {len(groups(c.table, c.group_size))} groups: "
              f"{listed}; differences {'/'.join(f'{d:+.4f}' for d in diffs)} ({s.metric})")
    out = [make_verdict(c.claim, est, s.fidelity, s.dataset, detail)]
    if len(found) >= 2:
        out.append(make_verdict(c.claim, over_groups(diffs, c.unit), s.fidelity, s.dataset,
                                detail))
    return out
