"""Eq. 14 as a fact of the design space: a scan over block budgets, reported once.

Eq. 14 ("Q is the minimum if L = log(SC)") is arithmetic over designs, with no accuracy in
it: at fixed width C, the block weights Q of eq. 7 are smallest at that L. For the
separated form (a channel-wise 3x3, then L - 1 group 1x1 convolutions; Sec. 3.2, "the
balance condition becomes K2 = ... = KL = C^(1/(L-1)), for which the amount of parameters
is the smallest") the 1x1 part C * sum K is smallest at L - 1 = ln C. So at a block budget
the widest design should have L near 1 + ln C. Whether it does depends on which designs
count, and the scan reports both readings at each budget:

- *dense*: one branch size K for every 1x1 convolution and a dense composed kernel
  (figure3.widest_by_L: measured on the modules' permutations; a kernel may reach a pair
  by several paths);
- *complementary*: the paper's complementary condition with the balance condition, one
  path per pair: K^(L-1) = C exactly (eq. 6 with equal K).

At each budget the widest design of each kind (ties in C: the smaller Q, which is what
eq. 14 minimises, then the smaller L) is compared with 1 + ln C: "holds" when its L is
within one of it. This is not a verdict of any sweep (no sweep's records enter) and is not
counted in any family of verdicts.

    python -m analysis.claims.eq14        # the markdown table of docs/reproduction.md
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import search_space as ss
from analysis.claims.figure3 import EQ14_MARGIN, MAX_L, widest_by_L
from search_space.theory import S3x3, optimal_L_separated

#: 31 block budgets from 1,000 to 20,000 weights in equal ratios (about 10% apart), and
#: Table 2's six block weight counts (Xception C64/96/128, IGCV2 C144/256/361).
SCAN = tuple(int(round(q)) for q in np.geomspace(1_000, 20_000, 31))
TABLE2_BUDGETS = (4_672, 4_752, 10_080, 10_496, 16_967, 17_536)


@dataclass(frozen=True)
class Widest:
    """The widest design of one kind at a budget, and eq. 14's L for its width."""

    L: int
    C: int
    K: int
    Q: int

    @property
    def target(self) -> float:
        return optimal_L_separated(self.C)

    @property
    def gap(self) -> float:
        return self.L - self.target

    @property
    def holds(self) -> bool:
        return abs(self.gap) <= EQ14_MARGIN


def _q(C: int, L: int, K: int) -> int:
    return C * (S3x3 + (L - 1) * K)  # eq. 7, separated form (K_1 = 1 channel-wise)


def widest_dense(q_budget: int) -> Widest:
    """The widest dense uniform-K separated design within ``q_budget`` block weights."""
    by_L = widest_by_L(q_budget)
    found = [Widest(L, d.width, d.K[0][-1], _q(d.width, L, d.K[0][-1])) for L, d in by_L.items()]
    return max(found, key=lambda w: (w.C, -w.Q, -w.L))


def widest_complementary(q_budget: int, max_L: int = MAX_L) -> Widest:
    """The widest separated design with K^(L-1) = C (complementary and balanced: one path
    per channel pair) within ``q_budget`` block weights; L = 2 is Xception (K = C)."""
    found = []
    for L in range(2, max_L + 1):
        K = 1
        while _q((K + 1) ** (L - 1), L, K + 1) <= q_budget:
            K += 1
        if K >= 2:
            found.append(Widest(L, K ** (L - 1), K, _q(K ** (L - 1), L, K)))
    return max(found, key=lambda w: (w.C, -w.Q, -w.L))


def scan(budgets: Sequence[int] = SCAN + TABLE2_BUDGETS) -> list[tuple[int, Widest, Widest]]:
    """(budget, widest dense, widest complementary) for each budget, sorted."""
    return [(q, widest_dense(q), widest_complementary(q)) for q in sorted(set(budgets))]


def _cell(w: Widest) -> str:
    return (f"L={w.L}, C={w.C}, K={w.K} (Q {w.Q:,}) | {w.target:.2f} | {w.gap:+.2f} "
            f"{'holds' if w.holds else '**fails**'}")


def table(budgets: Sequence[int] = SCAN + TABLE2_BUDGETS) -> str:
    """The scan as markdown, with a count of where each reading holds on the 31-budget grid."""
    rows = scan(budgets)
    grid = [r for r in rows if r[0] in SCAN]
    dense = sum(r[1].holds for r in grid)
    comp = sum(r[2].holds for r in grid)
    exact = [sum(round(r[i].target) == r[i].L for r in grid) for i in (1, 2)]
    lines = [
        f"On the {len(grid)} budgets of the grid (1,000-20,000 block weights, equal ratios) "
        f"eq. 14 holds (L within {EQ14_MARGIN:g} of 1 + ln C) for the widest dense design at "
        f"{dense} and for the widest complementary one (K^(L-1) = C) at {comp}; L equals "
        f"1 + ln C rounded at {exact[0]} and {exact[1]}; the two widest designs differ at "
        f"{sum(r[1].C != r[2].C for r in grid)}. Table 2's block weights are marked *.",
        "",
        "| block budget Q | widest dense design | 1 + ln C | L - (1 + ln C) | widest "
        "complementary design | 1 + ln C | L - (1 + ln C) |",
        "| ---: | --- | ---: | --- | --- | ---: | --- |",
    ]
    for q, d, c in rows:
        star = "*" if q in TABLE2_BUDGETS else ""
        lines.append(f"| {q:,}{star} | {_cell(d)} | {_cell(c)} |")
    return "\n".join(lines)


def design_check(design_id: str) -> bool:
    """True when ``design_id`` is complementary and balanced as the scan counts it
    (separated form, one K, K^(L-1) = C). For tests and readers."""
    d = ss.parse(design_id)
    ks = set(d.K[0][1:])
    return d.K[0][0] == 1 and len(ks) == 1 and math.prod(d.K[0][1:]) == d.width


if __name__ == "__main__":
    print(table())
