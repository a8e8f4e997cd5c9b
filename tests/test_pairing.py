"""Seeds paired by index: measured, decided by a rule, and done where the rule says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from analysis.claims.contrasts import PAIR_MIN_SEEDS, SEED_SHARE, linear, paired_values, seed_share
from analysis.table.release import read_records

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = ROOT / "docs" / "reproduction"


def test_the_seed_share_docs_analysis_quotes_is_measured_on_the_committed_records():
    doc = " ".join((ROOT / "docs" / "analysis.md").read_text().split())
    share, f, d1, d2 = seed_share(pd.read_parquet(ROOT / "releases" / "igcbench-1.1.parquet"))
    assert round(share, 2) == SEED_SHARE == 0.20
    assert f"F = {f:.1f} on {d1} and {d2} dof" in doc
    quoted = {"fig2": "15% on fig2", "fig3": "16% on fig3", "table2": "34% on table2"}
    for name, text in quoted.items():
        share, f, _, _ = seed_share(read_records(EXPORTS / f"{name}-cpu-cifar10.csv"))
        assert f"{share:.0%} on {name}" == text and text in doc
    table2 = seed_share(read_records(EXPORTS / "table2-cpu-cifar10.csv"))
    assert f"F = {table2[1]:.1f})" in doc
    assert seed_share(read_records(EXPORTS / "table4-cpu-cifar10.csv"))[0] == 0.0


def test_pair_min_seeds_is_where_pairing_first_narrows_the_99_percent_interval():
    def narrower(n: int) -> bool:
        q = 0.995
        return st.t.ppf(q, n - 1) * np.sqrt(1 - SEED_SHARE) < st.t.ppf(q, 2 * (n - 1))

    assert narrower(PAIR_MIN_SEEDS) and not narrower(PAIR_MIN_SEEDS - 1)


def _designs(n: int, shared_seed: float, noise: float, rng_seed: int = 0,
             same_seeds: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    seed_effect = rng.normal(0, shared_seed, n)
    rows = []
    for j, (d, mu) in enumerate((("a", 0.51), ("b", 0.50))):
        v = mu + seed_effect + rng.normal(0, noise, n)
        seeds = np.arange(n) + (0 if same_seeds else 1000 * j)
        rows.append({"design_id": d, "values": v, "seed_ids": seeds, "mean": v.mean()})
    return pd.DataFrame(rows)


def test_contrasts_pair_seeds_from_pair_min_seeds_shared_seeds_on():
    n = PAIR_MIN_SEEDS
    d = _designs(n, shared_seed=0.02, noise=0.003)
    assert paired_values(d, ["a", "b"]).shape == (2, n)
    paired = linear(d, {"a": 1.0, "b": -1.0}, n_boot=2000, rng=np.random.default_rng(0))
    assert paired.paired and paired.dof == n - 1
    # the shared seed effects (sd 0.02) cancel: the interval is about the noise's (0.003)
    lo, hi = paired.interval(0.95)
    assert lo > 0 and hi - lo < 0.01
    apart = _designs(n, shared_seed=0.02, noise=0.003, same_seeds=False)
    unpaired = linear(apart, {"a": 1.0, "b": -1.0}, n_boot=2000,
                      rng=np.random.default_rng(0))
    assert not unpaired.paired and unpaired.se > 3 * paired.se
    few = _designs(n - 1, shared_seed=0.02, noise=0.003)
    assert paired_values(few, ["a", "b"]) is None
    assert not linear(few, {"a": 1.0, "b": -1.0}, n_boot=500,
                      rng=np.random.default_rng(0)).paired


@pytest.mark.parametrize("noise", [0.01])
def test_paired_bootstrap_on_pure_noise_rarely_decides(noise):
    rng = np.random.default_rng(5)
    decided = 0
    for r in range(200):
        d = _designs(PAIR_MIN_SEEDS, shared_seed=0.01, noise=noise, rng_seed=r)
        d.loc[1, "values"] = d.loc[1, "values"] + 0.01  # no true difference
        d["mean"] = d["values"].map(np.mean)
        est = linear(d, {"a": 1.0, "b": -1.0}, n_boot=1000,
                     rng=np.random.default_rng(int(rng.integers(1 << 30))))
        lo, hi = est.interval(0.95)
        decided += lo > 0 or hi < 0
    assert decided / 200 < 0.09
