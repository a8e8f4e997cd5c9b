"""A surrogate of the table: predicted accuracy, with an uncertainty, for designs nobody trained.

As NAS-Bench-301 and JAHS-Bench-201 answer queries for the designs of a space their tables
do not hold, :class:`Surrogate` is fitted on one (fidelity, dataset) of a table and answers
:meth:`Surrogate.query` with a :class:`Prediction` whose ``kind`` is ``"surrogate"``: the
predicted mean over seeds of ``val_acc`` and ``test_acc`` with a standard deviation, never
mistaken for a measured :class:`analysis.table.index.Entry`. :class:`SurrogateBenchmark`
answers from the table where it holds the design and from the surrogate elsewhere, and
:meth:`Surrogate.replay_table` makes a table that ``analysis.replay.simulate`` runs on.

Model: a Gaussian process per target (scikit-learn ``GaussianProcessRegressor``; a constant
times a Matern-5/2 kernel with one length scale per feature, plus a white-noise kernel for
the seed-to-seed noise; standardised features, normalised targets). Chosen over gradient
boosting because (1) a table of this project holds 50-70 designs, where a GP is at home and
boosted trees overfit, (2) its predictive standard deviation is the uncertainty a query
must give, without an ensemble or quantile losses, and it grows, as it should, away from the
designs it was fitted on, (3) the white-noise term separates what seeds change from what the
design does. :func:`cross_validate` reports both models held out by design, so the choice
is checked on each table (docs/proxies.md).

Features (:func:`design_features`): from ``describe()``, log params, log multiply-adds, log
width, L, log non-sparsity, density, log balance deviation, the log mean branch size of the
1x1 convolutions; with ``zero_cost=True`` also the zero-cost scores' means over seeds
(synflow, snip, grad_norm on a log scale; naswot, jacob_cov, zen, theory as they are), for
which a query of an untrained design needs its scores (``python -m studies.zero_cost``).

Example:
    >>> from analysis.table.benchmark import Benchmark
    >>> bench = Benchmark.load(Path(__file__).parents[2] / "releases" / "igcbench-1.0.json")
    >>> s = Surrogate.fit(bench)
    >>> p = s.query("plain8-c80-k1.2")            # not in the 10k table (10,294 params)
    >>> p.kind, p.in_table, 0.3 < p.val_acc < 0.45, 0 < p.val_acc_std < 0.05
    ('surrogate', False, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path  # noqa: F401 (the example names it)
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import stats
from analysis.replay.table import ReplayTable
from analysis.table.benchmark import Benchmark
from analysis.table.index import TableKeyError
from analysis.table.surrogate_model import (  # noqa: F401 (features and targets are public here too)
    DESCRIBE_FEATURES,
    MODELS,
    TARGETS,
    ZC_FEATURES,
    design_features,
    feature_matrix,
    fit_one,
    is_target,
    noise_std,
    predict_latent,
    training_rows,
    zc_features,
)
from evaluators.record import describe_info


@dataclass(frozen=True, eq=False)
class Prediction:
    """A surrogate's answer: predicted, not measured (``kind == "surrogate"``).

    ``val_acc``/``test_acc`` are the predicted means over seeds; ``*_std`` the standard
    deviation of that prediction (the model's uncertainty, not the seeds'), ``*_interval``
    its 95% interval; ``seed_std`` the spread one seed's run would add. ``in_table`` says
    whether the surrogate was fitted on this design's records.
    """

    design_id: str
    fidelity: str
    dataset: str
    val_acc: float
    val_acc_std: float
    test_acc: float
    test_acc_std: float
    seed_std: float
    in_table: bool
    info: Mapping[str, Any] = field(repr=False)
    kind: str = "surrogate"

    @property
    def val_acc_interval(self) -> tuple[float, float]:
        return _interval(self.val_acc, self.val_acc_std)

    @property
    def test_acc_interval(self) -> tuple[float, float]:
        return _interval(self.test_acc, self.test_acc_std)

    @property
    def params(self) -> float | None:
        return self.info.get("params")

    def metric(self, name: str) -> Any:
        """A field of this answer or of its describe() info, by name (as Entry.metric)."""
        if name in ("val_acc", "test_acc", "val_acc_std", "test_acc_std", "seed_std"):
            return getattr(self, name)
        if name in self.info:
            return self.info[name]
        raise TableKeyError(f"no metric {name!r} in a surrogate's prediction")


def _interval(mean: float, std: float) -> tuple[float, float]:
    z = float(sps.norm.ppf(0.5 + stats.CONFIDENCE / 2))
    return mean - z * std, mean + z * std


class Surrogate:
    """Gaussian processes fitted on one (fidelity, dataset) of a table. Build with :meth:`fit`.

    Attributes:
        fidelity, dataset: the slice it was fitted on.
        design_ids: the designs it was fitted on.
        features: the feature names, in order.
        epochs: epochs of the table's curves (the replay table's).
    """

    def __init__(self, models: dict[str, Any], *, fidelity: str, dataset: str,
                 design_ids: Sequence[str], features: Sequence[str], num_classes: int | None,
                 input_size: int | None, epochs: int, zc: pd.DataFrame | None) -> None:
        self._models = models
        self.fidelity, self.dataset = fidelity, dataset
        self.design_ids = tuple(design_ids)
        self.features = tuple(features)
        self.num_classes, self.input_size = num_classes, input_size
        self.epochs = epochs
        self._zc = zc

    @classmethod
    def fit(cls, bench: Benchmark, *, scores: pd.DataFrame | None = None,
            fidelity: str | None = None, dataset: str | None = None,
            model: str = "gp", seed: int = 0) -> Surrogate:
        """Fit on the ok seeds of every design at the slice.

        Args:
            bench: the table.
            scores: zero-cost scores (read_scores) of the table's designs and of every design
                to be queried; None: describe() features only.
            model: "gp" (the default, see the module docstring) or "gbr" (gradient
                boosting: point predictions, std NaN; for comparison).
        """
        fidelity, dataset = bench.resolve(fidelity, dataset)
        rows = training_rows(bench, fidelity, dataset)
        zc = zc_features(scores) if scores is not None else None
        X, names = feature_matrix(rows["info"], zc, rows["design_id"])
        targets = {t: rows[t].to_numpy(float) for t in rows.columns if is_target(t)}
        models = {t: fit_one(model, X, y, seed) for t, y in targets.items()
                  if np.isfinite(y).sum() >= 3}
        info0 = rows["info"].iloc[0]
        return cls(models, fidelity=fidelity, dataset=dataset,
                   design_ids=sorted(rows["design_id"].unique()), features=names,
                   num_classes=info0.get("num_classes"), input_size=info0.get("input_size"),
                   epochs=sum(t.startswith("curve_val@") for t in models), zc=zc)

    # --- queries ----------------------------------------------------------------------------

    def query(self, design_id: str) -> Prediction:
        """The predicted accuracy of ``design_id`` (any design of the space).

        Raises:
            ValueError: a bad design id, or (with zero-cost features) a design without
                scores.
        """
        try:
            info = describe_info(design_id, self.num_classes, self.input_size)
        except ValueError as exc:
            raise ValueError(f"design {design_id!r}: {exc}") from None
        mean, std = self.predict([info], "val_acc")
        t_mean, t_std = self.predict([info], "test_acc") if "test_acc" in self._models else (
            [math.nan], [math.nan])
        return Prediction(
            design_id=info["id"], fidelity=self.fidelity, dataset=self.dataset,
            val_acc=float(mean[0]), val_acc_std=float(std[0]), test_acc=float(t_mean[0]),
            test_acc_std=float(t_std[0]), seed_std=self.seed_std("val_acc"),
            in_table=info["id"] in self.design_ids, info=MappingProxyType(info))

    def predict(self, infos: Sequence[Mapping[str, Any]], target: str = "val_acc"
                ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean over seeds and its standard deviation, per design."""
        X, _ = feature_matrix(pd.Series(list(infos)), self._zc,
                       pd.Series([i["id"] for i in infos]))
        return predict_latent(self._models[target], X)

    def seed_std(self, target: str = "val_acc") -> float:
        """The seed-to-seed standard deviation the model learnt (its white noise)."""
        return noise_std(self._models[target])

    def replay_table(self, design_ids: Iterable[str], *, seeds: int = 3,
                     rng_seed: int = 0) -> ReplayTable:
        """A table of predicted curves for ``design_ids`` that analysis.replay.simulate runs on: per
        design, the predicted mean val_acc of each epoch plus, per seed, noise of the
        learnt seed spread; epoch seconds predicted (on a log scale) likewise, without noise.
        Predictions, not records: a replay on it says how a search would fare on a space
        that behaves as the surrogate believes."""
        infos = [describe_info(d, self.num_classes, self.input_size) for d in design_ids]
        ids = [i["id"] for i in infos]
        rng = np.random.default_rng(rng_seed)
        n, E = len(ids), self.epochs
        val = np.empty((n, seeds, E))
        sec = np.empty((n, seeds, E))
        for e in range(E):
            mean, _ = self.predict(infos, f"curve_val@{e + 1}")
            noise = self.seed_std(f"curve_val@{e + 1}")
            val[:, :, e] = mean[:, None] + rng.normal(0, noise, size=(n, seeds))
            log_s, _ = self.predict(infos, f"curve_logsec@{e + 1}")
            sec[:, :, e] = np.exp(log_s)[:, None]
        val = np.clip(val, 0.0, 1.0)
        order = np.argsort(ids)
        ids = [ids[i] for i in order]
        mean_val = val[order, :, -1].mean(axis=1)
        return ReplayTable(
            design_ids=tuple(ids), epochs=E, val=tuple(val[i] for i in order),
            seconds=tuple(sec[i] for i in order), seeds=tuple(tuple(range(seeds)) for _ in ids),
            mean_val=mean_val, params=np.array([float(infos[i]["params"]) for i in order]),
            best=int(np.argmax(mean_val)), fidelity=f"{self.fidelity}+surrogate",
            dataset=self.dataset)


