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


__all__ = [
    "S3x3",
    "balanced_branch_size",
    "factorizations",
    "most_balanced",
    "optimal_L",
    "optimal_L_separated",
    "params_lower_bound",
    "params_q",
    "satisfies_product",
]
