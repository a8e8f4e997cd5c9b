"""Every design of a time-budgeted sweep's space: measured where trained, predicted where not.

``studies/run.py --budget 0.65M --time-budget 15m`` trains some of its 74 designs; this
module answers for all of them, at one *reference* fidelity: the sweep's rung with the most
designs trained (its cheapest). A design with ok records there is **measured**: its mean
val_acc over seeds with a 95% Clopper-Pearson interval over its validation images (pooled
over seeds). Every other design is **predicted**: :class:`analysis.surrogate.Surrogate` (a
Gaussian process over describe() features and, where committed zero-cost scores cover the
space, the scores) fitted on the measured designs, with the 95% interval of one seed's
val_acc (the model's uncertainty and the learnt seed noise). Its held-out coverage
(:func:`analysis.surrogate.cross_validate`, designs left out) says how often such an
interval held the measured value.

With fewer than ``MIN_FIT`` measured designs no surrogate is fitted: the designs are ranked
by the zero-cost ranker that did best on the trained tables (``width``: Kendall tau +0.741
on table 1.0 and +0.647 on table 1.1, docs/proxies.md), without an interval, and the answer
says so.

:func:`pick` chooses designs to train from the same predictions: the best predicted and the
most uncertain, in turn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

ZC_DIR = Path(__file__).resolve().parents[1] / "docs" / "proxies"  # committed scores
MIN_FIT = 4  # measured designs a surrogate is fitted on at least (a GP on fewer is a guess)
ZC_RANKER = "width"  # the best ranker of tables 1.0 and 1.1 (docs/proxies.md)
CONFIDENCE = 0.95


def committed_scores(design_ids: Sequence[str], dataset: str
                     ) -> tuple[pd.DataFrame | None, str | None]:
    """(zero-cost scores of ``design_ids``, the file they came from) from the first
    committed export (docs/proxies/zc-*.csv) on ``dataset`` that scores every one of them;
    (None, None) if none does."""
    from .proxy_ranks import read_scores

    want = set(design_ids)
    for path in sorted(ZC_DIR.glob("zc-*.csv")):
        try:
            scores = read_scores(path, dataset=dataset)
        except ValueError:  # another dataset, or several fidelities
            continue
        if want <= set(scores["design_id"]):
            return (scores[scores["design_id"].isin(want)].reset_index(drop=True),
                    f"docs/proxies/{path.name}")
    return None, None


def answer_space(candidates: Sequence[str], records: Sequence[Mapping[str, Any]], *,
                 dataset: str, scores: pd.DataFrame | None = None,
                 scores_source: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Every candidate, measured or predicted at the reference fidelity (module docstring).

    Returns:
        reference (fidelity), candidates, measured, predicted (counts), method (what the
        predictions are), heldout (the surrogate's cross-validation: designs, coverage,
        kendall; absent without a surrogate) and designs: one dict per candidate, best
        first, with design_id, kind ("measured" | "predicted"), val_acc, interval (95%,
        None for a zero-cost rank), seeds (measured) and rank.
    """
    ok = [r for r in records if r.get("status") == "ok" and r.get("val_acc") is not None
          and r.get("dataset") == dataset and r.get("design_id") in set(candidates)]
    ref = _reference(ok)
    at_ref = [r for r in ok if r["fidelity"] == ref]
    rows = {d: _measured(d, [r for r in at_ref if r["design_id"] == d])
            for d in dict.fromkeys(r["design_id"] for r in at_ref)}
    rest = [d for d in candidates if d not in rows]
    measured = len(rows)
    out: dict[str, Any] = {"reference": ref, "candidates": len(candidates),
                           "measured": measured, "predicted": len(rest)}
    failed = None
    if rest and len(rows) >= MIN_FIT:
        try:
            predicted, out["method"], out["heldout"] = _surrogate(at_ref, rest, dataset,
                                                                  scores, scores_source, seed)
            rows.update(predicted)
            rest = []
        except (ValueError, np.linalg.LinAlgError) as exc:  # e.g. a score not finite
            failed = " ".join(str(exc).split())[:160]
    if rest and scores is not None and ZC_RANKER in scores.columns:
        means = scores.groupby("design_id")[ZC_RANKER].mean()
        for d in rest:
            rows[d] = {"design_id": d, "kind": "predicted", "val_acc": None, "interval": None,
                       "zc": {ZC_RANKER: float(means[d])}}
        why = (f"the surrogate failed ({failed})" if failed else
               f"too few designs measured ({measured} < {MIN_FIT}) to fit the surrogate")
        out["method"] = (f"{why}: ranked by zero-cost {ZC_RANKER} alone ({scores_source}), "
                         "no interval")
    elif rest:
        for d in rest:
            rows[d] = {"design_id": d, "kind": "predicted", "val_acc": None, "interval": None}
        out["method"] = (f"not predicted: the surrogate failed ({failed})" if failed else
                         "not predicted: too few designs measured and no zero-cost scores")
    ordered = sorted(rows.values(), key=_order)
    for i, row in enumerate(ordered, 1):
        row["rank"] = i
    out["designs"] = ordered
    return out


def _order(row: Mapping[str, Any]) -> tuple:
    """Best first: by val_acc (measured or predicted); zero-cost-ranked designs after, by
    their score; ties by id."""
    if row["val_acc"] is not None:
        return (0, -row["val_acc"], row["design_id"])
    zc = (row.get("zc") or {}).get(ZC_RANKER)
    return (1, -(zc if zc is not None else -math.inf), row["design_id"])


