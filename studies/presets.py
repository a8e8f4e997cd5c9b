"""Presets: the paper's experiments as named plans (design ids + default fidelity and seeds).

``python studies/run.py --preset fig3`` runs one. Each preset is a fixed list of design ids,
so a preset means the same trials on every machine and in every version of the enumeration;
``tests/test_studies_cli.py`` checks that every id parses and that the fig2/fig3/table lists
are what their rules (below) give under ``FIG_BUDGET`` and ``TABLE_BUDGET``.

Budgets. The plain8 presets run at the ``cpu-v2`` fidelity (``cpu``'s training, measured
on all test images; the committed exports ran at ``cpu``) on a 2-core machine, where a
trial's cost grows with the width and the number of group convolutions (the nets are
memory-bound: every group convolution carries a BatchNorm pass over C channels).
``FIG_BUDGET`` = 40,000 parameters (10 classes) is about Table 2's smallest budget (4,700
weights per block: Xception C=64, IGCV2 C=144) and keeps every fig3 design at width <= 160;
fig2 is the paper's own 15 bars at the paper's widths (about 4,700 block weights each,
36,000-50,000 parameters in the whole net). At 3 seeds fig2 is 45 trials and fig3 18;
docs/reproduction.md has the wall times measured here. The res-net presets default to the
``proxy`` fidelity (a GPU); run them on a CPU with ``--fidelity cpu-v2`` at your own cost.

Example:
    >>> p = get_preset("table2")
    >>> p.design_ids[:2], p.fidelity, p.seeds
    (('plain8-c64-k1.64', 'plain8-c144-k1.12.12'), 'cpu-v2', (0, 1, 2))
"""

from __future__ import annotations

from dataclasses import dataclass

from search_space.paper import FIG2_BARS, fig2_design_id

FIG_BUDGET = 40_000  # parameters of the whole plain8 net for 10 classes; see the docstring
FIG3_L = (2, 3, 4, 5, 6, 7)  # wide enough that ln(C) (about 5 here) lies inside
TABLE_BUDGET = 10_000  # the benchmark table's space: enumerate_designs(10_000, num_classes=10)
TABLE40K_BUDGET = FIG_BUDGET  # table 1.1: the paper's regime (Table 2's smallest budget)
#: fig3q's block weights (eq. 7, one block): Table 2's IGCV2 C144 (9*144 + 2*12*144); Figure
#: 2's bars, the paper's designs at "almost the same number of parameters", have 4,488-4,860.
FIG3Q_BLOCK_BUDGET = 4_752


@dataclass(frozen=True)
class Preset:
    """A named plan: which designs, at which fidelity, with which seeds.

    Attributes:
        name: what ``--preset`` takes.
        summary: one line: the paper's experiment this reproduces.
        design_ids: canonical ``search_space`` ids, in the order they are scheduled.
        fidelity: default ``--fidelity``.
        seeds: default ``--seeds``.
        dataset: default ``--dataset``; None = the command line's default (cifar10).
    """

    name: str
    summary: str
    design_ids: tuple[str, ...]
    fidelity: str = "cpu-v2"  # the CPU rung of issue 23: all test images, 7,200 to select
    seeds: tuple[int, ...] = (0, 1, 2)
    dataset: str | None = None

    @property
    def net(self) -> str:
        """The net of the designs ('plain8', 'res20', ..., or 'mixed')."""
        nets = {d.split("-")[0] for d in self.design_ids}
        return nets.pop() if len(nets) == 1 else "mixed"


