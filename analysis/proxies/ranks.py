"""How well zero-cost scores rank designs: Kendall tau, Spearman and top-10% precision against
trained accuracy, with bootstrap intervals over designs and seeds; and proxy against proxy.

Inputs are long tables, one row per (design, seed): trained accuracy (``load_results`` of
a run directory) and scores (:func:`read_scores` of the ``zc`` run directory that
``python -m studies.zero_cost`` writes, or of a scores export, :func:`write_scores`).
A proxy's seed s is the initialisation of the training
run of seed s, but the statistics here compare design means (over seeds, each side its own):
the question is whether a proxy ranks designs, not individual runs.

Intervals: a two-level bootstrap. Designs are resampled with replacement; within each
design, seeds are resampled (accuracy and score separately) with the residual inflation of
``stats.bootstrap_means`` (with 3 seeds the plain bootstrap is too narrow). Top-10%
precision keeps the designs fixed (a resampled set with repeated designs has no clear
"top 10%") and resamples seeds only. Ties (a proxy equal for many designs: density, L...)
count as a random order among the tied: a tied design at the top-k boundary counts
fractionally (:func:`top_weights`), so a constant score gets the chance precision k/n.

Example:
    >>> acc = pd.DataFrame({"design_id": list("abcd"), "seed": 0,
    ...                     "test_acc": [0.1, 0.2, 0.3, 0.4]})
    >>> sc = acc.rename(columns={"test_acc": "good"}).assign(bad=[4, 3, 2, 1])
    >>> t = rank_correlations(acc, sc, n_boot=50, top=0.5)
    >>> t[["proxy", "kendall", "spearman", "top_precision"]].values.tolist()
    [['good', 1.0, 1.0, 1.0], ['bad', -1.0, -1.0, 0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import stats

KEYS = ("design_id", "seed")


def scores_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (design, seed) of ``zc`` records: ``design_id``, ``seed``, and one float
    column per score (``zero_cost["scores"]``; None -> NaN). Failed records are left out."""
    rows = []
    for r in records:
        zc = r.get("zero_cost")
        if r.get("status") != "ok" or not zc:
            continue
        rows.append({"design_id": r["design_id"], "seed": int(r["seed"]), **{
            k: (float("nan") if v is None else float(v)) for k, v in zc["scores"].items()}})
    return pd.DataFrame(rows)


def read_scores(path: str | Path, *, fidelity: str | None = None,
                dataset: str | None = None) -> pd.DataFrame:
    """The scores of a ``zc`` run directory (its records, the ``zc_<name>`` columns of
    ``load_results``) or of a scores export (:func:`write_scores`, a CSV): one row per
    (design, seed), a float column per score named without the prefix.

    Raises:
        ValueError: no zc scores there, or several fidelities (datasets) and none chosen.
    """
    from analysis.load import ZC_PREFIX, load_results

    p = Path(path)
    df = pd.read_csv(p) if p.is_file() else load_results(p)
    cols = [c for c in df.columns if str(c).startswith(ZC_PREFIX)]
    if not cols:
        raise ValueError(f"{p} holds no zero-cost scores (no {ZC_PREFIX}* column)")
    df = df[df["status"].eq("ok")] if "status" in df else df
    for what, chosen in (("fidelity", fidelity), ("dataset", dataset)):
        if what not in df:  # a hand-made scores table: nothing to choose between
            continue
        have = sorted(map(str, df[what].dropna().unique()))
        if chosen is None and len(have) > 1:
            raise ValueError(f"{p} holds {what}s {have}; choose one")
        if chosen is not None:
            if chosen not in have:
                raise ValueError(f"{p} has no {what} {chosen!r}; it has {have}")
            df = df[df[what].eq(chosen)]
    out = df[list(KEYS) + cols].rename(columns=lambda c: c.removeprefix(ZC_PREFIX))
    out = out.astype({"design_id": str, "seed": int})
    return out.sort_values(list(KEYS), kind="stable").reset_index(drop=True)


