"""analysis: loading, the claim tests on planted effects, Pareto fronts, import hygiene."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import curves, stats
from analysis.pareto import hypervolume_2d, pareto_front, pareto_mask

import fake_records as fake

REPO = Path(__file__).resolve().parents[1]


def by_claim(df: pd.DataFrame) -> dict[str, analysis.Verdict]:
    """The verdicts of a one-slice frame, by claim (each claim exactly once)."""
    vs = analysis.check_claims(df, n_boot=1000)
    out = {v.claim: v for v in vs}
    assert len(out) == len(vs) and set(out) == set(analysis.CLAIMS)
    return out


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


# ---------------------------------------------------------------- Figure 3


def test_planted_concave_accuracy_is_supported_with_its_arg_max():
    df = analysis.frame_from_records(
        fake.fig3_records(lambda L: 0.6 - 0.01 * (L - 7) ** 2, Ls=range(2, 10))
    )
    vs = by_claim(df)
    v = vs["fig3_accuracy_concave"]
    assert v.verdict == "supported"
    assert v.effect == pytest.approx(-0.02, abs=0.002)  # 2a of the planted parabola
    assert v.ci_low < -0.02 < v.ci_high
    c_max = max(fake.balanced_design(L)["width"] for L in range(2, 10))
    l14, l14_sep = curves.eq14_L(c_max)
    assert (l14, l14_sep) == (pytest.approx(math.log(9 * 198)), pytest.approx(1 + math.log(198)))
    e14 = vs["fig3_argmax_eq14"]
    assert e14.effect + l14 == pytest.approx(7.0, abs=0.1)  # the measured arg-max L
    assert e14.ci_low + l14 < 7.0 < e14.ci_high + l14
    assert e14.verdict == "supported"  # 7 is within one of ln(9 * 198) = 7.49
    assert vs["fig3_argmax_eq14_separated"].effect + l14_sep == pytest.approx(7.0, abs=0.1)


def test_arg_max_far_from_eq14_is_not_supported():
    df = analysis.frame_from_records(fake.fig3_records(lambda L: 0.6 - 0.01 * (L - 3) ** 2))
    v = by_claim(df)["fig3_argmax_eq14"]
    assert v.verdict == "not supported" and v.ci_high < -1


@pytest.mark.parametrize(
    "acc_of_L, expected",
    [
        (lambda L: 0.5 + 0.01 * L, "inconclusive"),  # linear: no curvature either way
        (lambda L: 0.5 + 0.01 * (L - 4) ** 2, "not supported"),  # convex: the opposite
        (lambda L: 0.5, "inconclusive"),  # pure noise
    ],
    ids=["linear", "convex", "noise"],
)
def test_not_concave_is_not_supported(acc_of_L, expected):
    df = analysis.frame_from_records(fake.fig3_records(acc_of_L, noise=0.01, rng_seed=1))
    assert by_claim(df)["fig3_accuracy_concave"].verdict == expected


def test_noise_rarely_decides():
    """Calibration of the seed bootstrap: on pure noise, with 3 seeds per L, the interval of
    the curvature excludes zero in about 5% of data sets (the plain percentile bootstrap
    does so ~10% of the time; see stats.seed_interval)."""
    x = np.arange(2.0, 7.0)
    w = np.linalg.pinv(np.vander(x, 3))[0]
    rng = np.random.default_rng(7)
    decided = 0
    for r in range(400):
        groups = [rng.normal(0, 1, 3) for _ in x]
        est = w @ [g.mean() for g in groups]
        reps = stats.bootstrap_means(groups, 1000, np.random.default_rng(r)) @ w
        lo, hi = stats.seed_interval(est, reps, stats.welch_dof(w, groups))
        decided += stats.verdict_rule(lo, hi) != "inconclusive"
    assert decided / 400 < 0.07


def test_width_concave_and_non_sparsity_convex_of_the_design_space():
    vs = by_claim(analysis.frame_from_records(fake.fig3_records(lambda L: 0.5)))
    w, ns = vs["fig3_width_concave"], vs["fig3_non_sparsity_convex"]
    # widths 64/144/174/188/198: second differences -50, -16, -4
    assert w.verdict == "supported" and (w.ci_low, w.ci_high) == (-50, -4) and w.n == 5
    assert ns.verdict == "supported" and ns.ci_low > 0
    # to L = 9 integer branch sizes make the width jump (156 -> 190 at K = 2): not concave
    longer = by_claim(
        analysis.frame_from_records(fake.fig3_records(lambda L: 0.5, Ls=range(2, 10)))
    )
    assert longer["fig3_width_concave"].verdict == "inconclusive"
    assert longer["fig3_width_concave"].ci_low < 0 < longer["fig3_width_concave"].ci_high


def test_failed_records_are_excluded_from_fits():
    recs = fake.fig3_records(lambda L: 0.6 - 0.01 * (L - 4) ** 2)
    peak = fake.balanced_design(4)
    junk = [
        fake.record(peak, None, fidelity="cpu", dataset="cifar100", seed=s, status="failed")
        for s in (10, 11)
    ]
    for r in junk:
        r["test_acc"] = 0.0  # a failed record's number must never enter a fit
    base = by_claim(analysis.frame_from_records(recs))
    with_junk = by_claim(analysis.frame_from_records(recs + junk))
    assert base["fig3_accuracy_concave"].verdict == "supported"
    assert repr(with_junk) == repr(base)  # repr: NaN effects compare equal as text


# ---------------------------------------------------------------- other claims


def test_balance_condition_planted_both_ways():
    bal = fake.describe(144, (1, 12, 12))
    unbal = [fake.describe(144, (1, 8, 18)), fake.describe(120, (1, 6, 24))]
    good = planted([(bal, 0.60)] + [(d, 0.58) for d in unbal])
    bad = planted([(bal, 0.57)] + [(d, 0.59) for d in unbal])
    v = by_claim(good)["balance_condition"]
    assert v.verdict == "supported" and v.effect == pytest.approx(0.02, abs=0.004)
    assert by_claim(bad)["balance_condition"].verdict == "not supported"


def test_complementary_condition_planted():
    comp, denser, sparser = (
        fake.describe(144, (1, 12, 12)),
        fake.describe(112, (1, 16, 16)),
        fake.describe(184, (1, 8, 8)),
    )
    df = planted([(comp, 0.60), (denser, 0.58), (sparser, 0.55)])
    vs = by_claim(df)
    v_d, v_s = vs["fig2_complementary_vs_denser"], vs["fig2_complementary_vs_sparser"]
    assert v_d.verdict == v_s.verdict == "supported"
    assert v_d.effect == pytest.approx(0.02, abs=0.004)
    assert v_s.effect == pytest.approx(0.05, abs=0.004)
    flipped = planted([(comp, 0.55), (denser, 0.58), (sparser, 0.58)])
    assert by_claim(flipped)["fig2_complementary_vs_denser"].verdict == "not supported"


def test_families_at_equal_params():
    v2 = fake.describe(144, (1, 12, 12))
    xc = fake.describe(64, (1, 64))
    v1 = fake.describe(80, (2, 40))
    df = planted([(v2, 0.62), (xc, 0.60), (v1, 0.63)])
    vs = by_claim(df)
    assert vs["igcv2_vs_xception"].verdict == "supported"
    assert vs["igcv2_vs_xception"].effect == pytest.approx(0.02, abs=0.004)
    assert vs["igcv2_vs_igcv1"].verdict == "not supported"
    far = planted([(v2, 0.62), (fake.describe(256, (1, 256)), 0.5)])
    assert "no equal-parameter group" in by_claim(far)["igcv2_vs_xception"].detail


def test_regression_recovers_planted_width_and_non_sparsity_effects():
    designs = []  # plain8 blocks of many widths and L: width and non-sparsity vary apart
    for C in (48, 64, 96, 128, 144, 192, 256):
        for tail in ((C,), (16, 16), (8, 8, 8), (4, 4, 4, 4)):
            if all(C % k == 0 for k in tail):
                designs.append(fake.describe(C, (1, *tail)))
    accs = [0.3 + 0.05 * math.log(d["width"]) + 0.5 * d["non_sparsity"] for d in designs]
    df = planted(list(zip(designs, accs, strict=True)), seeds=2, noise=0.002, rng_seed=3)
    vs = analysis.check_claims(df, n_boot=200)
    (w,) = [v for v in vs if v.claim == "width_effect"]
    (ns,) = [v for v in vs if v.claim == "non_sparsity_effect"]
    assert w.verdict == ns.verdict == "supported"
    assert w.ci_low < 0.05 < w.ci_high and ns.ci_low < 0.5 < ns.ci_high


def test_rank_agreement_between_fidelities():
    designs = fake.benchmark_designs()[:8]
    base = np.linspace(0.4, 0.6, len(designs))
    same = planted(list(zip(designs, base, strict=True)), fidelity="cpu")
    agree = pd.concat(
        [same, planted(list(zip(designs, base + 0.2, strict=True)), fidelity="proxy")]
    )
    rank = "fidelity_rank_agreement"
    (v,) = [v for v in analysis.check_claims(agree, n_boot=500) if v.claim == rank]
    assert (v.verdict, v.fidelity, v.n) == ("supported", "cpu vs proxy", 8)
    assert v.effect == pytest.approx(1.0)
    flip = pd.concat([same, planted(list(zip(designs, 1 - base, strict=True)), fidelity="proxy")])
    (v,) = [v for v in analysis.check_claims(flip, n_boot=500) if v.claim == rank]
    assert v.verdict == "not supported" and v.effect == pytest.approx(-1.0)
    assert by_claim(same)[rank].verdict == "inconclusive"


def test_vectorised_kendall_tau_matches_scipy():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (30, 9)).astype(float)  # many ties: tau-b's denominator matters
    y = x + rng.integers(0, 3, (30, 9))
    expected = [kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)]
    assert stats.kendall_tau_b(x, y) == pytest.approx(expected)


def test_too_little_data_is_inconclusive_for_every_claim_never_an_error():
    d = fake.describe(144, (1, 12, 12))
    tiny = planted([(d, 0.6)], seeds=1)
    failed = analysis.frame_from_records(
        [fake.record(d, None, fidelity="cpu", dataset="cifar10", seed=0, status="failed")]
    )
    two_levels = analysis.frame_from_records(fake.fig3_records(lambda L: 0.5, Ls=(3, 4)))
    for df in (tiny, failed, two_levels):
        vs = analysis.check_claims(df, n_boot=200)
        assert {v.claim for v in vs} == set(analysis.CLAIMS)
        assert all(v.verdict == "inconclusive" and v.detail for v in vs)
    v = by_claim(two_levels)["fig3_accuracy_concave"]
    assert ">= 3 levels" in v.detail


def test_verdicts_are_frozen_and_reproducible():
    df = analysis.frame_from_records(fake.fake_records(seeds=2))
    a, b = analysis.check_claims(df, n_boot=300), analysis.check_claims(df, n_boot=300)
    assert repr(a) == repr(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a[0].verdict = "supported"  # type: ignore[misc]
    assert all(v.verdict in {"supported", "not supported", "inconclusive"} for v in a)


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
        "import analysis.load, analysis.claims, analysis.curves, analysis.pareto\n"
        "import analysis.figures, analysis.report, analysis.dashboard, analysis.__main__\n"
        "import seaborn, matplotlib.figure, optuna, optuna_dashboard, scipy.stats\n"
        "analysis.write_report, analysis.serve_dashboard, analysis.check_claims\n"
        "bad = sorted(m for m in ('torch', 'ray') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_fig3_claims_on_a_fig2_sweep_count_only_the_usable_levels_of_L():
    # fig2's L=2 designs are sparse (density < 1), so only L = 3 and 4 can form a Figure 3
    # sweep: the message must say 2 levels, not the 3 that all designs have.
    import pandas as pd

    import search_space as ss
    from analysis.claims import check_claims
    from studies.presets import get_preset

    rows = [{**ss.describe(ss.parse(d), num_classes=10), "design_id": d, "seed": s,
             "status": "ok", "fidelity": "cpu", "dataset": "cifar10",
             "val_acc": 0.4 + 0.001 * i + 0.002 * s, "test_acc": 0.4 + 0.001 * i}
            for i, d in enumerate(get_preset("fig2").design_ids) for s in range(2)]
    concave = [v for v in check_claims(pd.DataFrame(rows)) if "concave in L" in v.statement]
    assert concave and all(v.verdict == "inconclusive" for v in concave)
    assert all("dense composed kernel at >= 3 levels of L (most: 2)" in v.detail
               for v in concave)
