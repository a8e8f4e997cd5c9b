"""The paper's closed forms (section 3.2), for a block of C channels and L group convolutions
with one spatial kernel of size S (S = 9 for 3x3) in the first of them."""

from __future__ import annotations

import math

S3x3 = 9


def satisfies_product(K: tuple[int, ...] | list[int], C: int) -> bool:
    """Eq. 6: a complementary (dense, one path per pair) block needs prod(K_l) = C."""
    return math.prod(K) == C


def params_q(K: tuple[int, ...] | list[int], C: int, S: int = S3x3) -> int:
    """Eq. 7: Q = C * sum_{l>=2} K_l + C * S * K_1 (permutation parameters ignored)."""
    return C * sum(K[1:]) + C * S * K[0]


def params_lower_bound(C: int, L: int, S: int = S3x3) -> float:
    """Eq. 10: Q >= L * C * (S * C)^(1/L), with equality under the balance condition."""
    return L * C * (S * C) ** (1.0 / L)


def balanced_branch_size(C: int, L: int, S: int = S3x3, separated: bool = True) -> float:
    """Eq. 11. Separated form (channel-wise 3x3 then L-1 group 1x1 convolutions):
    K_2 = ... = K_L = C^(1/(L-1)). Otherwise S*K_1 = K_2 = ... = K_L = (S*C)^(1/L)."""
    if L < 2:
        raise ValueError(f"L = {L}; the balance condition needs L >= 2")
    return C ** (1.0 / (L - 1)) if separated else (S * C) ** (1.0 / L)


def optimal_L(C: int, S: int = S3x3) -> float:
    """Eq. 14: Q is smallest at L = ln(S * C) (natural log)."""
    return math.log(S * C)


def optimal_L_separated(C: int) -> float:
    """For the separated form the 1x1 part C*sum K_l is smallest at L - 1 = ln C."""
    return 1.0 + math.log(C)


