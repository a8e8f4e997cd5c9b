"""A tiny fake benchmark: result records with planted effects, in the schema of
docs/internals.md, for tests and demos of the analysis without training anything.

The describe() fields are computed with the block formulas of DESIGN.md (eq. 7 parameters,
path counts from prod(K) as if the permutations were ideal); they are close to, not the same
as, what search_space computes from the real permutations.

Example:
    >>> from analysis import fake, write_report                      # doctest: +SKIP
    >>> write_report(fake.write_fake_run("runs/fake"))
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BUDGET = 4752  # block weights of Table 2's IGCV2 C=144, K=(1, 12, 12)
FIDELITY_CONFIGS = {
    "smoke": {"epochs": 1, "train_images": 512},
    "cpu": {"epochs": 3, "train_images": 10000},
    "proxy": {"epochs": 30, "train_images": 45000},
    "paper": {"epochs": 400, "train_images": 50000},
}


def record_key(design_id: str, fidelity: str, dataset: str, seed: int) -> str:
    """The record file stem of docs/internals.md: sha1("design_id|fidelity|dataset|seed")[:16]."""
    return hashlib.sha1(f"{design_id}|{fidelity}|{dataset}|{seed}".encode()).hexdigest()[:16]


def describe(
    width: int,
    K: Sequence[int],
    *,
    net: str = "plain8",
    depth: int = 8,
    stem: int = 0,
    num_classes: int = 100,
) -> dict[str, Any]:
    """describe()-like fields of a plain8 net, or of a res net (stages at width, 2x and 4x
    with the same K, B = (depth - 2) / 3 blocks each), built of one kind of block.

    K[0] is the 3x3 convolution's branch size (1: channel-wise, the separated form), K[1:]
    those of the group 1x1 convolutions. The family follows search_space's naming.
    """
    S, L = 9, len(K)
    stages = [width] if net == "plain8" else [width, 2 * width, 4 * width]
    per_stage = 6 if net == "plain8" else (depth - 2) // 3
    sides = [32] if net == "plain8" else [32, 16, 8]

    def block(c: int) -> int:
        return S * c * K[0] + c * sum(K[1:])  # eq. 7

    paths = math.prod(K)  # paths per (output, input) pair, with ideal permutations
    factors = [S * K[0], *K[1:]] if K[0] > 1 else list(K[1:])
    stem_w = stem or width
    blocks = per_stage * sum(block(c) for c in stages)
    macs = per_stage * sum(block(c) * r * r for c, r in zip(stages, sides, strict=True))
    name = f"res{depth}" if net == "res" else net
    return {
        "id": f"{name}-c{width}-k{'.'.join(map(str, K))}" + (f"-stem{stem}" if stem else ""),
        "net": net,
        "depth": depth,
        "width": width,
        "stem": stem_w,
        "family": _family(width, K),
        "L": L,
        "K": [list(K) for _ in stages],
        "spatial": 1,
        "expansion": 1,
        "nonlinear": False,
        "complementarity": "strict" if all(paths == c for c in stages) else "loose",
        "params": 27 * stem_w + blocks + num_classes * (stages[-1] + 1),
        "flops": 27 * stem_w * 32 * 32 + macs + num_classes * stages[-1],
        "block_params": block(width),
        "block_flops": block(width) * 32 * 32,
        "paper_params": blocks,
        "paper_flops": macs,
        "non_sparsity": block(width) / (S * width * width),
        "density": min(min(1.0, paths / c) for c in stages),
        "min_paths": min(paths // c for c in stages),
        "max_paths": max(max(1, -(-paths // c)) for c in stages),
        "balance_deviation": max(factors) / min(factors),
        "num_classes": num_classes,
        "input_size": 32,
    }


def _family(width: int, K: Sequence[int]) -> str:
    """search_space's family rule for a block whose first convolution carries the 3x3."""
    if len(K) == 2:
        if K[0] == 1:
            return "xception" if K[1] == width else "igcv2"
        return "igcv1"
    return "igcv2" if K[0] == 1 else "igcv2-i"


def widest(tail: Sequence[int] | int, L: int, budget: int = BUDGET) -> int:
    """Largest C, divisible by every branch size, whose separated block fits the budget.

    ``tail`` is the 1x1 branch sizes, or an int K for K repeated L - 1 times; 0 means
    balanced: K = ceil(C^(1/(L-1))) chosen per C (the balance condition of Sec. 3.2, rounded
    up so that prod(K) >= C and the composed kernel is dense).
    """
    for C in range(budget // 9, 1, -1):
        if isinstance(tail, int):
            k = tail or max(1, math.ceil(C ** (1.0 / (L - 1)) - 1e-9))
            ks = [k] * (L - 1)
        else:
            ks = list(tail)
        if all(C % k == 0 for k in ks) and 9 * C + C * sum(ks) <= budget:
            return C
    raise ValueError(f"no width fits budget {budget} with L={L}, tail={tail}")


def balanced_design(L: int, budget: int = BUDGET, **kw: Any) -> dict[str, Any]:
    """The Figure 3 design at L: the widest balanced separated block under the budget."""
    if L == 2:
        C = widest(0, 2, budget)
        return describe(C, (1, C), **kw)  # L = 2 is the Xception block
    C = widest(0, L, budget)
    k = max(1, math.ceil(C ** (1.0 / (L - 1)) - 1e-9))
    return describe(C, (1, *[k] * (L - 1)), **kw)


def record(
    desc: dict[str, Any],
    acc: float | None,
    *,
    fidelity: str,
    dataset: str,
    seed: int,
    status: str = "ok",
    reason: str | None = None,
) -> dict[str, Any]:
    """A full result record around describe() fields and a final accuracy."""
    ok = status == "ok" and acc is not None
    epochs = FIDELITY_CONFIGS.get(fidelity, {"epochs": 3})["epochs"]
    curve = (
        [
            {
                "epoch": e,
                "train_loss": 2.0 / e,
                "train_acc": acc * e / epochs,
                "val_acc": acc * e / epochs,
                "seconds": 1.0,
            }
            for e in range(1, epochs + 1)
        ]
        if ok
        else []
    )
    latency = 0.2 + desc["flops"] / 2e8 + 0.01 * seed
    return {
        **desc,
        "design_id": desc["id"],
        "fidelity": fidelity,
        "fidelity_config": {"name": fidelity, **FIDELITY_CONFIGS.get(fidelity, {})},
        "dataset": dataset,
        "seed": seed,
        "status": status if ok else "failed",
        "reason": None if ok else (reason or "diverged: loss is nan at epoch 1"),
        "curve": curve,
        "val_acc": acc + 0.002 if ok else None,
        "test_acc": acc if ok else None,
        "wall_s": 3.0 * epochs,
        "latency_b1_ms": latency if ok else None,
        "latency_b64_ms": 20 * latency if ok else None,
        "device": "cpu",
        "torch_version": "fake",
        "commit": "0" * 40,
        "created": dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).isoformat(),
    }


