"""The paper's networks as designs, with the figures the paper prints for them.

``python -m search_space.paper`` prints the paper-vs-ours table of docs/accounting.md.
Per-block tables (2, 5) compare ``block_params``/``block_flops``; network tables (3, 4, 6)
compare ``paper_params``/``paper_flops`` (all blocks counted C->C, the paper's convention);
ImageNet tables (9, 11) compare the whole net (``params``/``flops``) at 1000 classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .costs import describe
from .design import parse


@dataclass(frozen=True)
class PaperNet:
    table: str
    label: str
    design_id: str
    params: float  # as printed in the paper
    flops: float  # multiply-adds, as printed
    note: str = ""


PAPER_NETS: tuple[PaperNet, ...] = (
    # Table 2: plain8, per block, CIFAR
    PaperNet("2", "Xception C64", "plain8-c64-k1.64", 4_700, 4.8e6),
    PaperNet("2", "IGCV2 C144", "plain8-c144-k1.12.12", 4_700, 4.8e6),
    PaperNet("2", "Xception C96", "plain8-c96-k1.96", 10_000, 1e7),
    PaperNet("2", "IGCV2 C256", "plain8-c256-k1.16.16", 10_000, 1e7),
    PaperNet("2", "Xception C128", "plain8-c128-k1.128", 17_000, 1.7e7),
    PaperNet("2", "IGCV2 C361", "plain8-c361-k1.19.19", 17_000, 1.7e7),
    # Table 5: plain8, per block
    PaperNet("5", "IGCV1 C64", "plain8-c64-k2.g2", 3_000, 3.2e6),
    PaperNet("5", "IGCV2 I C98", "plain8-c98-k2.7.7", 3_000, 3.2e6),
    PaperNet("5", "IGCV2 II C100", "plain8-c100-k1.10.10", 3_000, 3.2e6),
    PaperNet("5", "IGCV1 C96", "plain8-c96-k2.g2", 6_000, 6.1e6),
    PaperNet("5", "IGCV2 I C162", "plain8-c162-k2.9.9", 6_000, 6.1e6),
    PaperNet("5", "IGCV2 II C169", "plain8-c169-k1.13.13", 6_000, 6.1e6),
    PaperNet("5", "IGCV1 C128", "plain8-c128-k2.g2", 10_000, 1.1e7),
    PaperNet("5", "IGCV2 I C242", "plain8-c242-k2.11.11", 10_000, 1.1e7),
    PaperNet("5", "IGCV2 II C256", "plain8-c256-k1.16.16", 10_000, 1.1e7),
    # Table 3: res20
    PaperNet("3", "Xception C58", "res20-c58-k1.g1", 0.44e6, 0.67e8),
    PaperNet("3", "IGCV1 C96", "res20-c96-k2.g2", 0.40e6, 0.82e8),
    PaperNet("3", "IGCV2* C216", "res20-c216-k1.8.8.8-stem64", 0.32e6, 0.76e8, "L* = 4"),
    PaperNet("3", "Xception C71", "res20-c71-k1.g1", 0.66e6, 0.98e8),
    PaperNet("3", "IGCV1 C126", "res20-c126-k2.g2", 0.60e6, 1.28e8),
    PaperNet("3", "IGCV2* C304", "res20-c304-k1.8.8.8-stem64", 0.48e6, 1.12e8, "L* = 4"),
    PaperNet("3", "Xception C83", "res20-c83-k1.g1", 0.89e6, 1.31e8),
    PaperNet("3", "IGCV1 C150", "res20-c150-k2.g2", 0.79e6, 1.72e8),
    PaperNet("3", "IGCV2* C416", "res20-c416-k1.8.8.8-stem64", 0.65e6, 1.52e8, "L* = 4"),
    # Table 4: depth varied, Xception C35 against IGCV2 C64 (K per stage 8, 16, 32)
    PaperNet("4", "Xception C35 D8", "res8-c35-k1.g1", 0.056e6, 0.095e8),
    PaperNet("4", "IGCV2 C64 D8", "res8-c64-k1.8.8/1.16.16/1.32.32", 0.047e6, 0.095e8),
    PaperNet("4", "Xception C35 D20", "res20-c35-k1.g1", 0.168e6, 0.268e8),
    PaperNet("4", "IGCV2 C64 D20", "res20-c64-k1.8.8/1.16.16/1.32.32", 0.149e6, 0.262e8),
    PaperNet("4", "Xception C35 D26", "res26-c35-k1.g1", 0.223e6, 0.355e8),
    PaperNet("4", "IGCV2 C64 D26", "res26-c64-k1.8.8/1.16.16/1.32.32", 0.200e6, 0.346e8),
    # Table 6: depth varied, IGCV1 C48 against IGCV2 C80 (K per stage 10, 16, 20)
    PaperNet("6", "IGCV1 C48 D8", "res8-c48-k2.g2", 0.046e6, 1.00e7),
    PaperNet("6", "IGCV2 C80 D8", "res8-c80-k1.10.10/1.16.16/1.20.20", 0.046e6, 1.18e7),
    PaperNet("6", "IGCV1 C48 D20", "res20-c48-k2.g2", 0.151e6, 2.89e7),
    PaperNet("6", "IGCV2 C80 D20", "res20-c80-k1.10.10/1.16.16/1.20.20", 0.144e6, 3.20e7),
    PaperNet("6", "IGCV1 C48 D26", "res26-c48-k2.g2", 0.203e6, 3.83e7),
    PaperNet("6", "IGCV2 C80 D26", "res26-c80-k1.10.10/1.16.16/1.20.20", 0.193e6, 4.21e7),
    # Table 9: ImageNet, MobileNetV1 skeleton (Table 8); width = stem channels
    PaperNet("9", "MobileNetV1-1.0", "mobilenet1-c32-k1.g1-relu", 4.2e6, 569e6),
    PaperNet("9", "IGCV2-1.0", "mobilenet1-c64-k1.g8.g8-relu", 4.1e6, 564e6),
    PaperNet("9", "MobileNetV1-0.5", "mobilenet1-c16-k1.g1-relu", 1.3e6, 149e6),
    PaperNet("9", "IGCV2-0.5", "mobilenet1-c32-k1.g8.g8-relu", 1.3e6, 156e6),
    PaperNet("9", "MobileNetV1-0.25", "mobilenet1-c8-k1.g1-relu", 0.5e6, 41e6),
    PaperNet("9", "IGCV2-0.25", "mobilenet1-c16-k1.g8.g8-relu", 0.5e6, 46e6),
    # Table 11: ImageNet, MobileNetV2 and IGCV3 skeletons (Table 10)
    PaperNet("11", "MobileNetV2-0.7", "mobilenet2-c22-kg1.1.g1-s2-t6-relu", 1.9e6, 160e6,
             "stem 22 = 0.69x"),
    PaperNet("11", "IGCV3-0.7", "igcv3net-c22-kg2.1.g2-s2-t6-relu", 2.0e6, 170e6,
             "stem 22 = 0.69x"),
    PaperNet("11", "MobileNetV2-1.0", "mobilenet2-c32-kg1.1.g1-s2-t6-relu", 3.4e6, 300e6),
    PaperNet("11", "IGCV3-1.0", "igcv3net-c32-kg2.1.g2-s2-t6-relu", 3.5e6, 320e6),
)


# Figure 2: (L, K, C) of each bar. L counts the group 1x1 convolutions that follow the
# channel-wise 3x3 (so the block has L + 1 convolutions): only then do the block weights
# 9C + L*C*K come to about 4,700, Table 2's smallest budget, for every bar (4,488-4,860).
FIG2_BARS: tuple[tuple[int, int, int], ...] = (
    (2, 4, 272), (2, 6, 222), (2, 8, 184), (2, 12, 144), (2, 16, 112),
    (3, 3, 258), (3, 4, 220), (3, 6, 174), (3, 8, 136), (3, 12, 108),
    (4, 3, 222), (4, 4, 184), (4, 6, 144), (4, 8, 112), (4, 12, 84),
)


def fig2_design_id(L: int, K: int, C: int) -> str:
    """The plain8 id of a Figure 2 bar: channel-wise 3x3, then L group 1x1 of branch size K.

    >>> fig2_design_id(2, 12, 144)
    'plain8-c144-k1.12.12'
    """
    return f"plain8-c{C}-k1" + f".{K}" * L


def ours(net: PaperNet) -> tuple[int, int]:
    """Our (params, multiply-adds) in the convention of the paper's table."""
    d = describe(parse(net.design_id))
    if net.table in ("2", "5"):
        return d["block_params"], d["block_flops"]
    if net.table in ("3", "4", "6"):
        return d["paper_params"], d["paper_flops"]
    return d["params"], d["flops"]


def markdown_table() -> str:
    """The paper-vs-ours table (deviation = ours / paper - 1)."""
    lines = [
        "| table | network | design id | paper params | ours | dev. | paper MACs | ours | dev. |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in PAPER_NETS:
        p, f = ours(n)
        lines.append(
            f"| {n.table} | {n.label} | `{n.design_id}` | {n.params:,.0f} | {p:,} | "
            f"{p / n.params - 1:+.1%} | {n.flops:,.0f} | {f:,} | {f / n.flops - 1:+.1%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
