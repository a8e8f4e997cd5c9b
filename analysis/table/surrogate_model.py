"""The model under :mod:`analysis.table.surrogate`: a design's features, the rows a surrogate is
fitted on, and the fitting and prediction of one target (a Gaussian process, or gradient
boosting for comparison), each with one BLAS thread.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from analysis.table.benchmark import Benchmark
from evaluators.scores import SURROGATE_LOG, SURROGATE_RAW

DESCRIBE_FEATURES = ("log_params", "log_flops", "log_width", "L", "log_non_sparsity",
                     "density", "log_balance", "log_branch")
ZC_FEATURES = tuple(f"zc_{n}" for n in (*SURROGATE_LOG, *SURROGATE_RAW))
TARGETS = ("val_acc", "test_acc")
MODELS = ("gp", "gbr")


def design_features(info: Mapping[str, Any]) -> dict[str, float]:
    """The describe() features of a design (its first stage's block for the K fields)."""
    K = info["K"][0] if info["K"] and isinstance(info["K"][0], list | tuple) else info["K"]
    ones = [k for k in K[1:]] or [1]
    return {
        "log_params": math.log(info["params"]), "log_flops": math.log(info["flops"]),
        "log_width": math.log(info["width"]), "L": float(info["L"]),
        "log_non_sparsity": math.log(info["non_sparsity"]), "density": float(info["density"]),
        "log_balance": math.log(info["balance_deviation"]),
        "log_branch": float(np.mean(np.log(ones))),
    }  # fmt: skip


def zc_features(scores: pd.DataFrame) -> pd.DataFrame:
    """Per design, the zero-cost features (means over seeds; logs of SURROGATE_LOG): a frame indexed
    by design_id with the columns of ZC_FEATURES that ``scores`` has
    (analysis.proxies.ranks.read_scores)."""
    means = scores.groupby("design_id")[[n for n in (*SURROGATE_LOG, *SURROGATE_RAW)
                                         if n in scores.columns]].mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        for n in (n for n in SURROGATE_LOG if n in means.columns):
            means[n] = np.log(means[n].where(means[n] > 0))
    return means.rename(columns=lambda n: f"zc_{n}")


def training_rows(bench: Benchmark, fidelity: str, dataset: str) -> pd.DataFrame:
    """One row per ok seed of the slice: design_id, seed, info (describe()), val_acc,
    test_acc, and per epoch ``curve_val@e`` and ``curve_logsec@e`` (log epoch seconds)."""
    out = []
    for d in bench.designs(fidelity=fidelity, dataset=dataset):
        entry = bench.query(d, fidelity=fidelity, dataset=dataset)
        for s in entry.seeds:
            e = bench.query(d, fidelity=fidelity, dataset=dataset, seed=s)
            row = {"design_id": d, "seed": s, "info": dict(e.info), "val_acc": e.val_acc,
                   "test_acc": e.test_acc}
            if e.curve is not None:
                for i, (v, sec) in enumerate(zip(e.curve.val_acc, e.curve.seconds,
                                                 strict=True)):
                    row[f"curve_val@{i + 1}"] = v
                    row[f"curve_logsec@{i + 1}"] = math.log(sec) if sec > 0 else math.nan
            out.append(row)
    if not out:
        raise ValueError(f"no ok record at {fidelity}/{dataset} to fit a surrogate on")
    return pd.DataFrame(out)


def is_target(name: str) -> bool:
    """A column of :func:`training_rows` that a surrogate predicts."""
    return name in TARGETS or name.startswith(("curve_val@", "curve_logsec@"))


def feature_matrix(infos: pd.Series, zc: pd.DataFrame | None, ids: pd.Series
            ) -> tuple[np.ndarray, list[str]]:
    """The features of each design (``infos``: describe() dicts; ``ids`` their ids, for
    the zero-cost features of ``zc``) as a matrix, and the features' names."""
    feats = pd.DataFrame([design_features(i) for i in infos])[list(DESCRIBE_FEATURES)]
    names = list(DESCRIBE_FEATURES)
    if zc is not None:
        missing = sorted(set(ids) - set(zc.index))
        if missing:
            raise ValueError(
                f"no zero-cost scores for {len(missing)} designs ({', '.join(missing[:3])}); "
                "compute them (python -m studies.zero_cost --designs ...) or fit without "
                "scores")
        z = zc.loc[list(ids)].reset_index(drop=True)
        feats = pd.concat([feats.reset_index(drop=True), z], axis=1)
        names += list(zc.columns)
    X = feats.to_numpy(float)
    if not np.isfinite(X).all():
        bad = [names[j] for j in np.flatnonzero(~np.isfinite(X).all(axis=0))]
        raise ValueError(f"non-finite features {bad}: a zero-cost score failed for a design")
    return X, names


def fit_one(model: str, X: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """One target's model, fitted with one BLAS thread: the GP's small dense algebra is
    15x slower with a thread per core on a busy 2-core machine (measured: 67 s against
    4.8 s for 153 rows)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ok = np.isfinite(y)
    X, y = X[ok], y[ok]
    if model == "gp":
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = (ConstantKernel(1.0, (1e-3, 1e3))
                  * Matern(length_scale=np.ones(X.shape[1]), length_scale_bounds=(1e-2, 1e3),
                           nu=2.5)
                  + WhiteKernel(0.1, (1e-6, 1e1)))
        reg = GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=seed)
    elif model == "gbr":
        from sklearn.ensemble import GradientBoostingRegressor

        reg = GradientBoostingRegressor(n_estimators=200, max_depth=2, learning_rate=0.05,
                                        subsample=0.8, random_state=seed)
    else:
        raise ValueError(f"unknown model {model!r}; accepted: {', '.join(MODELS)}")
    pipe = make_pipeline(StandardScaler(), reg)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # convergence notes of the kernel's bounds
        pipe.fit(X, y)
    pipe.noise_std_ = _residual_noise(pipe, X, y)
    return pipe


def _residual_noise(pipe: Any, X: np.ndarray, y: np.ndarray) -> float:
    """The seed noise: the GP's white-noise level (in y's units); for boosting, the spread of
    the residuals about each design's fitted value."""
    reg = pipe[-1]
    if hasattr(reg, "kernel_"):
        return math.sqrt(reg.kernel_.k2.noise_level) * float(reg._y_train_std)
    return float(np.std(y - pipe.predict(X), ddof=1))


def noise_std(pipe: Any) -> float:
    """The seed-to-seed standard deviation a fitted model learnt (:func:`fit_one`)."""
    return float(pipe.noise_std_)


def predict_latent(pipe: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the latent function (the seed noise taken out)."""
    reg = pipe[-1]
    Xs = pipe[:-1].transform(X)
    if hasattr(reg, "kernel_"):
        with threadpool_limits(1):
            mean, std = reg.predict(Xs, return_std=True)
        var = np.maximum(std**2 - pipe.noise_std_**2, 1e-12)
        return mean, np.sqrt(var)
    # Boosting gives a point prediction only: no uncertainty (NaN), which is one reason
    # the GP is the surrogate.
    return reg.predict(Xs), np.full(len(Xs), np.nan)