def _ids(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _igcv2_star(width: int, depth: int = 20) -> str:
    """IGCV2*(Cx) of Table 1: K = 8, L* = ceil(log_8 x) + 1, a 64-channel stem."""
    levels, reach = 1, 8
    while reach < width:  # ceil(log_8 width) without floating-point edge cases
        levels, reach = levels + 1, reach * 8
    stem = "" if width == 64 else "-stem64"
    return f"res{depth}-c{width}-k1" + ".8" * levels + stem


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        name="smoke",
        summary="3 tiny designs (IGCV2, Xception, IGCV1) at the smoke fidelity on synthetic data",
        design_ids=_ids("plain8-c16-k1.4.4 plain8-c16-k1.g1 plain8-c16-k2.g2"),
        fidelity="smoke", seeds=(0,), dataset="synthetic",
    ),
    Preset(
        # The paper's own 15 bars (search_space.paper.FIG2_BARS): channel-wise 3x3, then L
        # group 1x1 convolutions of branch size K, at the paper's widths. In Figure 2, L
        # counts the group 1x1 convolutions only (Figure 3 and our ids count the 3x3 too).
        name="fig2",
        summary="Figure 2: the paper's 15 (L, K, C) bars, L = 2, 3, 4 group 1x1 convs",
        design_ids=tuple(fig2_design_id(*bar) for bar in FIG2_BARS),
    ),
    Preset(
        # Rule: for each L in FIG3_L, among uniform-K designs at the largest width within
        # FIG_BUDGET that use at least 90% of it, those with a dense composed kernel (the
        # paper's "(nearly) complementary"), and of them the one whose K^(L-1) is closest to
        # its width C (balance condition, eq. 11: |log(K^(L-1) / C)| smallest). L=2 is then
        # Xception (K = C); the widths (72, 144, 156, 160, 156, 138) are concave in L.
        name="fig3",
        summary="Figure 3: L varied under the balance condition at about equal params",
        design_ids=_ids("""
            plain8-c72-k1.g1 plain8-c144-k1.12.12 plain8-c156-k1.6.6.6
            plain8-c160-k1.4.4.4.4 plain8-c156-k1.3.3.3.3.3 plain8-c138-k1.3.3.3.3.3.3
        """),
    ),
    Preset(
        # Figure 3 as the paper holds it: equal *block* weights (fig3 holds the whole net's
        # parameters equal, so its block weights vary 3,726-5,832). Rule: for each L, the
        # widest nearly complementary design (dense, <= 2 paths per channel pair: the
        # caption's condition, as analysis.claims.figure3 requires) with one K and block weights
        # <= FIG3Q_BLOCK_BUDGET, the most balanced on ties. L = 2 is Table 2's Xception
        # C64, L = 3 and 4 are Figure 2's red bars (C144 K12, C174 K6); at L = 5 Figure 2's
        # red bar is C184 and the rule's C188 (the paper's 184 would make the widths
        # non-concave by 4 channels); L = 6 is C198 K3. No nearly complementary L >= 7
        # design comes near the budget (the widest: C64 K2, 1,344 weights). Block weights
        # 4,672-4,752; widths 64/144/174/188/198, concave in L, the widest at L = 6.
        name="fig3q",
        summary="Figure 3 at equal block weights (~4,700, Figure 2's red bars): L = 2..6",
        design_ids=_ids("""
            plain8-c64-k1.64 plain8-c144-k1.12.12 plain8-c174-k1.6.6.6
            plain8-c188-k1.4.4.4.4 plain8-c198-k1.3.3.3.3.3
        """),
    ),
    Preset(
        # Rule: enumerate_designs(TABLE_BUDGET, "plain8", num_classes=10), every design of
        # the default space (L = 2..6, uniform K, fixed branch counts, strict factorisations)
        # in enumeration order: 51 designs, widths 12-76. The smallest budget with at least
        # 30 designs whose trials stay cheap here (~15-30 s at the cpu fidelity): 3 seeds is
        # 153 trials, about 40 min on 2 cores. The grid is seed-major, so a sweep stopped
        # part-way has covered the whole table at its first seed.
        name="table",
        summary="The benchmark table: every plain8 design under 10k params (51), for replay",
        design_ids=_ids("""
            plain8-c24-k1.24 plain8-c32-k1.16 plain8-c56-k1.g8 plain8-c48-k1.12
            plain8-c60-k1.6 plain8-c56-k1.8 plain8-c40-k1.g2 plain8-c68-k1.4 plain8-c72-k1.3
            plain8-c76-k1.2 plain8-c32-k1.32 plain8-c16-k1.16.16 plain8-c32-k1.g4.g4
            plain8-c36-k1.6.6 plain8-c28-k1.g2.g2 plain8-c40-k1.8.8 plain8-c45-k1.9.5
            plain8-c48-k1.6.6 plain8-c64-k1.2.2 plain8-c36-k1.12.12 plain8-c60-k1.3.3
            plain8-c56-k1.4.4 plain8-c27-k1.3.3.3 plain8-c16-k1.16.16.16
            plain8-c24-k1.12.12.12 plain8-c36-k1.6.6.6 plain8-c32-k1.8.8.8
            plain8-c44-k1.4.4.4 plain8-c56-k1.2.2.2 plain8-c48-k1.4.4.3 plain8-c51-k1.3.3.3
            plain8-c16-k1.2.2.2.2 plain8-c16-k1.g4.g4.g4.g4 plain8-c12-k1.12.12.12.12
            plain8-c20-k1.g2.g2.g2.g2 plain8-c24-k1.8.8.8.8 plain8-c16-k1.16.16.16.16
            plain8-c40-k1.5.2.2.2 plain8-c30-k1.6.6.6.6 plain8-c42-k1.3.3.3.3
            plain8-c48-k1.2.2.2.2 plain8-c40-k1.4.4.4.4 plain8-c16-k1.g4.g4.g4.g4.g4
            plain8-c12-k1.12.12.12.12.12 plain8-c32-k1.2.2.2.2.2 plain8-c24-k1.6.6.6.6.6
            plain8-c32-k1.4.4.4.4.4 plain8-c20-k1.g2.g2.g2.g2.g2 plain8-c24-k1.8.8.8.8.8
            plain8-c44-k1.2.2.2.2.2 plain8-c39-k1.3.3.3.3.3
        """),
    ),
    Preset(
        # Rule: enumerate_designs(TABLE40K_BUDGET, "plain8", num_classes=10) in enumeration
        # order: 68 designs, widths 24-310, holding Table 2's smallest pair (Xception C=64,
        # IGCV2 C=144) and the fig3 designs of L = 2..6. Release 1.1 of the benchmark table.
        name="table40k",
        summary="Table 1.1: every plain8 design under 40k params (68), the paper's regime",
        design_ids=_ids("""
            plain8-c64-k1.64 plain8-c176-k1.16 plain8-c144-k1.24 plain8-c160-k1.g8
            plain8-c204-k1.12 plain8-c96-k1.g2 plain8-c258-k1.6 plain8-c280-k1.4
            plain8-c72-k1.g1 plain8-c128-k1.32 plain8-c240-k1.8 plain8-c294-k1.3
            plain8-c310-k1.2 plain8-c64-k1.g8.g8 plain8-c80-k1.g4.g4
            plain8-c72-k1.24.24 plain8-c64-k1.32.32 plain8-c112-k1.16.16
            plain8-c68-k1.g2.g2 plain8-c144-k1.12.12 plain8-c176-k1.8.8
            plain8-c240-k1.3.3 plain8-c224-k1.4.4 plain8-c260-k1.2.2
            plain8-c198-k1.6.6 plain8-c64-k1.g8.g8.g8 plain8-c32-k1.32.32.32
            plain8-c64-k1.g4.g4.g4 plain8-c48-k1.24.24.24 plain8-c125-k1.5.5.5
            plain8-c80-k1.16.16.16 plain8-c56-k1.g2.g2.g2 plain8-c108-k1.12.12.12
            plain8-c136-k1.8.8.8 plain8-c156-k1.6.6.6 plain8-c160-k1.8.5.4
            plain8-c184-k1.4.4.4 plain8-c224-k1.2.2.2 plain8-c204-k1.3.3.3
            plain8-c160-k1.10.4.4 plain8-c81-k1.3.3.3.3 plain8-c64-k1.g8.g8.g8.g8
            plain8-c32-k1.32.32.32.32 plain8-c64-k1.16.16.16.16
            plain8-c48-k1.24.24.24.24 plain8-c84-k1.12.12.12.12 plain8-c112-k1.8.8.8.8
            plain8-c132-k1.6.6.6.6 plain8-c162-k1.6.3.3.3 plain8-c198-k1.2.2.2.2
            plain8-c177-k1.3.3.3.3 plain8-c160-k1.4.4.4.4 plain8-c32-k1.2.2.2.2.2
            plain8-c24-k1.24.24.24.24.24 plain8-c48-k1.g4.g4.g4.g4.g4
            plain8-c64-k1.g8.g8.g8.g8.g8 plain8-c48-k1.16.16.16.16.16
            plain8-c144-k1.4.3.3.2.2 plain8-c32-k1.32.32.32.32.32
            plain8-c44-k1.g2.g2.g2.g2.g2 plain8-c144-k1.6.3.2.2.2
            plain8-c72-k1.12.12.12.12.12 plain8-c144-k1.9.2.2.2.2
            plain8-c96-k1.8.8.8.8.8 plain8-c114-k1.6.6.6.6.6 plain8-c176-k1.2.2.2.2.2
            plain8-c156-k1.3.3.3.3.3 plain8-c140-k1.4.4.4.4.4
        """),
    ),
    Preset(
        name="fig4",
        summary="Figure 4: IGCV2*(Cx) wider (res20, x = 112..256) and deeper (C64, D = 38..98)",
        design_ids=tuple(_igcv2_star(w) for w in (112, 136, 160, 192, 256))
        + tuple(_igcv2_star(64, depth) for depth in (38, 50, 62, 74, 98)),
        fidelity="proxy",
    ),
    Preset(
        name="table2",
        summary="Table 2: Xception vs IGCV2 (L=3) on plain8 at about 4.7k/10k/17k block weights",
        design_ids=_ids("""
            plain8-c64-k1.64 plain8-c144-k1.12.12 plain8-c96-k1.96 plain8-c256-k1.16.16
            plain8-c128-k1.128 plain8-c361-k1.19.19
        """),
    ),
    Preset(
        name="table3",
        summary="Table 3: res20 Xception vs IGCV1 vs IGCV2* at about 0.4M/0.6M/0.8M params",
        design_ids=_ids("""
            res20-c58-k1.g1 res20-c96-k2.g2
            res20-c71-k1.g1 res20-c126-k2.g2
            res20-c83-k1.g1 res20-c150-k2.g2
        """) + tuple(_igcv2_star(w) for w in (216, 304, 416)),
        fidelity="proxy",
    ),
    Preset(
        name="table4",
        summary="Table 4: Xception C35 vs IGCV2 C64 (K 8/16/32 per stage) at depths 8, 20, 26",
        design_ids=tuple(d for depth in (8, 20, 26) for d in (
            f"res{depth}-c35-k1.g1", f"res{depth}-c64-k1.8.8/1.16.16/1.32.32")),
        fidelity="proxy",
    ),
    Preset(
        name="table5",
        summary="Table 5: IGCV1 vs IGCV2 I (group 3x3) vs IGCV2 II (channel-wise) on plain8",
        design_ids=_ids("""
            plain8-c64-k2.g2 plain8-c98-k2.7.7 plain8-c100-k1.10.10
            plain8-c96-k2.g2 plain8-c162-k2.9.9 plain8-c169-k1.13.13
            plain8-c128-k2.g2 plain8-c242-k2.11.11 plain8-c256-k1.16.16
        """),
    ),
    Preset(
        name="table6",
        summary="Table 6: IGCV1 C48 vs IGCV2 C80 (K 10/16/20 per stage) at depths 8, 20, 26",
        design_ids=tuple(d for depth in (8, 20, 26) for d in (
            f"res{depth}-c48-k2.g2", f"res{depth}-c80-k1.10.10/1.16.16/1.20.20")),
        fidelity="proxy",
    ),
)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ValueError: ``name`` is not a preset; the message lists the accepted names.
    """
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown preset {name!r}; accepted: {', '.join(PRESETS)}") from None
