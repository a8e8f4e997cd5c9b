"""The rungs of a time-budgeted sweep: their fidelities, what fits memory, the refitted cost
model, and which designs the next rung trains.

The driver (``studies.time_budget``) runs rungs; ``studies.halving`` plans them from numbers;
this module holds what connects the two to fidelities, records and the cost model. No Ray;
torch only through the calibration the driver asks for.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from evaluators.catalog import DATASETS
from evaluators.cost_model import refit
from evaluators.fidelity import Fidelity, with_changes
from evaluators.memory import trial_memory_bytes
from evaluators.record import trial_key, utc_now, write_json_atomic
from studies import halving as hv
from studies.plan import Plan
from studies.store import RecordStore

MEMORY_ENV = "IGCBENCH_TRIAL_MEMORY_GB"  # per-trial memory limit; default: a share of the
#                                          machine's available memory (see trial_memory_limit)



@dataclasses.dataclass
class Rung:
    """One rung of this sweep: a ladder index, its fidelity, and the designs it trains."""

    ladder: int
    fidelity: Fidelity
    designs: list[str]
    decided: str  # how the designs were chosen, for the report

    def to_dict(self) -> dict[str, Any]:
        return {"ladder": self.ladder, "fidelity": self.fidelity.name,
                "fidelity_config": self.fidelity.to_dict(), "designs": self.designs,
                "decided": self.decided}

def ladder_fidelities(base: Fidelity, dataset: str) -> list[Fidelity]:
    """The fidelities of :func:`studies.halving.rung_configs` below ``base`` (most
    expensive first), named by ``with_changes``."""
    configs = _configs(base, dataset)
    if not configs:
        raise ValueError(f"--fidelity {base.name} trains fewer than {hv.min_steps(dataset)} "
                         f"SGD steps on {dataset}: no rung for --time-budget (a rung trains "
                         "at least that many; choose a larger fidelity)")
    return [with_changes(base, **c["changes"]) for c in configs]

def _configs(base: Fidelity, dataset: str) -> list[dict[str, Any]]:
    return hv.rung_configs(base.to_dict(), dataset_train=DATASETS[dataset].train_size,
                           dataset_test=DATASETS[dataset].test_size,
                           min_steps=hv.min_steps(dataset))

def ladder_markdown(base: Fidelity, dataset: str) -> str:
    """The ladder below ``base`` as the markdown table docs/studies.md shows."""
    lines = ["| rung | trains | validation images | test images | fidelity (record key) |",
             "| --- | --- | --- | --- | --- |"]
    configs = _configs(base, dataset)
    for i, (c, f) in enumerate(zip(configs, ladder_fidelities(base, dataset), strict=True)):
        lines.append(f"| {i} | {rung_words(f)} | {c['val_images']:,} | "
                     f"{c['test_images']:,} | `{f.name}` |")
    return "\n".join(lines)

def trial_memory_limit(workers: int) -> float:
    """Bytes one trial may use: ``$IGCBENCH_TRIAL_MEMORY_GB``, else 80% of the memory
    available now, shared by the trials that run at once."""
    text = os.environ.get(MEMORY_ENV)
    if text:
        try:
            value = float(text)
            if value > 0:
                return value * 2**30
        except ValueError:
            pass
        raise ValueError(f"${MEMORY_ENV}={text!r}: expected a number of GB > 0")
    import psutil

    return 0.8 * psutil.virtual_memory().available / max(workers, 1)

def screen_memory(design_ids: tuple[str, ...] | list[str], fidelity: Fidelity,
                  dataset: str, num_classes: int,
                  limit: float) -> tuple[list[str], dict[str, float]]:
    """(designs whose predicted peak memory at ``fidelity`` fits ``limit``, {skipped
    design: predicted bytes}). Memory does not depend on a rung's image counts."""
    kept, skipped = [], {}
    for d in design_ids:
        need = trial_memory_bytes(d, fidelity.to_dict(), dataset, num_classes=num_classes)
        if need <= limit:
            kept.append(d)
        else:
            skipped[d] = need
    return kept, skipped

def refit_calibration(calibration: Any, records: list[dict[str, Any]]) -> Any:
    """``calibration`` with its per-trial overhead and compute scale fitted to ok records:
    wall_s ~ overhead + scale x compute seconds, both >= 0, each record weighted by its own
    time (relative errors, as ``evaluators.calibrate`` fits). The cost model's own
    ``refit`` keeps the overhead at 5 s (CIFAR trials here) and fits the scale alone, which
    misjudges trials of a few seconds (synthetic data, another machine); it is used when
    the records do not pin two parameters (computes within 1.5x). Fewer than 3 records:
    the calibration unchanged.

    Example:
        >>> from evaluators.cost_model import Calibration, compute_seconds
        >>> cal = Calibration(machine="m", torch_version="t", device="cpu", threads=1,
        ...                   paths=("fused", "fused"), resolution=8, batch_size=64,
        ...                   train=(0.0, 1e-10, 1e-4), eval=(0.0, 1e-11, 1e-5))
        >>> cfg = {"train_size": 1000, "epochs": 1, "resolution": 8, "latency_reps": 0}
        >>> recs = [{"design_id": d, "fidelity_config": cfg, "dataset": "synthetic",
        ...          "status": "ok", "num_classes": 10,
        ...          "wall_s": 2.0 + 3.0 * compute_seconds(d, cfg, "synthetic", cal)}
        ...         for d in ("plain8-c16-k1.4.4", "plain8-c64-k1.64", "plain8-c144-k1.12.12")]
        >>> fitted = refit_calibration(cal, recs)
        >>> round(fitted.overhead_s, 3), round(fitted.scale, 3), fitted.scale_records
        (2.0, 3.0, 3)
    """
    import numpy as np
    from scipy.optimize import nnls

    from evaluators.cost_model import compute_seconds

    pairs = []
    for r in records:
        if r.get("status") == "ok" and r.get("wall_s") and r.get("fidelity_config"):
            c = compute_seconds(r["design_id"], r["fidelity_config"], r["dataset"],
                                calibration, num_classes=r.get("num_classes"))
            pairs.append((c, float(r["wall_s"])))
    computes = [c for c, _ in pairs]
    if len(pairs) < 3:  # one trial's warm-up (a fresh worker's first) would set the level
        return calibration
    if min(computes) <= 0 or max(computes) < 1.5 * min(computes):
        return refit(calibration, records)
    x = np.array([[1.0, c] for c, _ in pairs])
    y = np.array([w for _, w in pairs])
    (overhead, scale), _ = nnls(x / y[:, None], np.ones_like(y))
    if not scale > 0:
        return refit(calibration, records)
    return dataclasses.replace(calibration, overhead_s=float(overhead), scale=float(scale),
                               scale_records=len(pairs))

