"""analysis.proxies.ranks on synthetic tables whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, spearmanr

from analysis.proxies.ranks import (
    _spearman_rows,
    proxy_matrix,
    rank_correlations,
    scores_frame,
    top_weights,
)

N, SEEDS = 40, (0, 1, 2)


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """40 designs x 3 seeds: accuracy = design effect + small seed noise; scores built
    from it: equal, inverted, a monotone transform, independent noise, constant."""
    rng = np.random.default_rng(0)
    effect = np.linspace(0.3, 0.7, N)
    rows = [(f"d{i:02d}", s, effect[i] + 0.005 * rng.standard_normal())
            for i in range(N) for s in SEEDS]
    acc = pd.DataFrame(rows, columns=["design_id", "seed", "test_acc"])
    sc = acc[["design_id", "seed"]].copy()
    sc["same"] = acc["test_acc"]
    sc["inverted"] = -acc["test_acc"]
    sc["exp"] = np.exp(20 * acc["test_acc"])  # any increasing map ranks alike
    sc["noise"] = rng.standard_normal(len(acc))
    sc["constant"] = 1.0
    return acc, sc


def row(t: pd.DataFrame, name: str) -> pd.Series:
    return t.set_index("proxy").loc[name]


def test_equal_and_inverted_scores(tables):
    acc, sc = tables
    t = rank_correlations(acc, sc, n_boot=300)
    for name in ("same", "exp"):
        r = row(t, name)
        assert (r["kendall"], r["spearman"], r["top_precision"]) == (1.0, 1.0, 1.0)
        assert r["kendall_lo"] > 0.9 and r["spearman_lo"] > 0.95 and r["top_lo"] >= 0.75
        assert r["n_designs"] == N and r["top_k"] == 4  # ceil(10% of 40)
    r = row(t, "inverted")
    assert (r["kendall"], r["spearman"], r["top_precision"]) == (-1.0, -1.0, 0.0)
    assert r["kendall_hi"] < -0.9 and r["top_hi"] <= 0.25


def test_independent_noise_is_about_zero(tables):
    acc, sc = tables
    r = row(rank_correlations(acc, sc, proxies=["noise"], n_boot=500), "noise")
    assert abs(r["kendall"]) < 0.25 and r["kendall_lo"] < 0 < r["kendall_hi"]
    assert r["spearman_lo"] < 0 < r["spearman_hi"]
    assert r["kendall_hi"] - r["kendall_lo"] < 0.6  # an interval, not everything


def test_constant_score_gets_chance_precision_and_no_tau(tables):
    acc, sc = tables
    r = row(rank_correlations(acc, sc, proxies=["constant"], n_boot=100), "constant")
    assert math.isnan(r["kendall"]) and math.isnan(r["spearman"])
    assert r["top_precision"] == pytest.approx(4 / N)  # k/n: a random order among ties


def test_only_designs_in_both_tables_count(tables):
    acc, sc = tables
    part = sc[sc["design_id"] < "d10"]
    r = row(rank_correlations(acc, part, proxies=["same"], n_boot=50), "same")
    assert r["n_designs"] == 10 and r["top_k"] == 1 and r["kendall"] == pytest.approx(1.0)


def test_intervals_reproduce_with_the_seed(tables):
    acc, sc = tables
    a = rank_correlations(acc, sc, proxies=["noise"], n_boot=200, seed=3)
    b = rank_correlations(acc, sc, proxies=["noise"], n_boot=200, seed=3)
    c = rank_correlations(acc, sc, proxies=["noise"], n_boot=200, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert a["kendall_lo"].iloc[0] != c["kendall_lo"].iloc[0]


def test_top_weights_share_tied_places():
    w = top_weights(np.array([[5.0, 4.0, 4.0, 4.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]]), 2)
    np.testing.assert_allclose(w, [[1.0, 1 / 3, 1 / 3, 1 / 3, 0.0], [0, 0, 0, 1, 1]])
    assert w.sum(axis=1).tolist() == pytest.approx([2.0, 2.0])


def test_vectorised_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, (20, 11)).astype(float)
    y = x + rng.integers(0, 3, (20, 11))
    want = [spearmanr(a, b).statistic for a, b in zip(x, y, strict=True)]
    assert _spearman_rows(x, y) == pytest.approx(want)


def test_scores_frame_reads_zc_records():
    recs = [
        {"design_id": "a", "seed": 0, "status": "ok",
         "zero_cost": {"scores": {"synflow": 2.0, "naswot": None}}},
        {"design_id": "b", "seed": 1, "status": "failed", "zero_cost": None},
    ]
    f = scores_frame(recs)
    assert f["design_id"].tolist() == ["a"] and f["synflow"].tolist() == [2.0]
    assert math.isnan(f["naswot"].iloc[0])


def test_proxy_matrix(tables):
    acc, sc = tables
    m = proxy_matrix(sc, ["same", "inverted", "noise"], accuracy=acc)
    assert list(m.index) == ["test_acc", "same", "inverted", "noise"]
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T)
    assert m.loc["test_acc", "same"] == 1.0 and m.loc["same", "inverted"] == -1.0
    means = sc.groupby("design_id")[["same", "noise"]].mean()
    assert m.loc["same", "noise"] == pytest.approx(
        kendalltau(means["same"], means["noise"]).statistic)


def zc_run(tmp_path, records):
    """A zc run directory of the fake run's ok cpu records: scores acc and -acc."""
    from studies.store import RecordStore

    store = RecordStore(tmp_path / "zc")
    for r in records:
        store.write({**{k: r[k] for k in ("design_id", "seed", "dataset")}, "fidelity": "zc",
                     "fidelity_config": {"name": "zc"}, "status": "ok", "val_acc": None,
                     "test_acc": None, "curve": [], "created": "2026-01-01T00:00:00+00:00",
                     "zero_cost": {"scores": {"acc": r["test_acc"], "minus": -r["test_acc"]},
                                   "seconds": {}, "errors": {}}})
    return store.run_dir


def test_cli_on_a_fake_run(tmp_path, capsys):
    from analysis.proxies.ranks import main

    import fake_records as fake

    run = fake.write_fake_run(tmp_path / "run")
    cpu = [r for r in fake.fake_records() if r["fidelity"] == "cpu" and r["status"] == "ok"]
    zc = zc_run(tmp_path, cpu)
    assert main([str(run), str(zc), "--fidelity", "cpu", "--n-boot", "100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["proxy", "n_designs", "top_k", "kendall"]
    assert lines[1].split()[3] == "1.0" and lines[2].split()[3] == "-1.0"
    # Two fidelities in the run and none chosen: one line, exit 2.
    assert main([str(run), str(zc)]) == 2
    err = capsys.readouterr().err
    assert "--fidelity None" in err and len(err.strip().splitlines()) == 1


def test_scores_export_round_trips(tmp_path):
    from analysis.proxies.ranks import read_scores, write_scores

    import fake_records as fake

    cpu = [r for r in fake.fake_records() if r["fidelity"] == "cpu" and r["status"] == "ok"]
    zc = zc_run(tmp_path, cpu)
    table = write_scores(zc, tmp_path / "zc.csv")
    assert list(table.columns) == ["design_id", "seed", "fidelity", "dataset", "zc_acc",
                                   "zc_minus", "config"]
    a, b = read_scores(zc), read_scores(tmp_path / "zc.csv")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(cpu) and (a["acc"] == -a["minus"]).all()
    with pytest.raises(ValueError, match="no zero-cost scores"):
        read_scores(fake.write_fake_run(tmp_path / "run"))
