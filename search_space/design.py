"""The one representation of a design: a frozen dataclass with a canonical, readable id.

Grammar of an id (documented with examples in the README)::

    id      := net "-c" width "-k" kspec { "-" option }
    net     := "plain8" | "res" depth | "mobilenet1" | "mobilenet2" | "igcv3net"
    kspec   := stage { "/" stage }          one stage for all, or one per stage
    stage   := entry { "." entry }          one entry per group convolution, in order
    entry   := int                          K_l, channels per branch (input side)
             | "g" int                      a fixed number of branches: K_l = C_in / G
    option  := "s" int                      which convolution carries the 3x3 (1-based; default 1)
             | "t" int                      expansion of the first convolution (IGCV3, MobileNetV2)
             | "relu"                       nonlinear block (Fig. 5b / 6b)
             | "stem" int                   stem width when it is not the first-stage width

Examples: ``plain8-c64-k1.64`` (Xception C=64), ``plain8-c144-k1.12.12`` (IGCV2 C=144),
``res20-c48-k2.g2`` (IGCV1 C48), ``res20-c216-k1.8.8.8-stem64`` (IGCV2* C216).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .plan import net_plan

#: Net templates and the depths they accept.
NETS = ("plain8", "res", "mobilenet1", "mobilenet2", "igcv3net")
IMAGENET_NETS = ("mobilenet1", "mobilenet2", "igcv3net")

Entry = int | str  # an int K_l, or "gN" for N branches


@dataclass(frozen=True)
class Design:
    """One structured-sparse network design.

    Attributes:
        net: network template: ``plain8`` (section 4.2), ``res`` (Table 1, depth 3B+2), or an
            ImageNet skeleton of Tables 8 and 10 (``mobilenet1``, ``mobilenet2``,
            ``igcv3net``; cost reproduction only).
        depth: number of weighted layers (8 for plain8; 3B+2 for res; the template's own
            depth for the ImageNet nets).
        width: first-stage width C (channels of the first stage of blocks).
        K: branch sizes, one tuple per stage (a single tuple applies to every stage). Each
            entry is K_l (input channels per branch of group convolution l) or ``"gN"``
            (N branches, the loose form of Tables 8 and 10). L = len of a stage tuple.
        spatial: which convolution (1-based) carries the 3x3 kernel. With K_spatial = 1 it is
            channel-wise (IGCV2 II, Xception); with K_spatial > 1 a group 3x3 (IGCV2 I, IGCV1).
        expansion: channel expansion t of the first convolution (IGCV3, MobileNetV2).
        nonlinear: ReLU after every convolution up to the spatial one (Fig. 5b, Fig. 6b);
            a linear block has BN after each convolution and one ReLU at its end.
        stem: stem width when it differs from ``width`` (IGCV2* of Table 1 uses 64); 0 = width.

    Complementarity (strict or loose) is not a field: it follows from K and the width, and
    ``describe()`` reports it from the connectivity the modules actually realise, so the
    design cannot claim a property its network does not have.
    """

    net: str
    depth: int
    width: int
    K: tuple[tuple[Entry, ...], ...]
    spatial: int = 1
    expansion: int = 1
    nonlinear: bool = False
    stem: int = 0

    def __post_init__(self) -> None:
        # Canonical form: a K given once per stage collapses to one tuple when all are equal.
        stages = tuple(tuple(_canon_entry(e) for e in st) for st in self.K)
        if len(stages) > 1 and all(st == stages[0] for st in stages):
            stages = stages[:1]
        object.__setattr__(self, "K", stages)
        if self.stem == self.width:
            object.__setattr__(self, "stem", 0)
        validate(self)

    @property
    def L(self) -> int:  # noqa: N802 - the paper's symbol
        """Number of group convolutions in a block."""
        return len(self.K[0])

    @property
    def imagenet(self) -> bool:
        """True for the ImageNet skeletons of Tables 8 and 10 (224-pixel input, 1000 classes)."""
        return self.net in IMAGENET_NETS

    @property
    def id(self) -> str:
        """Canonical id; ``parse(d.id) == d``."""
        net = f"res{self.depth}" if self.net == "res" else self.net
        kspec = "/".join(".".join(str(e) for e in st) for st in self.K)
        parts = [net, f"c{self.width}", f"k{kspec}"]
        if self.spatial != 1:
            parts.append(f"s{self.spatial}")
        if self.expansion != 1:
            parts.append(f"t{self.expansion}")
        if self.nonlinear:
            parts.append("relu")
        if self.stem:
            parts.append(f"stem{self.stem}")
        return "-".join(parts)

    def __str__(self) -> str:
        return self.id

    def stage_K(self, stage: int) -> tuple[Entry, ...]:
        """The K entries of a stage (0-based)."""
        return self.K[stage] if len(self.K) > 1 else self.K[0]


def _canon_entry(e: Entry) -> Entry:
    if isinstance(e, bool):
        raise ValueError(f"branch size {e!r} is not an int or 'gN'")
    if isinstance(e, int):
        return e
    s = str(e)
    if re.fullmatch(r"\d+", s):
        return int(s)
    if re.fullmatch(r"g\d+", s):
        return s
    raise ValueError(f"branch entry {e!r} is neither an int K nor 'gN' (N branches)")


_NET_RE = re.compile(r"(plain8|res(\d+)|mobilenet1|mobilenet2|igcv3net)$")


def parse(design_id: str) -> Design:
    """Parse a canonical id (see the module docstring) into a Design.

    Raises:
        ValueError: naming the bad part and what is accepted.
    """
    if not isinstance(design_id, str) or not design_id:
        raise ValueError(f"design id {design_id!r} is not a non-empty string")
    parts = design_id.strip().split("-")
    if len(parts) < 3:
        raise ValueError(
            f"design id {design_id!r} needs at least NET-cWIDTH-kSPEC, e.g. 'plain8-c144-k1.12.12'"
        )
    m = _NET_RE.match(parts[0])
    if not m:
        raise ValueError(
            f"unknown net {parts[0]!r} in {design_id!r}; accepted: plain8, resD (D = 3B+2), "
            "mobilenet1, mobilenet2, igcv3net"
        )
    net = "res" if m.group(2) else parts[0]
    depth = int(m.group(2)) if m.group(2) else _default_depth(net)
    if not re.fullmatch(r"c\d+", parts[1]):
        raise ValueError(f"width part {parts[1]!r} of {design_id!r} must be 'c' + an integer")
    if not re.fullmatch(r"k[\dg./]+", parts[2]):
        raise ValueError(
            f"branch part {parts[2]!r} of {design_id!r} must be 'k' + entries like 1.12.12, "
            "1.g8.g8 or 1.8.8/1.16.16/1.32.32"
        )
    stages = tuple(tuple(_canon_entry(e) for e in st.split(".")) for st in parts[2][1:].split("/"))
    kw: dict = {}
    for opt in parts[3:]:
        if opt in kw.get("_seen", ()):
            raise ValueError(f"option {opt!r} appears twice in {design_id!r}")
        kw.setdefault("_seen", set()).add(opt)
        if opt == "relu":
            kw["nonlinear"] = True
        elif (mo := re.fullmatch(r"(s|t|stem)(\d+)", opt)) is not None:
            kw[{"s": "spatial", "t": "expansion", "stem": "stem"}[mo.group(1)]] = int(mo.group(2))
        else:
            raise ValueError(
                f"unknown option {opt!r} in {design_id!r}; accepted: sN (spatial conv), "
                "tN (expansion), relu, stemN"
            )
    kw.pop("_seen", None)
    # Options may come in any order; Design.id writes them in the canonical order.
    return Design(net=net, depth=depth, width=int(parts[1][1:]), K=stages, **kw)


def _default_depth(net: str) -> int:
    return {"plain8": 8, "mobilenet1": 28, "mobilenet2": 54, "igcv3net": 100}.get(net, 0)


def validate(d: Design) -> None:
    """Raise ValueError (naming the value and what is accepted) if d cannot be built."""
    if d.net not in NETS:
        raise ValueError(f"unknown net {d.net!r}; accepted: {', '.join(NETS)}")
    if d.net == "plain8" and d.depth != 8:
        raise ValueError(f"plain8 has depth 8, not {d.depth}")
    if d.net == "res" and (d.depth < 5 or (d.depth - 2) % 3):
        raise ValueError(
            f"res depth {d.depth} is not 3B+2 with B >= 1 (accepted: 5, 8, 11, 14, 20, ...)"
        )
    if d.net in IMAGENET_NETS and d.depth != _default_depth(d.net):
        raise ValueError(f"{d.net} has depth {_default_depth(d.net)}, not {d.depth}")
    if not isinstance(d.width, int) or d.width < 1:
        raise ValueError(f"width {d.width!r} must be a positive integer")
    if not d.K or any(len(st) != len(d.K[0]) for st in d.K):
        raise ValueError(f"K {d.K!r}: every stage needs the same number L of group convolutions")
    if d.L < 2:
        raise ValueError(f"L = {d.L} (K = {d.K!r}); a block needs L >= 2 group convolutions")
    if not 1 <= d.spatial <= d.L:
        raise ValueError(f"spatial position {d.spatial} must be in 1..L = 1..{d.L}")
    if d.expansion < 1:
        raise ValueError(f"expansion {d.expansion} must be >= 1")
    if d.stem < 0:
        raise ValueError(f"stem width {d.stem} must be >= 1 (or 0 for 'same as width')")
    for st in d.K:
        for e in st:
            n = e if isinstance(e, int) else int(e[1:])
            if n < 1:
                raise ValueError(f"branch entry {e!r} in K {d.K!r} must be >= 1")
    # Divisibility of every convolution is checked where the channel counts are known.
    net_plan(d)