def write_scores(zc_run_dir: str | Path, out: str | Path) -> pd.DataFrame:
    """Export a ``zc`` run directory's scores as a small CSV (atomically): the key, the
    fidelity, dataset and config of the records (one config: refused otherwise), and a
    ``zc_<name>`` column per score. What the docs' correlation report is regenerated from."""
    import json

    from analysis.load import ZC_PREFIX, load_results
    from evaluators.record import write_atomic

    df = load_results(zc_run_dir)
    df = df[df["status"].eq("ok")]
    cols = [c for c in df.columns if str(c).startswith(ZC_PREFIX)]
    if df.empty or not cols:
        raise ValueError(f"{zc_run_dir} holds no ok zero-cost records")
    configs = {json.dumps(c, sort_keys=True) for c in df["fidelity_config"]}
    if len(configs) > 1 or df["dataset"].nunique() > 1:
        raise ValueError(f"{zc_run_dir} holds {len(configs)} zc configs and datasets "
                         f"{sorted(df['dataset'].unique())}; export one at a time")
    table = df[["design_id", "seed", "fidelity", "dataset", *cols]].assign(
        config=configs.pop()).sort_values(list(KEYS), kind="stable")
    text = table.to_csv(index=False, float_format="%.10g")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda f: f.write(text.encode()))
    return table.reset_index(drop=True)


def exported(scores: str | Path, export: str | Path | None) -> str | Path:
    """What a report reads: ``scores`` itself, or with ``export`` the CSV just written from
    the zc run directory ``scores`` (so a doc is what the committed file gives)."""
    if export is None:
        return scores
    if not Path(scores).is_dir():
        raise ValueError(f"--export needs a zc run directory; {scores} is not one")
    write_scores(scores, export)
    return export


def rank_correlations(accuracy: pd.DataFrame, scores: pd.DataFrame, *,
                      metric: str = "test_acc", proxies: Sequence[str] | None = None,
                      n_boot: int = 2000, top: float = 0.1, level: float = stats.CONFIDENCE,
                      seed: int = 0) -> pd.DataFrame:
    """Each score against accuracy, over the designs both tables hold.

    Args:
        accuracy: rows (design_id, seed, ``metric``); NaN accuracies are dropped.
        scores: rows (design_id, seed, one column per score); NaN scores are dropped.
        metric: the accuracy column.
        proxies: which score columns (default: every column but the keys).
        n_boot: bootstrap replicates.
        top: the share of designs that is "the top" (10%: k = ceil(0.1 n)).
        level: interval coverage.
        seed: the bootstrap's random seed.

    Returns:
        One row per score: proxy, n_designs, kendall (scipy.stats.kendalltau, tau-b, of
        the design means) with kendall_lo/kendall_hi, spearman with spearman_lo/_hi,
        top_k, top_precision (share of the k best designs by mean score that are among the
        k best by mean accuracy) with top_lo/top_hi.
    """
    acc = _groups(accuracy, metric)
    rows = []
    for j, name in enumerate(proxies or [c for c in scores.columns if c not in KEYS]):
        sc = _groups(scores, name)
        common = sorted(acc.keys() & sc.keys())
        rng = np.random.default_rng([seed, j])
        rows.append({"proxy": name, **_one(
            [acc[d] for d in common], [sc[d] for d in common], n_boot, top, level, rng)})
    return pd.DataFrame(rows)


def proxy_matrix(scores: pd.DataFrame, proxies: Sequence[str] | None = None,
                 accuracy: pd.DataFrame | None = None, metric: str = "test_acc"
                 ) -> pd.DataFrame:
    """Kendall tau-b between the design means of every pair of scores (and accuracy, as
    the first row and column, when given), over the designs each pair shares."""
    names = list(proxies or [c for c in scores.columns if c not in KEYS])
    means = {n: scores.dropna(subset=[n]).groupby("design_id")[n].mean() for n in names}
    if accuracy is not None:
        means = {metric: accuracy.dropna(subset=[metric]).groupby("design_id")[metric].mean(),
                 **means}
    keys = list(means)
    out = pd.DataFrame(np.nan, index=keys, columns=keys)
    for a in keys:
        for b in keys:
            x, y = means[a].align(means[b], join="inner")
            if len(x) >= 2:
                out.loc[a, b] = sps.kendalltau(x.to_numpy(), y.to_numpy()).statistic
    return out


