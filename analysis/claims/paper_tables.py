"""Tables 2-6 as tests, on the paper's own designs (search_space.paper.PAPER_NETS).

Each table compares block kinds row by row at about equal parameters (a budget, a width or a
depth): a *group*. The paper states each comparison at every group ("consistently perform
better", "under various widths", at each depth), so a claim holds only if it holds in every
group present: an intersection-union test (IUT). Its effect is the smallest group
difference (claimed arm minus the other; for Table 5, minus the better of the other two),
each group's interval over seeds within its designs; 'supported' needs every group's
interval above zero at the level (the IUT needs no adjustment across groups: its p-value is
the largest group p), 'not supported' some group's interval below zero at the
Bonferroni level over the groups (one refuting group suffices, but any could be it), and
'equivalent' the smallest difference within the SESOI (at its weakest group the claimed
arm is no better by a point or more).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats
from analysis.claims.contrasts import replicated, statistic
from analysis.claims.selection import Slice
from analysis.claims.verdicts import (
    BUDGETS,
    DEPTHS,
    SEEDS,
    SESOI,
    WIDTHS,
    Estimate,
    Verdict,
    make_verdict,
    untested,
)
from search_space.paper import PAPER_NETS


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
    """One comparison, every group present (intersection-union over the groups)."""
    found = []
    for g in groups(c.table, c.group_size):
        ids = [_pick(g, c.arm)] + [_pick(g, o) for o in c.others]
        if all(i in have for i in ids):
            found.append(ids)
    if not found:
        return [untested(c.claim, s.fidelity, s.dataset,
                         f"no group of Table {c.table} with every design and >= 2 seeds")]

    def fn(m: np.ndarray) -> np.ndarray:  # the claimed arm minus the best of the others
        return m[:, 0] - m[:, 1:].max(axis=1)

    per = [statistic(rows, ids, fn, n_boot=s.opts.n_boot, rng=s.opts.rng()) for ids in found]
    means = rows.set_index("design_id")["mean"]
    p = [stats.p_from_interval(e.interval) for e in per]
    listed = "; ".join(f"{gi[0]} {means[gi[0]]:.4f} vs " + " / ".join(
        f"{i} {means[i]:.4f}" for i in gi[1:]) + f" ({e.effect:+.4f}, p {pv:.2g})"
        for gi, e, pv in zip(found, per, p, strict=True))
    detail = (f"Table {c.table}, {len(found)} of {len(groups(c.table, c.group_size))} "
              f"{c.unit} ({s.metric}; p two-sided per group): {listed}; intersection-union "
              f"over the {c.unit}: the smallest difference; it passes when every group does "
              f"(p = the largest group p, {max(p):.2g}) and fails when one group lies below "
              f"zero at the Bonferroni level over the {len(found)}")
    return [make_verdict(c.claim, every_group(per), s.fidelity, s.dataset, detail,
                         sesoi=SESOI)]


def every_group(per: list[Estimate]) -> Estimate:
    """The intersection-union estimate over groups: the smallest group effect, its interval
    at ``level`` (lower end: the smallest lower end at ``level``; upper end: the smallest
    upper end at the Bonferroni level over the k groups), so the interval excludes zero
    from above only when every group's does (IUT) and from below when some group's does at
    level 1 - (1 - level) / k."""
    k = len(per)
    weakest = min(per, key=lambda e: e.effect)

    def interval(level: float) -> tuple[float, float]:
        lows = [e.interval(level)[0] for e in per]
        highs = [e.interval(1.0 - (1.0 - level) / k)[1] for e in per]
        return min(lows), min(highs)

    # se and dof: the noisiest group's, which the power analysis asks every group to beat
    return Estimate(weakest.effect, interval, sum(e.n for e in per), SEEDS,
                    se=max(e.se for e in per), dof=min(e.dof for e in per),
                    seeds=min(e.seeds for e in per), paired=all(e.paired for e in per),
                    groups=k)