class SurrogateBenchmark:
    """The table where it holds a design, the surrogate where it does not.

    :meth:`query` gives the table's :class:`~analysis.table.index.Entry` (measured) for a
    design with records at the slice, and the surrogate's :class:`Prediction` (``kind``
    "surrogate", with its uncertainty) for any other design of the space.
    """

    def __init__(self, bench: Benchmark, surrogate: Surrogate) -> None:
        self.bench, self.surrogate = bench, surrogate

    def query(self, design_id: str) -> Any:
        s = self.surrogate
        held = s.fidelity in self.bench.fidelities and design_id in self.bench.designs(
            fidelity=s.fidelity, dataset=s.dataset)
        if held:
            return self.bench.query(design_id, fidelity=s.fidelity, dataset=s.dataset)
        return s.query(design_id)


# --- cross-validation ----------------------------------------------------------------------


def cross_validate(bench: Benchmark, *, scores: pd.DataFrame | None = None,
                   fidelity: str | None = None, dataset: str | None = None,
                   model: str = "gp", target: str = "val_acc", folds: int = 10,
                   n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Held out by design: the designs are split into ``folds`` groups; each group's seeds are
    predicted by a model fitted on the others. Against the held-out designs' mean ``target``:

    Returns:
        n_designs, folds, model, features ("describe" or "describe+zc"), kendall and
        spearman of predicted against measured means, rmse, with 95% intervals over a
        bootstrap of the designs (``*_lo``, ``*_hi``), ``coverage`` (the share of designs
        whose measured mean lies in the prediction's 95% interval widened by the seed noise
        of a mean: calibrated near 0.95), and ``params_kendall`` (the parameter count's
        tau on the same designs: the baseline a surrogate must beat).
    """
    fidelity, dataset = bench.resolve(fidelity, dataset)
    rows = training_rows(bench, fidelity, dataset)
    zc = zc_features(scores) if scores is not None else None
    X, _ = feature_matrix(rows["info"], zc, rows["design_id"])
    y = rows[target].to_numpy(float)
    groups = rows["design_id"].to_numpy()
    pred_mean, pred_std = _held_out(model, X, y, groups, folds, seed)
    meas = pd.Series(y).groupby(groups).mean()
    d = list(meas.index)
    p = np.array([pred_mean[k] for k in d])
    s = np.array([pred_std[k] for k in d])
    t = meas.to_numpy()
    params = np.array([rows.loc[rows["design_id"].eq(k), "info"].iloc[0]["params"] for k in d])
    rng = np.random.default_rng([seed, 7])
    pick = rng.integers(0, len(d), size=(n_boot, len(d)))
    taus = stats.kendall_tau_b(p[pick], t[pick])
    rmses = np.sqrt(((p[pick] - t[pick]) ** 2).mean(axis=1))
    rho = np.array([sps.spearmanr(p[i], t[i]).statistic for i in pick[:500]])
    z = float(sps.norm.ppf(0.5 + stats.CONFIDENCE / 2))
    out = {
        "model": model, "features": "describe+zc" if zc is not None else "describe",
        "target": target, "n_designs": len(d), "folds": folds,
        "kendall": float(sps.kendalltau(p, t).statistic),
        "spearman": float(sps.spearmanr(p, t).statistic),
        "rmse": float(np.sqrt(((p - t) ** 2).mean())),
        "coverage": (float((np.abs(p - t) <= z * s).mean()) if np.isfinite(s).all()
                     else math.nan),
        "params_kendall": float(sps.kendalltau(params, t).statistic),
    }
    for name, reps in (("kendall", taus), ("spearman", rho), ("rmse", rmses)):
        out[f"{name}_lo"], out[f"{name}_hi"] = stats.percentile_interval(reps)
    return out


def _held_out(model: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int,
              seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Each design's mean predicted by a model fitted on the other folds, and the spread of
    that prediction for a mean of its seeds: (mean by design, std by design)."""
    from sklearn.model_selection import GroupKFold

    ids = np.array(sorted(set(groups)))
    # Designs shuffled into folds once, from the seed (GroupKFold alone is deterministic
    # by group size, which would put the same kinds of design together).
    perm = np.random.default_rng(seed).permutation(len(ids))
    fold_of = dict(zip(ids[perm], np.arange(len(ids)) % folds, strict=True))
    fold = np.array([fold_of[g] for g in groups])
    pred_mean, pred_std = {}, {}
    for train, test in GroupKFold(n_splits=folds).split(X, y, fold):
        m = fit_one(model, X[train], y[train], seed)
        mu, sd = predict_latent(m, X[test])
        noise = noise_std(m)
        for d, a, b in zip(groups[test], mu, sd, strict=True):
            n = int((groups == d).sum())
            pred_mean[d], pred_std[d] = a, math.sqrt(b * b + noise * noise / n)
    return pred_mean, pred_std


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.table.surrogate TABLE ID [ID ...] [--scores CSV] [--cv]``: the
    surrogate's predictions (the table's own values where it holds a design), and with
    ``--cv`` its cross-validation held out by design."""
    import sys

    from analysis.cli import ArgumentParser, fail

    p = ArgumentParser(prog="python -m analysis.table.surrogate", description=main.__doc__)
    p.add_argument("table", help="a release, records export or run directory")
    p.add_argument("designs", nargs="*", metavar="ID", help="design ids to answer for")
    p.add_argument("--scores", help="zero-cost scores (CSV or zc run directory): features")
    p.add_argument("--fidelity", help="the table's fidelity (when it has several)")
    p.add_argument("--cv", action="store_true", help="also cross-validate (held out by design)")
    args = p.parse_args(argv)
    try:
        bench = Benchmark.load(args.table)
        scores = None
        if args.scores:
            from analysis.proxies.ranks import read_scores

            scores = read_scores(args.scores)
        s = Surrogate.fit(bench, scores=scores, fidelity=args.fidelity)
        both = SurrogateBenchmark(bench, s)
        for d in args.designs:
            a = both.query(d)
            if isinstance(a, Prediction):
                lo, hi = a.val_acc_interval
                print(f"{a.design_id}  predicted (surrogate) val_acc {a.val_acc:.3f} ± "
                      f"{a.val_acc_std:.3f} [95%: {lo:.3f}, {hi:.3f}], one seed ± "
                      f"{a.seed_std:.3f}; params {a.params:,}")
            else:
                print(f"{a.design_id}  measured (table) val_acc {a.val_acc:.3f} over seeds "
                      f"{list(a.seeds)}; params {int(a.params):,}")
        if args.cv:
            cv = cross_validate(bench, scores=scores, fidelity=s.fidelity, dataset=s.dataset)
            print(f"held out by design ({cv['folds']} folds, {cv['n_designs']} designs): "
                  f"Kendall tau {cv['kendall']:.3f} [{cv['kendall_lo']:.3f}, "
                  f"{cv['kendall_hi']:.3f}], RMSE {cv['rmse']:.4f}, coverage "
                  f"{cv['coverage']:.2f}")
    except (OSError, ValueError, KeyError) as exc:
        return fail(p.prog, exc)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
