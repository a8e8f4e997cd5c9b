"""Do designs rank alike at two fidelities? Kendall tau, Spearman rho and top-k overlap.

A cheap rung is worth running only if it ranks designs as a dear one would. For every pair
of fidelities that share designs (on one dataset), this compares the design means of the
metric: Kendall's tau-b, Spearman's rho and the overlap of the top k (k = max(3, 10% of the
designs)), each with a bootstrap interval over designs *and* seeds: every replicate draws the
designs with replacement and, at each fidelity, each design's seeds with replacement
(stats.bootstrap_means), so both the choice of designs and the seed noise of each rung are
in the interval. Not a claim of the paper (DESIGN.md asks that rungs rank alike); reported
beside the verdicts, not in their families.

Records trained by different code are not pooled (analysis.claims.code_groups): a fidelity whose
records hold more than one training code, not shown equal by a recheck
(``recheck*.json`` beside the exports, benchmarks/recheck.py), is split into one row per
code (``cpu [code 7cb3e666f5/dbf35f53c1]``).

    python -m analysis.claims.rank_agreement docs/reproduction        # the markdown table

Example:
    >>> import pandas as pd
    >>> rows = [{"design_id": d, "fidelity": f, "dataset": "x", "seed": s, "status": "ok",
    ...          "test_acc": a + 0.01 * s} for f in ("cpu", "cpu2") for s in (0, 1)
    ...         for d, a in zip("abcde", (0.1, 0.2, 0.3, 0.4, 0.5))]
    >>> r = rank_agreement(pd.DataFrame(rows), n_boot=200)[0]
    >>> (r.fidelity_a, r.fidelity_b, r.n_designs, round(r.tau, 6), r.top_k, r.top_overlap)
    ('cpu', 'cpu2', 5, 1.0, 3, 1.0)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import stats
from analysis.claims import selection
from analysis.claims.code_groups import read_equalities, separate_codes
from analysis.cli import ArgumentParser

MIN_DESIGNS = 4  # Kendall tau over fewer designs takes too few values to mean anything


@dataclass(frozen=True)
class RankAgreement:
    """How alike two fidelities rank the designs they share (one dataset)."""

    dataset: str
    fidelity_a: str  # the cheaper rung (ladder order)
    fidelity_b: str
    metric: str
    n_designs: int
    tau: float
    tau_low: float
    tau_high: float
    rho: float
    rho_low: float
    rho_high: float
    top_k: int
    top_overlap: float  # share of the top k at A that is in the top k at B
    top_low: float
    top_high: float
    n_boot: int


def _top_overlap(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Row-wise share of the k best of a that are among the k best of b (ties by order)."""
    ta = np.argsort(-a, axis=-1, kind="stable")[..., :k]
    tb = np.argsort(-b, axis=-1, kind="stable")[..., :k]
    return (ta[..., :, None] == tb[..., None, :]).any(-1).mean(-1)


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=-1), rankdata(b, axis=-1)
    ra = ra - ra.mean(-1, keepdims=True)
    rb = rb - rb.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(-1) / np.sqrt((ra * ra).sum(-1) * (rb * rb).sum(-1))


def compare(a: pd.Series, b: pd.Series, *, n_boot: int = 4000,
            rng: np.random.Generator) -> tuple[float, ...]:
    """(tau, lo, hi, rho, lo, hi, k, overlap, lo, hi) of two Series of per-seed arrays
    indexed by the same designs."""
    from scipy.stats import kendalltau, spearmanr

    ma = np.array([v.mean() for v in a])
    mb = np.array([v.mean() for v in b])
    n = len(ma)
    k = max(3, math.ceil(0.1 * n))
    ba = stats.bootstrap_means(list(a), n_boot, rng)  # (B, n): seeds within designs
    bb = stats.bootstrap_means(list(b), n_boot, rng)
    pick = rng.integers(0, n, size=(n_boot, n))  # designs with replacement
    ra, rb = np.take_along_axis(ba, pick, 1), np.take_along_axis(bb, pick, 1)
    taus = stats.kendall_tau_b(ra, rb)
    rhos = _spearman(ra, rb)
    tops = _top_overlap(ra, rb, k)
    return (float(kendalltau(ma, mb).statistic), *stats.percentile_interval(taus),
            float(spearmanr(ma, mb).statistic), *stats.percentile_interval(rhos),
            k, float(_top_overlap(ma, mb, k)), *stats.percentile_interval(tops))


def rank_agreement(df: pd.DataFrame, *, metric: str | None = None, n_boot: int = 4000,
                   seed: int = 0,
                   equalities: Iterable[tuple[str, str, bool]] = ()) -> list[RankAgreement]:
    """Every pair of fidelities sharing at least MIN_DESIGNS designs on a dataset; a
    fidelity whose records hold training codes not shown equal (``equalities``, from
    :func:`analysis.claims.code_groups.read_equalities`) counts as one fidelity per code."""
    df = separate_codes(df, equalities)
    out = []
    for ds in sorted(df["dataset"].dropna().astype(str).unique()):
        per = {}
        for fid, _, rows in selection.slices(df[df["dataset"].astype(str).eq(ds)]):
            m = selection.pick_metric(rows, metric)
            ok = selection.ok_rows(rows, m)
            per[fid] = (m, ok.groupby("design_id")[m].apply(lambda s: s.to_numpy(float)))
        fids = list(per)  # ladder order, cheapest first
        for i, fa in enumerate(fids):
            for fb in fids[i + 1:]:
                (ma, xa), (mb, xb) = per[fa], per[fb]
                common = xa.index.intersection(xb.index)
                if len(common) < MIN_DESIGNS:
                    continue
                numbers = compare(xa[common], xb[common], n_boot=n_boot,
                                  rng=np.random.default_rng(seed))
                metric_name = ma if ma == mb else f"{ma} vs {mb}"
                out.append(RankAgreement(ds, fa, fb, metric_name, len(common), *numbers,
                                         n_boot))
    return out


def markdown(rows: Sequence[RankAgreement]) -> str:
    """The table docs/fidelities.md and docs/reproduction.md carry."""
    lines = ["| dataset | rungs | designs | metric | Kendall tau [95%] | Spearman rho [95%] | "
             "top-k overlap [95%] |", "| --- | --- | ---: | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r.dataset} | {r.fidelity_a} vs {r.fidelity_b} | {r.n_designs} | {r.metric} | "
            f"{r.tau:.2f} [{r.tau_low:.2f}, {r.tau_high:.2f}] | "
            f"{r.rho:.2f} [{r.rho_low:.2f}, {r.rho_high:.2f}] | "
            f"{r.top_overlap:.2f} of top {r.top_k} [{r.top_low:.2f}, {r.top_high:.2f}] |")
    if not rows:
        lines.append("| | no two fidelities share >= 4 designs | | | | | |")
    return "\n".join(lines)


def table(export_dir: str | Path, *, n_boot: int = 4000) -> str:
    """The markdown table over every record export (``*.csv``) in a folder, pooled."""
    from analysis.table.release import read_records

    frames = [read_records(p) for p in sorted(Path(export_dir).glob("*.csv"))]
    return markdown(rank_agreement(pd.concat(frames, ignore_index=True), n_boot=n_boot,
                                   equalities=read_equalities(export_dir))
                    if frames else [])


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m analysis.claims.rank_agreement",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir", help="folder of record exports (*.csv)")
    args = p.parse_args(argv)
    if not any(Path(args.export_dir).glob("*.csv")):
        print(f"{p.prog}: error: no *.csv exports in {args.export_dir}", file=sys.stderr)
        return 2
    print(table(args.export_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