def fig3_records(
    acc_of_L: Callable[[int], float],
    *,
    Ls: Sequence[int] = (2, 3, 4, 5, 6),
    seeds: int = 3,
    noise: float = 0.003,
    budget: int = BUDGET,
    fidelity: str = "cpu",
    dataset: str = "cifar100",
    rng_seed: int = 0,
) -> list[dict[str, Any]]:
    """A Figure 3 sweep (balanced designs at equal parameters) with accuracy acc_of_L(L) plus
    Gaussian seed noise of sd ``noise``."""
    rng = np.random.default_rng(rng_seed)
    return [
        record(
            d, float(acc_of_L(L) + rng.normal(0, noise)), fidelity=fidelity, dataset=dataset, seed=s
        )
        for L in Ls
        for d in [balanced_design(L, budget)]
        for s in range(seeds)
    ]


def benchmark_designs() -> list[dict[str, Any]]:
    """Figure 2, Figure 3, balance, baseline and Figure 4 designs, unique by id."""
    out = [balanced_design(L) for L in (2, 3, 4, 5, 6)]  # Figure 3
    out += [describe(widest(k, 3), (1, k, k)) for k in (4, 6, 8, 12, 16)]  # Figure 2 (L = 3)
    out += [describe(widest(t, 3), (1, *t)) for t in ((8, 18), (6, 24))]  # unbalanced
    out.append(describe(80, (2, 40)))  # IGCV1 (the Xception C=64 is Figure 3's L = 2)
    for depth, x in ((8, 32), (14, 32), (20, 32), (20, 48), (20, 64)):  # Figure 4, IGCV2*(Cx)
        L = math.ceil(math.log(x, 8)) + 1
        out.append(describe(x, (1, *[8] * (L - 1)), net="res", depth=depth))
    return list({d["id"]: d for d in out}.values())


def _planted(d: dict[str, Any]) -> float:
    """The accuracy the fake benchmark plants: wider is better, sparse or redundant or
    unbalanced kernels cost, deeper is better, and a concave bump in L peaking at L = 4."""
    return (
        0.40
        + 0.05 * math.log(d["width"] / 64)
        - 0.012 * (d["L"] - 4) ** 2
        - 0.06 * (1 - d["density"])
        - 0.004 * (d["max_paths"] - 1)
        - 0.01 * math.log(d["balance_deviation"])
        + 0.03 * math.log(d["depth"] / 8)
    )


def fake_records(
    *, seeds: int = 3, dataset: str = "cifar100", rng_seed: int = 0, noise: float = 0.003
) -> list[dict[str, Any]]:
    """Records of every kind of design the claims look at, at fidelities 'cpu' and 'proxy'
    (proxy = a monotone map of cpu plus a per-design offset, so ranks mostly agree), with two
    failed records."""
    rng = np.random.default_rng(rng_seed)
    designs = benchmark_designs()
    out = []
    for d in designs:
        cpu = _planted(d)
        offset = float(rng.normal(0, 0.004))
        for fid, acc in (("cpu", cpu), ("proxy", 0.2 + 1.1 * cpu + offset)):
            for s in range(seeds):
                a = float(np.clip(acc + rng.normal(0, noise), 0, 1))
                out.append(record(d, a, fidelity=fid, dataset=dataset, seed=s))
    # one seed diverged (replacing its ok record), one extra seed ran out of memory
    out[1] = record(designs[0], None, fidelity="cpu", dataset=dataset, seed=1, status="failed")
    oom = "out of memory: fake"
    out.append(
        record(
            designs[-1],
            None,
            fidelity="proxy",
            dataset=dataset,
            seed=seeds,
            status="failed",
            reason=oom,
        )
    )
    return out


def write_fake_run(
    run_dir: str | Path, records: Sequence[dict[str, Any]] | None = None, **kw: Any
) -> Path:
    """Write run.json and records/<key>.json (atomically, as the studies do) under run_dir.

    Args:
        run_dir: created if missing.
        records: the records; default fake_records(**kw).
        **kw: passed to fake_records.

    Returns:
        run_dir as a Path.
    """
    run = Path(run_dir)
    (run / "records").mkdir(parents=True, exist_ok=True)
    recs = list(records) if records is not None else fake_records(**kw)
    _atomic_json(run / "run.json", {"command": "fake", "records": len(recs), **kw})
    for r in recs:
        key = record_key(r["design_id"], r["fidelity"], r["dataset"], r["seed"])
        _atomic_json(run / "records" / f"{key}.json", r)
    return run


def _atomic_json(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)