def paired_differences(accuracy: pd.DataFrame, scores: pd.DataFrame, reference: str,
                       others: Sequence[str], *, metric: str = "test_acc",
                       n_boot: int = 2000, level: float = stats.CONFIDENCE,
                       seed: int = 0) -> pd.DataFrame:
    """Does ``reference`` rank the designs better than each of ``others``? Kendall tau-b of
    the reference minus that of the other, over the designs every one of them scores, with
    a paired bootstrap: each replicate resamples the designs, the accuracy seeds and the
    score seeds once and computes both taus on that one sample.

    Returns:
        One row per other score: other, n_designs, tau_reference, tau_other, difference,
        lo, hi (the interval of the difference) and ``verdict``: "better" when the interval
        lies above 0, "worse" below, "not distinguishable" when it holds 0.
    """
    acc = _groups(accuracy, metric)
    names = [reference, *others]
    sc = {n: _groups(scores, n) for n in names}
    common = sorted(set(acc).intersection(*sc.values()))
    n = len(common)
    rng = np.random.default_rng([seed, 1])
    a_reps = stats.bootstrap_means([acc[d] for d in common], n_boot, rng)
    pick = rng.integers(0, n, size=(n_boot, n))
    a_b = np.take_along_axis(a_reps, pick, axis=1)
    a_mean = np.array([acc[d].mean() for d in common])
    taus, points = {}, {}
    for name in names:
        # The same generator state for every score: the same seeds resampled (pairing).
        reps = stats.bootstrap_means([sc[name][d] for d in common], n_boot,
                                     np.random.default_rng([seed, 2]))
        taus[name] = stats.kendall_tau_b(np.take_along_axis(reps, pick, axis=1), a_b)
        s_mean = np.array([sc[name][d].mean() for d in common])
        points[name] = (sps.kendalltau(s_mean, a_mean).statistic
                        if np.ptp(s_mean) > 0 and np.ptp(a_mean) > 0 else np.nan)
    rows = []
    for other in others:
        lo, hi = stats.percentile_interval(taus[reference] - taus[other], level)
        diff = points[reference] - points[other]
        verdict = ("better" if lo > 0 else "worse" if hi < 0 else "not distinguishable")
        rows.append({"other": other, "n_designs": n, "tau_reference": points[reference],
                     "tau_other": points[other], "difference": diff, "lo": lo, "hi": hi,
                     "verdict": verdict if np.isfinite(diff) else "untestable"})
    return pd.DataFrame(rows)


def top_weights(values: np.ndarray, k: int) -> np.ndarray:
    """Membership of each column in the top ``k`` of its row (largest values), ties counted
    fractionally: the designs tied at the boundary share the places left. Rows sum to k.

    >>> top_weights(np.array([[3.0, 1.0, 2.0, 2.0]]), 2).tolist()
    [[1.0, 0.0, 0.5, 0.5]]
    """
    v = np.atleast_2d(np.asarray(values, dtype=float))
    threshold = -np.sort(-v, axis=1)[:, k - 1 : k]
    above, tied = v > threshold, v == threshold
    left = k - above.sum(axis=1, keepdims=True)
    return above + tied * (left / tied.sum(axis=1, keepdims=True))


