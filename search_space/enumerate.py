"""Enumeration of the design space under a parameter budget."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

from .costs import describe
from .design import Design
from .plan import net_plan
from .theory import factorizations, most_balanced

#: Defaults of the space (the paper's Figures 2 and 3 use K in 3..16 and L in 2..4; the
#: space is wider so that the optimum is inside it, not on its edge).
DEFAULT_L = (2, 3, 4, 5, 6)
DEFAULT_BRANCH_SIZES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
DEFAULT_BRANCH_COUNTS = (1, 2, 4, 8)
ENUMERABLE_NETS = ("plain8", "res")


def max_width(
    make: callable, step: int, budget: int, num_classes: int, limit: int = 1 << 14
) -> Design | None:
    """The design ``make(C)`` with the largest C (a multiple of ``step``) within the budget.

    Parameters grow with C for a fixed branch pattern, so a doubling then bisection over
    multiples of ``step`` finds it. None when even C = step does not fit.
    """

    def fits(m: int) -> Design | None:
        try:
            d = make(m * step)
        except ValueError:
            return None
        return d if net_plan(d, num_classes).params <= budget else None

    if fits(1) is None:
        return None
    lo, hi = 1, 2
    while hi * step <= limit and fits(hi) is not None:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) is not None else (lo, mid)
    return fits(lo)


def enumerate_designs(
    budget: int,
    net: str = "plain8",
    *,
    depth: int | None = None,
    num_classes: int = 100,
    L: Iterable[int] = DEFAULT_L,
    spatial: Sequence[str] = ("first",),
    spatial_branch: Sequence[int] = (1,),
    branch_sizes: Iterable[int] = DEFAULT_BRANCH_SIZES,
    branch_counts: Iterable[int] = DEFAULT_BRANCH_COUNTS,
    complementarity: Sequence[str] = ("strict", "loose"),
    nonlinear: Sequence[bool] = (False,),
) -> list[Design]:
    """Every distinct design of the space whose network has at most ``budget`` parameters.

    The space, for each L, spatial position and K of the spatial conv (1 = channel-wise):
    - uniform branch size K for all 1x1 group convs (``branch_sizes``), at the largest width
      that fits (loose unless K_sp * K^(L-1) = C happens to hold);
    - a fixed number of branches G per 1x1 conv (``branch_counts``; L = 2, G = 1 is
      Xception, K_sp = 2 with G = 2 is IGCV1) at the largest width;
    - strict designs (eq. 6, prod K = C): the largest width that factorises into L-1 factors
      >= 2 and fits, with every such factorisation that fits (the balanced one of eq. 11
      among them); on res nets each stage gets its most balanced factorisation.
    Designs equal after resolving K at their width are listed once.

    Args:
        budget: maximum trainable parameters of the whole built network.
        net: ``plain8`` or ``res`` (with ``depth`` 3B+2, default 20); ``res20`` is accepted.
        num_classes: classifier size that the parameter count includes.
        L: numbers of group convolutions.
        spatial: where the 3x3 sits: ``first`` and/or ``last``.
        spatial_branch: K of the 3x3 conv: 1 = channel-wise (IGCV2 II), 2 = group (IGCV2 I).
        branch_sizes: uniform K values of the 1x1 convs.
        branch_counts: fixed branch counts G of the 1x1 convs (loose, Tables 8 and 10).
        complementarity: keep designs whose measured complementarity is in this set.
        nonlinear: linear and/or nonlinear blocks.

    Returns:
        Designs sorted by (L, params); each at the largest width that fits.

    Raises:
        ValueError: for a bad argument, or a budget that no design of the space fits.
    """
    net, depth = _net_depth(net, depth)
    Ls = _checked_Ls(budget, spatial, complementarity, L)
    seen: dict[tuple, Design] = {}  # designs equal after resolving K, listed once
    for n_conv, where, k_sp, nl in itertools.product(Ls, spatial, spatial_branch, nonlinear):
        for d in _candidates(budget, net, depth, num_classes, n_conv, where, k_sp, nl,
                             branch_sizes, branch_counts):
            seen.setdefault(_structure(d), d)
    out = [d for d in seen.values() if describe(d, num_classes)["complementarity"]
           in complementarity]
    if not seen:
        raise ValueError(
            f"no design of {net}{depth if net == 'res' else ''} fits a budget of {budget:,} "
            f"parameters; a 4-channel IGCV2 of that net needs "
            f"{_smallest(net, depth, num_classes):,}"
        )
    return sorted(out, key=lambda d: (d.L, describe(d, num_classes)["params"], d.id))


def _checked_Ls(budget: int, spatial: Sequence[str], complementarity: Sequence[str],
                L: Iterable[int]) -> list[int]:
    """The L values, sorted and distinct, once the arguments are checked (ValueError naming
    the first bad one)."""
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        raise ValueError(f"budget {budget!r} must be a positive integer number of parameters")
    bad = [s for s in spatial if s not in ("first", "last")]
    if bad:
        raise ValueError(f"spatial {bad[0]!r}; accepted: 'first', 'last'")
    bad = [c for c in complementarity if c not in ("strict", "loose")]
    if bad:
        raise ValueError(f"complementarity {bad[0]!r}; accepted: 'strict', 'loose'")
    Ls = sorted(set(L))
    if not Ls or Ls[0] < 2:
        raise ValueError(f"L values {Ls}; accepted: integers >= 2")
    return Ls


def _net_depth(net: str, depth: int | None) -> tuple[str, int]:
    if net.startswith("res") and net[3:].isdigit():
        net, depth = "res", int(net[3:])
    if net not in ENUMERABLE_NETS:
        raise ValueError(f"unknown net {net!r} for enumeration; accepted: plain8, res, resD")
    if net == "plain8":
        return net, 8
    depth = 20 if depth is None else depth
    if depth < 5 or (depth - 2) % 3:
        raise ValueError(f"res depth {depth} is not 3B+2 with B >= 1 (e.g. 8, 20, 26)")
    return net, depth


def _candidates(budget, net, depth, num_classes, n_conv, where, k_sp, nl, sizes, counts):
    pos = 1 if where == "first" else n_conv

    def design(width: int, stages: list[list]) -> Design:
        K = tuple(tuple(_place(st, k_sp, pos)) for st in stages)
        return Design(net=net, depth=depth, width=width, K=K, spatial=pos, nonlinear=nl)

    n = n_conv - 1
    for k in sizes:
        step = math.lcm(k, k_sp)
        d = max_width(lambda c, k=k: design(c, [[k] * n]), step, budget, num_classes)
        if d is not None:
            yield d
    for g in counts:
        if g == 1 and n > 1:
            continue  # several dense 1x1 convs in a row are one dense conv, not a new design
        step = math.lcm(g, k_sp) * (g if n > 1 else 1)
        d = max_width(lambda c, g=g: design(c, [[f"g{g}"] * n]), step, budget, num_classes)
        if d is not None:
            yield d
    yield from _strict(budget, net, num_classes, n, k_sp, design)
    if net == "plain8" and n > 1:
        yield from _balanced_strict(budget, num_classes, n, k_sp, design)


def _balanced_strict(budget, num_classes, n, k_sp, design):
    """The strict design that also meets the balance condition exactly (eq. 11):
    K_2 = ... = K_L = K with C = k_sp * K^(L-1), at the largest K that fits."""
    best, k = None, 2
    while k_sp * k**n <= 1 << 14:
        d = design(k_sp * k**n, [[k] * n])
        if net_plan(d, num_classes).params > budget:
            break
        best, k = d, k + 1
    if best is not None:
        yield best


def _strict(budget, net, num_classes, n, k_sp, design):
    """Strict designs (eq. 6, prod K = C) at the largest width where one fits.

    Widths are tried downward from a bound: by AM-GM a strict design at width C has
    1x1 branch sizes summing to at least n * (C / k_sp)^(1/n) (eq. 10), so no strict design
    fits above the largest C whose balanced real-valued K would fit.
    """
    stages = 1 if net == "plain8" else 3

    def options(width: int) -> list[list[list[int]]]:
        if n == 1:
            return [[[width * 2**s // k_sp] for s in range(stages)]]
        if stages == 1:
            return [[list(f)] for f in factorizations(width // k_sp, n)]
        per = [most_balanced(width * 2**s // k_sp, n) for s in range(stages)]
        return [[list(f) for f in per]] if all(per) else []

    for width in range(_strict_bound(budget, net, num_classes, n, k_sp, design), 0, -k_sp):
        fits = []
        for stage_ks in options(width):
            try:
                d = design(width, stage_ks)
            except ValueError:
                continue
            if net_plan(d, num_classes).params <= budget:
                fits.append(d)
        if fits:
            return fits
    return []


def _strict_bound(budget, net, num_classes, n, k_sp, design) -> int:
    """Largest multiple of k_sp whose balanced (real K) strict design could fit."""

    def lower_bound(width: int) -> float:
        base = net_plan(design(width, [[1] * n]), num_classes)
        # Each 1x1 conv's weights scale with its K: cout * K; add the AM-GM minimum of K - 1.
        extra = sum(
            c.cout * ((blk.cin // k_sp) ** (1.0 / n) - 1)
            for blk in base.blocks
            for c in blk.convs
            if c.k == 1
        )
        return base.params + extra

    lo, hi = k_sp, 2 * k_sp
    while hi < 1 << 14 and lower_bound(hi) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > k_sp:
        mid = (lo + hi) // 2 // k_sp * k_sp
        lo, hi = (mid, hi) if lower_bound(mid) <= budget else (lo, mid)
    return lo


def _place(stage: list, k_sp: int, pos: int) -> list:
    out = list(stage)
    out.insert(pos - 1, k_sp)
    return out


def _structure(d: Design) -> tuple:
    plan = net_plan(d)
    convs = tuple((c.cin, c.cout, c.k, c.stride, c.groups) for b in plan.blocks for c in b.convs)
    return (d.net, d.depth, d.width, d.nonlinear, convs)


def _smallest(net: str, depth: int, num_classes: int) -> int:
    d = Design(net=net, depth=depth, width=4, K=((1, 2, 2),))
    return net_plan(d, num_classes).params
