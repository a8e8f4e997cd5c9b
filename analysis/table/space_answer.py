"""Every design of a time-budgeted sweep's space: measured where trained, predicted where not.

``studies/run.py --budget 0.65M --time-budget 15m`` trains some of its 74 designs; this
module answers for all of them, at one *reference* fidelity: the sweep's rung with the most
designs trained (its cheapest). A design with ok records there is **measured**: its mean
val_acc over seeds with a 95% Clopper-Pearson interval over its validation images (pooled
over seeds). Every other design is **predicted**: :class:`analysis.table.surrogate.Surrogate` (a
Gaussian process over describe() features and, where committed zero-cost scores cover the
space, the scores) fitted on the measured designs, with the 95% interval of one seed's
val_acc (the model's uncertainty, the learnt seed noise and the binomial noise of the
validation images). Its held-out coverage (designs left out in up to 10 folds, the same
intervals) says how often such an interval held the measured value.

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

ZC_DIR = Path(__file__).resolve().parents[2] / "docs" / "proxies"  # committed scores
MIN_FIT = 4  # measured designs a surrogate is fitted on at least (a GP on fewer is a guess)
ZC_RANKER = "width"  # the best ranker of tables 1.0 and 1.1 (docs/proxies.md)
CONFIDENCE = 0.95


def committed_scores(design_ids: Sequence[str], dataset: str
                     ) -> tuple[pd.DataFrame | None, str | None]:
    """(zero-cost scores of ``design_ids``, the file they came from) from the first
    committed export (docs/proxies/zc-*.csv) on ``dataset`` that scores every one of them;
    (None, None) if none does."""
    from analysis.proxies.ranks import read_scores

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
    """Predictions of ``rest`` by a Gaussian process of val_acc fitted on ``at_ref``
    (``analysis.table.surrogate_model``, as :class:`analysis.table.surrogate.Surrogate` fits
    it), what it is, and the held-out coverage of the same intervals."""
    from analysis.table.benchmark import Benchmark
    from analysis.table.surrogate_model import (
        feature_matrix,
        fit_one,
        noise_std,
        predict_latent,
        training_rows,
        zc_features,
    )
    from evaluators.record import describe_info

    fidelity = str(at_ref[0]["fidelity"])
    rows = training_rows(Benchmark.from_frame([dict(r) for r in at_ref]), fidelity, dataset)
    zc = zc_features(scores) if scores is not None else None
    X, _ = feature_matrix(rows["info"], zc, rows["design_id"])
    y, ids = rows["val_acc"].to_numpy(float), rows["design_id"].to_numpy()
    n_val = _val_images(at_ref[0].get("fidelity_config") or {})
    info0 = rows["info"].iloc[0]
    infos = [describe_info(d, info0.get("num_classes"), info0.get("input_size")) for d in rest]
    Xq, _ = feature_matrix(pd.Series(infos), zc, pd.Series(list(rest)))
    model = fit_one("gp", X, y, seed)
    mean, sd = predict_latent(model, Xq)
    out = {}
    for d, m, s in zip(rest, mean, sd, strict=True):
        half = Z * _spread(s, noise_std(model), m, n_val, 1)
        out[d] = {"design_id": d, "kind": "predicted", "val_acc": float(m),
                  "interval": [float(m - half), float(m + half)], "std": float(s)}
    heldout = _held_out(X, y, ids, n_val, seed)
    features = "describe() features" + (f" and zero-cost scores ({source})"
                                         if scores is not None else "")
    return out, (f"surrogate (Gaussian process over {features}) fitted on the "
                 f"{len(set(ids))} measured designs; interval: 95% of one seed's val_acc on "
                 f"{n_val or '?'} validation images"), heldout


Z = float(sps.norm.ppf(0.5 + CONFIDENCE / 2))


def _spread(latent_sd: float, seed_sd: float, acc: float, n_val: int | None,
            seeds: int) -> float:
    """The standard deviation of a mean over ``seeds`` measured values around the predicted
    mean: the model's uncertainty, the learnt seed noise and the binomial noise of the
    validation images (which a GP fitted on few designs may learn as nearly none)."""
    p = min(max(acc, 0.0), 1.0)
    binom = p * (1 - p) / n_val if n_val else 0.0
    return math.sqrt(latent_sd**2 + (seed_sd**2 + binom) / seeds)


def _held_out(X: np.ndarray, y: np.ndarray, ids: np.ndarray, n_val: int | None,
              seed: int) -> dict[str, Any]:
    """Designs left out in up to 10 folds (shuffled from ``seed``): how many measured means
    the 95% interval of the model fitted on the others covered, and Kendall's tau."""
    from analysis.table.surrogate_model import fit_one, noise_std, predict_latent

    designs = np.array(sorted(set(ids)))
    designs = designs[np.random.default_rng(seed).permutation(len(designs))]
    folds = min(10, len(designs))
    covered, pred, meas = 0, [], []
    for k in range(folds):
        held = set(designs[k::folds])
        train = np.array([i not in held for i in ids])
        m = fit_one("gp", X[train], y[train], seed)
        for d in held:
            rows = ids == d
            mu, sd = predict_latent(m, X[rows][:1])
            truth = float(y[rows].mean())
            spread = _spread(float(sd[0]), noise_std(m), float(mu[0]), n_val,
                             int(rows.sum()))
            covered += abs(float(mu[0]) - truth) <= Z * spread
            pred.append(float(mu[0]))
            meas.append(truth)
    tau = float(sps.kendalltau(pred, meas).statistic) if len(pred) > 2 else math.nan
    tau = None if math.isnan(tau) else tau  # constant predictions: no tau (JSON has no NaN)
    return {"designs": len(designs), "folds": folds, "covered": int(covered),
            "coverage": covered / len(designs), "kendall": tau}


def fit(at_ref: Sequence[Mapping[str, Any]], dataset: str, scores: pd.DataFrame | None,
        seed: int = 0) -> tuple[Any, Any, str]:
    """(Surrogate, its Benchmark, the fidelity) fitted on the ok records ``at_ref`` of one
    fidelity."""
    from analysis.table.benchmark import Benchmark
    from analysis.table.surrogate import Surrogate

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