def _groups(frame: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    ok = frame.dropna(subset=[column])
    return {str(d): g[column].to_numpy(dtype=float) for d, g in ok.groupby("design_id")}


def _one(acc: list[np.ndarray], sc: list[np.ndarray], n_boot: int, top: float, level: float,
         rng: np.random.Generator) -> dict[str, float]:
    n = len(acc)
    k = max(1, math.ceil(top * n))
    out: dict[str, float] = {"n_designs": n, "top_k": k}
    nan = float("nan")
    if n < 3:
        return {**out, **dict.fromkeys(("kendall", "kendall_lo", "kendall_hi", "spearman",
                                        "spearman_lo", "spearman_hi", "top_precision",
                                        "top_lo", "top_hi"), nan)}
    a = np.array([x.mean() for x in acc])
    s = np.array([x.mean() for x in sc])
    a_reps = stats.bootstrap_means(acc, n_boot, rng)  # (B, n): seeds resampled per design
    s_reps = stats.bootstrap_means(sc, n_boot, rng)
    pick = rng.integers(0, n, size=(n_boot, n))  # designs resampled
    a_b = np.take_along_axis(a_reps, pick, axis=1)
    s_b = np.take_along_axis(s_reps, pick, axis=1)
    tau = stats.kendall_tau_b(s_b, a_b)
    rho = _spearman_rows(s_b, a_b)
    prec = (top_weights(s_reps, k) * top_weights(a_reps, k)).sum(axis=1) / k
    point = float((top_weights(s, k) * top_weights(a, k)).sum() / k)
    kt = sr = nan  # undefined for a constant score (or accuracy)
    if np.ptp(s) > 0 and np.ptp(a) > 0:
        kt, sr = sps.kendalltau(s, a).statistic, sps.spearmanr(s, a).statistic
    return {
        **out,
        "kendall": float(kt), **_interval("kendall", tau, level),
        "spearman": float(sr), **_interval("spearman", rho, level),
        "top_precision": point, **_interval("top", prec, level),
    }


def _interval(name: str, reps: np.ndarray, level: float) -> dict[str, float]:
    lo, hi = stats.percentile_interval(reps, level)
    return {f"{name}_lo": lo, f"{name}_hi": hi}


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (average ranks for ties, as scipy.stats.spearmanr),
    vectorised for the bootstrap; NaN where a row is constant."""
    rx = sps.rankdata(x, axis=1) - (x.shape[1] + 1) / 2
    ry = sps.rankdata(y, axis=1) - (y.shape[1] + 1) / 2
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=1) / den, np.nan)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.proxies.ranks TABLE ZC_RUN_DIR``: print the correlation table."""
    import argparse
    import sys

    from analysis.table.benchmark import Benchmark

    p = argparse.ArgumentParser(prog="python -m analysis.proxies.ranks",
                                description=main.__doc__)
    p.add_argument("run_dir", metavar="TABLE",
                   help="trained records (accuracy): a run directory, export or release")
    p.add_argument("scores", metavar="ZC_RUN_DIR",
                   help="zc records (python -m studies.zero_cost) or a scores export (CSV)")
    p.add_argument("--metric", default="test_acc", choices=("test_acc", "val_acc"))
    p.add_argument("--fidelity", help="the trained fidelity (default: the run's only one)")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--matrix", action="store_true", help="also the proxy-vs-proxy matrix")
    args = p.parse_args(argv)
    try:
        runs = Benchmark.load(args.run_dir).frame
        scores = read_scores(args.scores)
    except (OSError, ValueError) as e:
        print(f"proxy_ranks: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    fids = sorted(runs["fidelity"].dropna().unique())
    fid = args.fidelity or (fids[0] if len(fids) == 1 else None)
    if fid not in fids or scores.empty:
        print(f"proxy_ranks: error: --fidelity {fid!r}: the run holds {fids}; and "
              f"{len(scores)} zc scores", file=sys.stderr)
        return 2
    acc = runs[runs["fidelity"].eq(fid) & runs["status"].eq("ok")]
    table = rank_correlations(acc, scores, metric=args.metric, n_boot=args.n_boot)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
        if args.matrix:
            print(proxy_matrix(scores, accuracy=acc, metric=args.metric).round(2))
    return 0


__all__ = ["exported", "paired_differences", "proxy_matrix", "rank_correlations", "read_scores",
           "scores_frame", "top_weights", "write_scores"]


if __name__ == "__main__":
    raise SystemExit(main())
