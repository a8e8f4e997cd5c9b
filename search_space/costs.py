"""Exact accounting of a design: ``describe()``."""

from __future__ import annotations

from functools import lru_cache

from .connectivity import summarize
from .design import IMAGENET_NETS, Design
from .plan import Block, NetPlan, net_plan
from .theory import S3x3

#: The keys of describe(), in its order (the columns a result record takes from it).
DESCRIBE_KEYS = (
    "id", "net", "depth", "width", "stem", "family", "L", "K", "spatial", "expansion",
    "nonlinear", "complementarity", "params", "flops", "block_params", "block_flops",
    "paper_params", "paper_flops", "non_sparsity", "density", "min_paths", "max_paths",
    "balance_deviation", "num_classes", "input_size",
)  # fmt: skip
#: The describe() keys that measure a design (its costs and ratios, as opposed to its
#: structure): the numbers a table compares, which a results frame holds as floats.
DESCRIBE_MEASURES = ("params", "block_params", "paper_params", "flops", "block_flops",
                     "paper_flops", "non_sparsity", "density", "balance_deviation")


def describe(d: Design, num_classes: int | None = None, input_size: int | None = None) -> dict:
    """Every cost and structural property of a design, as a JSON-serialisable dict.

    Keys: id, net, depth, width, stem, family, L, K (concrete K_l of each stage's block),
    spatial, expansion, nonlinear, complementarity ("strict" when every input-output pair of
    every block of the net, width-changing ones included, has exactly one path, else
    "loose"; density, min_paths and max_paths are likewise over every block), params
    (every trainable parameter of ``build(d)``), flops (multiply-adds of one forward pass of
    one image),
    block_params / block_flops (one first-stage C->C block, convolution weights only: the
    paper's per-block figures of Tables 2 and 5), paper_params / paper_flops (all blocks
    counted C->C at their stage's width, the paper's network figures of Tables 3, 4 and 6),
    non_sparsity (Figure 3: block weights / S*C*C), density, min_paths, max_paths,
    balance_deviation (eq. 11: max/min of the balanced factors, 1 = balanced),
    num_classes, input_size.

    Args:
        d: the design.
        num_classes: classifier outputs (default: 100 for CIFAR nets, the paper's CIFAR-100,
            and 1000 for ImageNet nets). Give 10 for CIFAR-10, as ``studies/run.py`` and
            ``enumerate_designs(..., num_classes=10)`` count: the classifier's weights
            differ (``plain8-c144-k1.12.12``: 52,372 parameters at 100, 39,322 at 10).
        input_size: image side (default: 32 for CIFAR nets, 224 for ImageNet nets).
    """
    return dict(_describe(d, num_classes, input_size))


@lru_cache(maxsize=8192)
def _describe(d: Design, num_classes: int | None, input_size: int | None) -> tuple:
    plan = net_plan(d, num_classes, input_size)
    reps = plan.stage_blocks
    # Connectivity of every distinct block of the net: the same-width block of each stage
    # and the width-changing (stride-2) first block of each later stage, whose convolutions
    # take the stage's K on half the channels. "strict" is then true of the whole net.
    conn = [summarize(b) for b in dict.fromkeys((*reps, *plan.blocks))]
    K = [[c.branch_size for c in b.convs] for b in reps]
    first = reps[0]
    C = first.cin
    out = {
        "id": d.id,
        "net": d.net,
        "depth": d.depth,
        "width": d.width,
        "stem": d.stem or d.width,
        "family": family(d, first),
        "L": d.L,
        "K": K,
        "spatial": d.spatial,
        "expansion": d.expansion,
        "nonlinear": d.nonlinear,
        "complementarity": "strict"
        if all(c["min_paths"] == c["max_paths"] == 1 for c in conn)
        else "loose",
        "params": plan.params,
        "flops": plan.macs,
        "block_params": first.weights,
        "block_flops": first.macs,
        "paper_params": paper_count(d, plan, "weights"),
        "paper_flops": paper_count(d, plan, "macs"),
        "non_sparsity": first.weights / (S3x3 * C * C),
        "density": min(c["density"] for c in conn),
        "min_paths": min(c["min_paths"] for c in conn),
        "max_paths": max(c["max_paths"] for c in conn),
        "balance_deviation": max(balance_deviation(b, d.spatial) for b in reps),
        "num_classes": plan.num_classes,
        "input_size": plan.input_size,
    }
    return tuple(out.items())


def paper_count(d: Design, plan: NetPlan, attr: str) -> int:
    """Blocks only, each counted C->C at its stage's width and resolution (see DESIGN.md)."""
    if d.net in IMAGENET_NETS:
        # ImageNet nets (Tables 9, 11): the paper counts the whole network.
        return sum(getattr(b, attr) for b in plan.blocks) + getattr(plan.stem, attr) + sum(
            getattr(b, attr) for b in plan.head
        ) + (plan.fc_in * plan.num_classes if not plan.head else 0)
    per_stage = len(plan.blocks) // len(plan.stage_blocks)
    return per_stage * sum(getattr(b, attr) for b in plan.stage_blocks)


def balance_deviation(block: Block, spatial: int) -> float:
    """Eq. 11 as a number: max/min over the factors that balance requires equal.

    With a channel-wise spatial conv (K = 1) the factors are the other K_l (the separated form,
    K_2 = ... = K_L); with a group spatial conv they are S*K_spatial and the other K_l.
    """
    factors = []
    for i, c in enumerate(block.convs):
        k = c.branch_size
        if i + 1 == spatial:
            if k == 1:
                continue
            k *= c.k * c.k
        factors.append(k)
    return max(factors) / min(factors) if factors else 1.0


def family(d: Design, block: Block) -> str:
    """The paper's name for the block kind of a design."""
    K = [c.branch_size for c in block.convs]
    C = block.cin
    k_sp = K[d.spatial - 1]
    others = [k for i, k in enumerate(K) if i + 1 != d.spatial]
    if d.expansion > 1:
        return "igcv3" if any(c.groups > 1 for c in block.convs if c.k == 1) else "mobilenet-v2"
    if d.L == 2 and k_sp == 1:
        return "xception" if others == [C] else "igcv2"
    if d.L == 2:
        return "igcv1"
    return "igcv2" if k_sp == 1 else "igcv2-i"
