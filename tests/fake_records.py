"""A tiny fake benchmark for the tests of the analysis: result records with planted effects.

The describe() fields are the real ``search_space.describe()`` of each design (as the
evaluators record it), so the analysis is tested on numbers the system produces; only the
accuracies, curves and timings are planted. Records are written as the studies write them
(evaluators.record), so loading them is loading a real run directory.

Example:
    >>> from fake_records import describe, record
    >>> d = describe(144, (1, 12, 12))
    >>> d["id"], d["params"], d["block_params"], d["complementarity"]
    ('plain8-c144-k1.12.12', 52372, 4752, 'strict')
    >>> record(d, 0.5, fidelity="cpu", dataset="cifar10", seed=0)["test_acc"]
    0.5
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import search_space as ss
from evaluators.record import describe_info, record_key, records_dir, write_json_atomic

BUDGET = 4752  # block weights of Table 2's IGCV2 C=144, K=(1, 12, 12)
FIDELITY_CONFIGS = {
    "smoke": {"epochs": 1, "train_images": 512},
    "cpu": {"epochs": 3, "train_images": 10000},
    "proxy": {"epochs": 30, "train_images": 45000},
    "paper": {"epochs": 400, "train_images": 50000},
}


def describe(
    width: int,
    K: Sequence[int],
    *,
    net: str = "plain8",
    depth: int = 8,
    stem: int = 0,
    num_classes: int = 100,
) -> dict[str, Any]:
    """search_space.describe() of a plain8 net, or of a res net (stages at width, 2x and 4x
    with the same K), built of one kind of block, as a record holds it.

    K[0] is the 3x3 convolution's branch size (1: channel-wise, the separated form), K[1:]
    those of the group 1x1 convolutions.
    """
    head = "plain8" if net == "plain8" else f"res{depth}"
    design_id = f"{head}-c{width}-k{'.'.join(map(str, K))}" + (f"-stem{stem}" if stem else "")
    return describe_info(design_id, num_classes)


def widest(tail: Sequence[int] | int, L: int, budget: int = BUDGET) -> int:
    """Largest C, divisible by every branch size, whose separated block fits the budget.

    ``tail`` is the 1x1 branch sizes, or an int K for K repeated L - 1 times; 0 means
    balanced: K = ceil(C^(1/(L-1))) chosen per C (the balance condition of Sec. 3.2, rounded
    up so that prod(K) >= C and the composed kernel is dense).
    """
    for C in range(budget // ss.theory.S3x3, 1, -1):
        ks = [tail or _balanced(C, L)] * (L - 1) if isinstance(tail, int) else list(tail)
        if all(C % k == 0 for k in ks) and ss.params_q((1, *ks), C) <= budget:  # eq. 7
            return C
    raise ValueError(f"no width fits budget {budget} with L={L}, tail={tail}")


def balanced_design(L: int, budget: int = BUDGET, **kw: Any) -> dict[str, Any]:
    """The Figure 3 design at L: the widest balanced separated block under the budget."""
    if L == 2:
        C = widest(0, 2, budget)
        return describe(C, (1, C), **kw)  # L = 2 is the Xception block
    C = widest(0, L, budget)
    return describe(C, (1, *[_balanced(C, L)] * (L - 1)), **kw)


def _balanced(C: int, L: int) -> int:
    """Eq. 11's K_2 = ... = K_L = C^(1/(L-1)), rounded up (prod K >= C: a dense kernel)."""
    return max(1, math.ceil(ss.balanced_branch_size(C, L) - 1e-9))


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
    """Write run.json and records/<key>.json under run_dir, as the studies write them.

    Args:
        run_dir: created if missing.
        records: the records; default fake_records(**kw).
        **kw: passed to fake_records.

    Returns:
        run_dir as a Path.
    """
    run = Path(run_dir)
    records_dir(run).mkdir(parents=True, exist_ok=True)
    recs = list(records) if records is not None else fake_records(**kw)
    write_json_atomic(run / "run.json", {"command": "fake", "records": len(recs), **kw})
    for r in recs:
        write_json_atomic(records_dir(run) / f"{record_key(r)}.json", r)
    return run
