"""analysis: loading, the claim tests on planted effects, Pareto fronts, import hygiene."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import stats
from analysis.report.pareto import hypervolume_2d, pareto_front, pareto_mask

import fake_records as fake

REPO = Path(__file__).resolve().parents[1]


def planted(designs_accs, *, seeds=3, noise=0.002, fidelity="cpu", rng_seed=0):
    """Records for (describe dict, accuracy) pairs with Gaussian seed noise."""
    rng = np.random.default_rng(rng_seed)
    return analysis.frame_from_records(
        fake.record(
            d, float(acc + rng.normal(0, noise)), fidelity=fidelity, dataset="cifar100", seed=s
        )
        for d, acc in designs_accs
        for s in range(seeds)
    )


# ---------------------------------------------------------------- loading


def test_load_results_round_trip(tmp_path):
    recs = fake.fake_records(seeds=2)
    run = fake.write_fake_run(tmp_path / "run", recs)
    df = analysis.load_results(run)
    assert len(df) == len(recs)
    assert not df.duplicated(["design_id", "fidelity", "dataset", "seed"]).any()
    by_key = df.set_index(["design_id", "fidelity", "dataset", "seed"])
    for r in recs:
        row = by_key.loc[(r["design_id"], r["fidelity"], r["dataset"], r["seed"])]
        assert row["status"] == r["status"]
        assert row["K"] == r["K"] and row["width"] == r["width"] and row["L"] == r["L"]
        assert row["curve"] == r["curve"]
        if r["status"] == "ok":
            assert row["test_acc"] == pytest.approx(r["test_acc"])
        else:
            assert math.isnan(row["test_acc"]) and row["reason"] == r["reason"]
    assert (df["status"] == "failed").sum() == 2
    assert df["val_acc"].dtype == float and str(df["seed"].dtype) == "Int64"


def test_load_skips_temp_and_corrupt_files_and_keeps_latest_duplicate(tmp_path):
    d = fake.describe(144, (1, 12, 12))
    old = fake.record(d, 0.5, fidelity="cpu", dataset="cifar10", seed=0)
    new = {**old, "test_acc": 0.6, "created": "2026-01-01T00:00:00+00:00"}
    rec_dir = tmp_path / "records"
    rec_dir.mkdir()
    (rec_dir / "a.json").write_text(json.dumps(old))
    (rec_dir / "b.json").write_text(json.dumps(new))  # the same key, written later
    (rec_dir / ".tmp-x.json").write_text("{half")  # a writer's temporary file
    (rec_dir / "c.json").write_text("{not json")
    with pytest.warns(UserWarning) as caught:
        df = analysis.load_results(tmp_path)
    messages = " ".join(str(w.message) for w in caught)
    assert "c.json" in messages and ".tmp-x" not in messages
    assert len(df) == 1 and df["test_acc"].iloc[0] == pytest.approx(0.6)


def test_load_results_missing_dir_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        analysis.load_results(tmp_path / "nothere")


def test_load_results_joins_optuna_trials(tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    d = fake.describe(144, (1, 12, 12))
    on_disk = fake.record(d, 0.5, fidelity="cpu", dataset="cifar10", seed=0)
    only_in_db = fake.record(d, 0.55, fidelity="cpu", dataset="cifar10", seed=1)
    fake.write_fake_run(tmp_path, [on_disk])
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s1", storage=url, direction="maximize")
    for rec in (on_disk, only_in_db):
        t = study.ask()
        for k in ("design_id", "fidelity", "dataset", "seed"):
            t.set_user_attr(k, rec[k])
        if rec is only_in_db:
            t.set_user_attr("record", rec)
        study.tell(t, rec["test_acc"])
    df = analysis.load_results(tmp_path, storage=url).sort_values("seed")
    assert list(df["seed"]) == [0, 1]
    assert list(df["optuna_trial"]) == [0, 1] and set(df["optuna_study"]) == {"s1"}
    assert df["test_acc"].tolist() == pytest.approx([0.5, 0.55])


def test_aggregate_by_hand():
    d1, d2 = fake.describe(144, (1, 12, 12)), fake.describe(64, (1, 64))
    recs = [
        fake.record(d1, a, fidelity="cpu", dataset="cifar10", seed=s)
        for s, a in enumerate((0.5, 0.6, 0.7))
    ]
    recs.append(fake.record(d1, None, fidelity="cpu", dataset="cifar10", seed=3, status="failed"))
    recs.append(fake.record(d2, None, fidelity="cpu", dataset="cifar10", seed=0, status="failed"))
    agg = analysis.aggregate(analysis.frame_from_records(recs)).set_index("design_id")
    row = agg.loc[d1["id"]]
    assert row["test_acc_mean"] == pytest.approx(0.6)
    assert row["test_acc_std"] == pytest.approx(0.1)  # sample std of 0.5, 0.6, 0.7
    assert row["test_acc_n"] == 3 and row["n_failed"] == 1
    assert agg.loc[d2["id"], "test_acc_n"] == 0 and agg.loc[d2["id"], "n_failed"] == 1
    assert agg.loc[d2["id"], "family"] == "xception"


# ---------------------------------------------------------------- statistics


def test_vectorised_kendall_tau_matches_scipy():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (30, 9)).astype(float)  # many ties: tau-b's denominator matters
    y = x + rng.integers(0, 3, (30, 9))
    expected = [kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)]
    assert stats.kendall_tau_b(x, y) == pytest.approx(expected)


# ---------------------------------------------------------------- Pareto


POINTS = pd.DataFrame(
    {
        "design_id": ["A", "B", "C", "D", "E", "F"],
        "params": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0],
        "acc": [0.5, 0.7, 0.6, 0.9, 0.85, 0.95],
    }
)


def test_pareto_front_and_hypervolume_by_hand():
    front = pareto_front(POINTS, cost="params", metric="acc", reference=(6.0, 0.0))
    # C is dominated by B, E by D; F lies beyond the reference cost: on the front, no volume.
    assert front.ids == ("A", "B", "D", "F")
    # (2-1)*0.5 + (4-2)*0.7 + (6-4)*0.9
    assert front.hypervolume == pytest.approx(3.7)
    assert hypervolume_2d(POINTS["params"], POINTS["acc"], (6.0, 0.4)) == pytest.approx(
        1 * 0.1 + 2 * 0.3 + 2 * 0.5
    )
    default = pareto_front(POINTS, cost="params", metric="acc")
    assert default.reference == (pytest.approx(7.7), 0.0)
    assert default.hypervolume == pytest.approx(0.5 + 1.4 + 3 * 0.9 + 0.7 * 0.95)


def test_pareto_ties_stay_on_the_front():
    mask = pareto_mask(np.array([1.0, 1.0, 2.0]), np.array([0.5, 0.5, 0.4]))
    assert mask.tolist() == [True, True, False]


def test_pareto_fronts_of_a_results_frame():
    xc = fake.describe(64, (1, 64))  # 37,924 params, the cheapest
    v2 = fake.describe(144, (1, 12, 12))  # 52,372 params, the most accurate
    dense = fake.describe(112, (1, 16, 16))  # 46,132 params, worse than the cheaper xc
    df = planted([(xc, 0.60), (v2, 0.65), (dense, 0.58)], noise=0.0)
    fronts = {f.cost: f for f in analysis.pareto_fronts(df)}
    assert set(fronts) == {"params", "flops", "latency_b1_ms"}
    p = fronts["params"]
    assert p.ids == (xc["id"], v2["id"]) and p.n_points == 3
    assert p.costs == (37924.0, 52372.0) and p.values == pytest.approx((0.60, 0.65))
    assert p.metric == "test_acc_mean"
    assert p.hypervolume == pytest.approx((52372 - 37924) * 0.60 + (1.1 * 52372 - 52372) * 0.65)


# ---------------------------------------------------------------- import hygiene


def test_import_analysis_is_light_and_never_pulls_torch_or_ray():
    code = (
        "import sys, analysis\n"
        "assert 'pandas' not in sys.modules, 'import analysis should be lazy'\n"
        "import analysis.load, analysis.claims.check, analysis.claims.figure3\n"
        "import analysis.report.pareto, analysis.report.figures, analysis.report.html\n"
        "import analysis.report.dashboard, analysis.__main__\n"
        "import analysis.claims.rank_agreement, analysis.claims.code_groups\n"
        "import seaborn, matplotlib.figure, optuna, optuna_dashboard, scipy.stats\n"
        "analysis.write_report, analysis.serve_dashboard, analysis.check_claims\n"
        "bad = sorted(m for m in ('torch', 'ray') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