def factorizations(C: int, n: int, min_factor: int = 2) -> list[tuple[int, ...]]:
    """All non-increasing n-tuples of integers >= min_factor whose product is C (eq. 6)."""
    out: list[tuple[int, ...]] = []

    def rec(rest: int, k: int, cap: int, acc: tuple[int, ...]) -> None:
        if k == 0:
            if rest == 1:
                out.append(acc)
            return
        for f in range(min(cap, rest), min_factor - 1, -1):
            if rest % f == 0:
                rec(rest // f, k - 1, f, acc + (f,))

    rec(C, n, C, ())
    return out


def most_balanced(C: int, n: int) -> tuple[int, ...] | None:
    """The factorization of C into n factors (each >= 2) with the smallest max/min."""
    fs = factorizations(C, n)
    return min(fs, key=lambda f: (f[0] / f[-1], f)) if fs else None


def xception_width(q: float, S: int = S3x3) -> float:
    """The narrowest reference at ``q`` block weights: the dense separated block (Xception,
    a channel-wise k x k then one dense 1x1; eq. 7 with L = 2, K = (1, C)): S*C + C^2 = q.

    >>> xception_width(4672)  # Table 2: Xception C=64 has 64*9 + 64*64 = 4,672 weights
    64.0
    """
    return (-S + math.sqrt(S * S + 4 * q)) / 2


def widest_width(q: float, S: int = S3x3) -> float:
    """The widest reference at ``q`` block weights: a strictly complementary, balanced
    separated block at its best L. Eqs. 7 and 11 give q = C (S + (L-1) C^(1/(L-1))); the 1x1
    part is smallest at L - 1 = ln C (``optimal_L_separated``), where (L-1) C^(1/(L-1)) =
    e ln C, so q = C (S + e ln C). Solved for C by bisection (increasing in C >= 1).

    >>> round(widest_width(4752), 1)
    202.7
    """
    if q <= S:
        raise ValueError(f"q = {q}; a block needs more than S = {S} weights")

    def cost(c: float) -> float:
        return c * (S + math.e * math.log(c))

    lo, hi = 1.0, float(q)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cost(mid) < q else (lo, mid)
    return (lo + hi) / 2


def theory_score(width: int, density: float) -> float:
    """What the paper predicts between blocks of equal weights, as one number: the log of
    the input channels each output channel of the block reaches, ln(C x density) (C for a
    dense composed kernel); higher is better. No optimum is assumed: the paper states none.

    The paper's statements at equal parameters, each quoted:

    - Sec. 3.2 (eqs. 10-11): "under the same number of parameters, an IGCV2 block
      satisfying such a balance condition leads to the maximum width and consistently
      superior performance: the best or nearly best." -> wider is better (balance acts
      through the width it buys, so it is no separate term).
    - Sec. 4.2, Figure 2: "An IGCV2 block satisfying the complementary condition leads to a
      dense kernel with a large width under the same number of parameters", and of the
      loose (green) bars, "the denser kernel leads to higher performance" -> a composed
      kernel reaching only a share ``density`` of the input-output pairs counts as that much
      narrower (C x density channels reached).
    - Sec. 4.2, Figure 3: "The maximum accuracy is achieved at some L, in which the width
      and the non-sparsity degree reach a balance." The paper does not say which L, so no
      optimum enters the score (``bottleneck_score`` assumed one at sqrt(C_min C_max),
      which is not in the paper); Figure 3's concavity is tested as a claim instead.

    The budget is not normalised away: across budgets the score rises with the width a
    larger budget buys (eq. 7: q = C (S + sum K)). The paper says nothing of how budget
    and structure trade, so a ranking across budgets is not a test of the theory.

    >>> round(theory_score(144, 1.0), 3)  # IGCV2 C=144 (Table 2): dense, 144 reached
    4.97
    >>> theory_score(144, 1.0) > theory_score(64, 1.0)  # ... beats Xception C=64
    True
    """
    if width < 1 or not 0 < density <= 1:
        raise ValueError(f"width {width}, density {density}: need width >= 1, 0 < density <= 1")
    return math.log(width * density)


def bottleneck_score(width: int, non_sparsity: float, density: float, block_params: int,
                     S: int = S3x3) -> float:
    """Retired: the score this repository chose as "the theory" before the paper's text was
    checked for an optimum (it is not there; see ``theory_score``). Kept because every
    zero-cost record stores it as ``theory`` (docs/proxies/*.csv, the replays of
    docs/benchmark.md), and records stay what ran. Width and non-sparsity, each on a 0-1
    scale between the two extremes a block of the same weight count can reach, and the
    score is the smaller of the two; higher is better. Normalised per budget: it carries no
    budget term.

    Why this form (chosen before any accuracy was seen, not fitted):

    - Sec. 4.2, "The effect of L", and Figure 3: accuracy rises with width and with
      non-sparsity (Figure 3: non-zero weights / size of the dense composed kernel), but at
      equal parameters they trade against each other; the best L is neither the widest
      ("the width is the largest and the non-sparsity is the smallest, the performance
      however is not the best") nor the densest, but where "the width and the non-sparsity
      degree reach a balance".
    - The two extremes at q block weights: the densest separated block, Xception
      (``xception_width``: C_min, non-sparsity ns_max = q / (S C_min^2)), and the widest
      complementary one, balanced (eq. 11) at its best L (``widest_width``: C_max,
      ns_min = q / (S C_max^2)). Scales are logarithmic (width acts through log C in the
      repository's fit, and the extremes differ by a factor): w = ln(C / C_min) /
      ln(C_max / C_min) and n = ln(ns / ns_min) / ln(ns_max / ns_min), 0 at the one extreme
      and 1 at the other.
    - Any weighted sum (or product of powers) of width and non-sparsity is monotone in C at
      equal q, since ns = q / (S C^2): it would name an extreme the best, which the paper
      reports is not. The smallest of the two (a bottleneck) is the simplest combination
      with an interior maximum, and it peaks exactly where the two reach a balance
      (w = n; for dense blocks C = sqrt(C_min C_max)).
    - Sec. 4.2 on Figure 2: a sparser composed kernel (loose blocks, density < 1) does
      worse. The block's non-sparsity is discounted by its density (the share of
      input-output pairs its composed kernel reaches), so a loose block counts as sparser.
    - The balance condition (eq. 11) is not a separate term: at equal weights it acts
      through the width it buys (balanced blocks are the widest).

    Values may leave [0, 1] for blocks outside the two references (a loose block wider than
    C_max has n < 0). Computed from the first-stage block (``describe()``'s ``width``,
    ``non_sparsity``, ``density``, ``block_params``).

    >>> round(bottleneck_score(144, 4752 / (9 * 144**2), 1.0, 4752), 3)  # IGCV2 C=144
    0.299
    >>> bottleneck_score(64, 4672 / (9 * 64**2), 1.0, 4672)  # Xception: the densest extreme
    0.0
    """
    c_min, c_max = xception_width(block_params, S), widest_width(block_params, S)
    ns_max = block_params / (S * c_min**2)
    ns_min = block_params / (S * c_max**2)
    w = math.log(width / c_min) / math.log(c_max / c_min)
    n = math.log(non_sparsity * density / ns_min) / math.log(ns_max / ns_min)
    return min(w, n)


__all__ = [
    "S3x3",
    "balanced_branch_size",
    "bottleneck_score",
    "factorizations",
    "most_balanced",
    "optimal_L",
    "optimal_L_separated",
    "params_lower_bound",
    "params_q",
    "satisfies_product",
    "theory_score",
    "widest_width",
    "xception_width",
]