def decide_next(rungs: list[Rung], k: int, planned: list[int], ladder: list[Fidelity],
                 records: list[dict[str, Any]], *, costs_for: Any, seeds: int, workers: int,
                 left: float, rung_overhead_s: float = 0.0,
                 max_trial_s: float = math.inf) -> Rung | None:
    """The rung after ``rungs[k]`` with its designs (the best of rung k that fit the time
    left, the planned rungs after it included, each trial there predicted within
    ``max_trial_s``), or None: the ladder's top, or nothing fits."""
    if k + 1 < len(rungs):  # decided by an earlier run of the same command
        return None
    current = rungs[k].ladder
    # The plan's rungs above this one; past the plan's top, the next rung of the ladder
    # when the time left allows (the machine ran faster than predicted).
    later = [r for r in planned if r < current] or ([current - 1] if current > 0 else [])
    if not later:
        return None
    nxt = later[0]
    ranked = hv.rank_designs(records)
    ranked = [r for r, s in zip(ranked, costs_for(ladder[nxt], [d for d, _, _ in ranked]),
                                strict=True) if s <= max_trial_s]
    if not ranked:
        return None
    ranked_ids = [d for d, _, _ in ranked]
    # The candidates' own predicted times, best first: the best designs of a rung may be
    # the widest (slowest), and the mean over every design would fit too many of them.
    trial_s = costs_for(ladder[nxt], ranked_ids)
    after = [costs_for(ladder[r], ranked_ids) for r in later[1:]]
    planned_n = math.ceil(len(rungs[k].designs) / hv.ETA)
    n = 0
    for drop in range(len(after) + 1):  # drop planned rungs from the top, not the next one
        n = hv.next_rung_designs(planned=planned_n, seeds=seeds,
                                 workers=workers, seconds=left, trial_s=trial_s,
                                 later=after[:len(after) - drop],
                                 rung_overhead_s=rung_overhead_s)
        if n:
            break
    if n == 0:
        return None
    chosen = [d for d, _, _ in ranked[:n]]
    return Rung(nxt, ladder[nxt], chosen,
                f"the best {n} of rung {current}'s {len(ranked)} by validation accuracy")

def rung_records(store: RecordStore, rung: Rung, plan: Plan) -> list[dict[str, Any]]:
    out = []
    for d in rung.designs:
        for s in plan.seeds:
            rec = store.read(trial_key(d, rung.fidelity.name, plan.dataset, s))
            if rec is not None:
                out.append(rec)
    return out

def all_records(store: RecordStore, rungs: list[Rung], plan: Plan) -> list[dict[str, Any]]:
    return [r for rung in rungs for r in rung_records(store, rung, plan)]

def n_designs(n: int) -> str:
    return f"{n} design" + ("" if n == 1 else "s")

def rung_words(f: Fidelity) -> str:
    """``900 images x 1 epoch at 8x8``."""
    val = max(1, round(f.val_fraction * (f.train_size or 0)))
    train = (f.train_size or 0) - val
    return (f"{train:,} images x {f.epochs} epoch{'s' if f.epochs > 1 else ''} at "
            f"{f.resolution}x{f.resolution}")

def read_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def rung_from(data: dict[str, Any], ladder: list[Fidelity]) -> Rung:
    return Rung(int(data["ladder"]), ladder[int(data["ladder"])], list(data["designs"]),
                str(data["decided"]))


def write_state(path: Path, ladder: list[Fidelity], planned: list[int], rungs: list[Rung],
                 skipped: dict[str, float], limit: float,
                 answer: dict[str, Any] | None) -> None:
    write_json_atomic(path, {
        "ladder": [{"fidelity": f.name, "fidelity_config": f.to_dict()} for f in ladder],
        "planned": planned, "rungs": [r.to_dict() for r in rungs], "skipped_memory": skipped,
        "memory_limit_bytes": limit, "answer": answer, "updated": utc_now()})


def fail_leftovers(storage_url: str, study_name: str) -> None:
    """FAIL the RUNNING trials an interrupted run of this rung left in its study.

    One driver runs a time-budgeted sweep, so a RUNNING trial at a rung's start is a
    leftover; left alone, the searcher waits for it (30 s until its heartbeat is stale,
    forever if it never had one), and while Tune waits on the searcher it does not check
    its time budget.
    """
    import optuna

    from studies import study as st

    storage = st.open_storage(storage_url)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no study yet: the rung never ran
        return
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        st.fail_trial(storage, t._trial_id, "left RUNNING by an interrupted run")
