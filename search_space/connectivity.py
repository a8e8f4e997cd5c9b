"""Composed connectivity of a block (section 3.2): path counts between channels.

The 0/1 pattern of each group convolution (eq. 3, block-diagonal) and the channel shuffle
after it are multiplied as integer matrices, W = P_L W_L ... P_1 W_1 (eq. 4); entry (o, i)
is the number of paths from input channel i to output channel o. The complementary
condition (Condition 1) holds when every entry is exactly 1.
"""

from __future__ import annotations

import numpy as np

from .plan import Block


def shuffle_perm(channels: int, groups: int) -> np.ndarray:
    """Index p of the channel shuffle with ``groups`` branches: ``out[j] = in[p[j]]``.

    It is the reshape (groups, K) -> transpose -> flatten that the modules apply, so the
    next group convolution's branches each take one channel from every branch of this one.
    """
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


def group_pattern(cin: int, cout: int, groups: int) -> np.ndarray:
    """0/1 (cout x cin) matrix of a group convolution (eq. 3)."""
    out_branch = np.arange(cout) // (cout // groups)
    in_branch = np.arange(cin) // (cin // groups)
    return (out_branch[:, None] == in_branch[None, :]).astype(np.int64)


def path_counts(block: Block) -> np.ndarray:
    """(cout x cin) number of paths through the block's convolutions and shuffles."""
    m = np.eye(block.cin, dtype=np.int64)
    for conv, g in zip(block.convs, block.shuffle, strict=True):
        m = group_pattern(conv.cin, conv.cout, conv.groups) @ m
        if g > 1:
            m = m[shuffle_perm(conv.cout, g)]
    return m


def distinct_rows(block: Block) -> np.ndarray:
    """The distinct rows of ``path_counts`` (one per branch of the last convolution).

    Outputs in one branch of W_L see the same inputs, and P_L only reorders rows, so the
    G_L x cin matrix holds every row of the full cout x cin one: min, max and density are
    the same, at a cost of G_L * cin per step instead of cout * cin (C up to a few
    thousand in a 0.65M plain8 net). Propagated backwards: R <- R P_l, then R <- R W_l.
    """
    convs, shuffles = block.convs, block.shuffle
    last = convs[-1]
    r = group_pattern(last.cin, last.groups, last.groups)  # (G_L x cin_L) branch indicator
    for conv, g in zip(reversed(convs[:-1]), reversed(shuffles[:-1]), strict=True):
        if g > 1:
            r = r[:, np.argsort(shuffle_perm(conv.cout, g))]
        # R W: sum the columns of each branch, then spread over the branch's inputs.
        per_branch = r.reshape(r.shape[0], conv.groups, conv.cout // conv.groups).sum(2)
        r = np.repeat(per_branch, conv.cin // conv.groups, axis=1)
    return r


def summarize(block: Block) -> dict:
    """density (pairs with >= 1 path), min_paths and max_paths of a block."""
    m = distinct_rows(block)
    return {
        "density": float((m > 0).mean()),
        "min_paths": int(m.min()),
        "max_paths": int(m.max()),
    }