def _reference(ok: Sequence[Mapping[str, Any]]) -> str | None:
    """The fidelity with the most designs among ``ok`` (ties: the first seen)."""
    designs: dict[str, set[str]] = {}
    for r in ok:
        designs.setdefault(r["fidelity"], set()).add(r["design_id"])
    return max(designs, key=lambda f: len(designs[f])) if designs else None


def _measured(design: str, recs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean val_acc over seeds, with the Clopper-Pearson interval of the pooled validation
    images (the seeds share them: the interval is of the images, not the seeds)."""
    vals = [float(r["val_acc"]) for r in recs]
    mean = sum(vals) / len(vals)
    n = _val_images(recs[0].get("fidelity_config") or {})
    interval = None
    if n:
        k = sum(round(v * n) for v in vals)
        ci = sps.binomtest(k, n * len(vals)).proportion_ci(CONFIDENCE, "exact")
        interval = [float(ci.low), float(ci.high)]
    return {"design_id": design, "kind": "measured", "val_acc": mean, "interval": interval,
            "seeds": sorted(int(r["seed"]) for r in recs)}


def _val_images(config: Mapping[str, Any]) -> int | None:
    """Validation images of a trial (as ``studies.rungs.rung_words`` counts them)."""
    train = config.get("train_size")
    if not train:
        return None
    return max(1, round(float(config.get("val_fraction", 0.1)) * int(train)))


def _surrogate(at_ref: Sequence[Mapping[str, Any]], rest: Sequence[str], dataset: str,
               scores: pd.DataFrame | None, source: str | None, seed: int
               ) -> tuple[dict[str, dict[str, Any]], str, dict[str, Any]]:
    """Predictions of ``rest`` by a surrogate fitted on ``at_ref``, what it is, and its
    held-out coverage."""
    from .surrogate import cross_validate

    model, bench, fidelity = fit(at_ref, dataset, scores, seed)
    z = float(sps.norm.ppf(0.5 + CONFIDENCE / 2))
    out = {}
    for d in rest:
        p = model.query(d)
        half = z * math.hypot(p.val_acc_std, p.seed_std)  # one seed's run, as measured
        out[d] = {"design_id": d, "kind": "predicted", "val_acc": p.val_acc,
                  "interval": [p.val_acc - half, p.val_acc + half],
                  "std": math.hypot(p.val_acc_std, p.seed_std)}
    n = len(model.design_ids)
    cv = cross_validate(bench, scores=scores, fidelity=fidelity, dataset=dataset,
                        folds=min(10, n), n_boot=200, seed=seed)
    covered = round(cv["coverage"] * cv["n_designs"]) if cv["coverage"] == cv["coverage"] \
        else None
    heldout = {"designs": cv["n_designs"], "folds": cv["folds"], "covered": covered,
               "coverage": cv["coverage"], "kendall": cv["kendall"]}
    features = "describe() features" + (f" and zero-cost scores ({source})"
                                         if scores is not None else "")
    return out, (f"surrogate (Gaussian process over {features}) fitted on the {n} measured "
                 "designs; interval: 95% of one seed's val_acc"), heldout


def fit(at_ref: Sequence[Mapping[str, Any]], dataset: str, scores: pd.DataFrame | None,
        seed: int = 0) -> tuple[Any, Any, str]:
    """(Surrogate, its Benchmark, the fidelity) fitted on the ok records ``at_ref`` of one
    fidelity."""
    from .benchmark import Benchmark
    from .surrogate import Surrogate

    bench = Benchmark.from_frame([dict(r) for r in at_ref])
    fidelity = str(at_ref[0]["fidelity"])
    return (Surrogate.fit(bench, scores=scores, fidelity=fidelity, dataset=dataset,
                          seed=seed), bench, fidelity)


def pick(candidates: Sequence[str], n: int, records: Sequence[Mapping[str, Any]], *,
         dataset: str, scores: pd.DataFrame | None = None, seed: int = 0) -> list[str] | None:
    """``n`` of ``candidates`` (not yet measured) to train next, chosen by a surrogate
    fitted on ``records`` (ok, one fidelity): the best predicted and the most uncertain
    (largest predictive std), in turn, in the candidates' order. None when there are fewer
    than ``MIN_FIT`` measured designs to fit on."""
    ok = [r for r in records if r.get("status") == "ok" and r.get("val_acc") is not None]
    if len({r["design_id"] for r in ok}) < MIN_FIT or n <= 0:
        return None
    model, _, _ = fit(ok, dataset, scores, seed)
    infos = [model.query(d) for d in candidates]
    mean = np.array([p.val_acc for p in infos])
    std = np.array([p.val_acc_std for p in infos])
    best, unsure = list(np.argsort(-mean, kind="stable")), list(np.argsort(-std, kind="stable"))
    chosen: list[int] = []
    while len(chosen) < min(n, len(candidates)):
        for order in (best, unsure):
            nxt = next((i for i in order if i not in chosen), None)
            if nxt is not None and len(chosen) < n:
                chosen.append(int(nxt))
    keep = set(chosen)
    return [d for i, d in enumerate(candidates) if i in keep]
