"""Power before compute: the seeds that resolve a claim, and --seeds-for-power."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as st

from analysis.claims import power
from analysis.claims.contrasts import PAIR_MIN_SEEDS
from studies import run
from studies.power_seeds import PLAN, power_seeds


def _welch_power(n: int, sd: float, delta: float, level: float, sims: int = 4000) -> float:
    """Monte Carlo: two designs, n seeds each, the two-sided Welch interval at ``level``
    excludes zero on the true side."""
    rng = np.random.default_rng(0)
    a = rng.normal(delta, sd, (sims, n))
    b = rng.normal(0.0, sd, (sims, n))
    va, vb = a.var(axis=1, ddof=1) / n, b.var(axis=1, ddof=1) / n
    dof = (va + vb) ** 2 / (va**2 / (n - 1) + vb**2 / (n - 1))
    lo = a.mean(axis=1) - b.mean(axis=1) - st.t.ppf(0.5 + level / 2, dof) * np.sqrt(va + vb)
    return float((lo > 0).mean())


def test_seeds_needed_gives_the_power_it_claims_on_a_two_design_contrast():
    sd, delta, m = 0.0145, 0.03, 3
    se3 = sd * np.sqrt(2 / 3)  # a difference of two design means at 3 seeds each
    n, _ = power.seeds_needed(se3, 4.0, 3, decide_at=delta, within=delta, m=m)
    assert 3 <= n < PAIR_MIN_SEEDS  # unpaired, as the simulation
    level = 1 - 0.05 / m
    assert _welch_power(n, sd, delta, level) >= 0.78
    assert _welch_power(n - 1, sd, delta, level) < 0.8


def test_seeds_needed_grows_with_noise_and_the_family_and_shrinks_with_the_effect():
    base = power.seeds_needed(0.006, 4.0, 3, decide_at=0.01, within=0.01, m=1)
    assert power.seeds_needed(0.012, 4.0, 3, decide_at=0.01, within=0.01, m=1)[0] > base[0]
    assert power.seeds_needed(0.006, 4.0, 3, decide_at=0.01, within=0.01, m=8)[0] > base[0]
    assert power.seeds_needed(0.006, 4.0, 3, decide_at=0.02, within=0.02, m=1)[0] < base[0]
    # every group of an intersection-union claim must pass: more seeds than one group
    assert power.seeds_needed(0.006, 4.0, 3, decide_at=0.01, within=0.01, m=1,
                              groups=3)[0] > base[0]
    # no variance to scale (one seed): out of reach, never a made-up number
    assert power.seeds_needed(float("nan"), 0.0, 1, decide_at=0.01, within=0.01, m=1) == (
        power.SEARCH + 1, power.SEARCH + 1)


def test_pairing_from_eleven_seeds_lowers_the_standard_error_by_the_seed_share():
    s10, d10 = power.se_at(0.01, 4.0, 3, 10)
    s11, d11 = power.se_at(0.01, 4.0, 3, 11)
    assert s10 == pytest.approx(0.01 * np.sqrt(3 / 10)) and d10 == pytest.approx(18.0)
    assert s11 == pytest.approx(0.01 * np.sqrt(3 / 11) * np.sqrt(0.8)) and d11 == 10.0


def test_the_committed_plan_has_a_fixed_n_per_preset_and_rung():
    plan = json.loads(PLAN.read_text())
    assert plan["design"].startswith("fixed n") and plan["cap"] == power.CAP
    fig3 = plan["sweeps"]["fig3"]["cpu"]
    assert fig3["seeds"] == max(n for n in fig3["claims"].values() if n <= plan["cap"])
    seeds, note = power_seeds("fig3", "cpu")
    assert seeds == tuple(range(fig3["seeds"])) and "one look" in note
    with pytest.raises(ValueError, match="no power analysis for preset fig3 at fidelity paper"):
        power_seeds("fig3", "paper")
    with pytest.raises(ValueError, match="needs --preset"):
        power_seeds(None, "cpu")


def test_dry_run_with_seeds_for_power_shows_the_seeds_and_their_time(capsys):
    n = json.loads(PLAN.read_text())["sweeps"]["table2"]["cpu"]["seeds"]
    assert run.main(["--preset", "table2", "--seeds-for-power", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{6 * n} trials (6 designs x {n} seeds, grid)" in out
    assert f"--seeds-for-power: seeds 0-{n - 1}: {n} per design" in out
    assert "estimated on this machine" in out


@pytest.mark.parametrize("argv, message", [
    (["--preset", "table2", "--seeds", "3", "--seeds-for-power"], "drop --seeds"),
    (["--budget", "10k", "--seeds-for-power"], "needs --preset"),
    (["--preset", "table4", "--fidelity", "cpu", "--seeds-for-power"], "out of reach"),
])
def test_bad_seeds_for_power_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert run.main([*argv, "--dry-run", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_the_sesoi_reasons_in_docs_analysis_are_the_papers_numbers_and_the_plans():
    """docs/analysis.md: the paper's differences 0.1-2.9 points (median 0.7), seed sds
    0.05-0.8, Table 2's CIFAR-10 0.3-0.4; 19-34 seeds for Figure 3 and Table 2 at `cpu`, 31
    for Table 5 at `cpu-v2`."""
    from pathlib import Path

    import pandas as pd

    from analysis.claims.verdicts import SESOI

    root = Path(__file__).resolve().parents[1]
    paper = next(p for p in (root.parent / "shared", Path("/work/shared"))
                 if (p / "paper" / "tables.csv").is_file()) / "paper" / "tables.csv"
    t = pd.read_csv(paper)
    diffs, sds, t2 = [], [], []
    for table, k in {"2": 2, "3": 3, "4": 2, "5": 3, "6": 2}.items():
        rows = t[t["table"].astype(str) == table].reset_index(drop=True)
        for i in range(0, len(rows), k):
            g = rows.iloc[i:i + k]
            arm = g[g["block"].eq("IGCV2 II")] if table == "5" else g[
                g["block"].str.startswith("IGCV2")]
            others = g.drop(arm.index)
            for col in ("cifar10", "cifar100", "tiny_imagenet"):
                if arm[f"{col}_acc"].notna().all():
                    diffs.append(arm[f"{col}_acc"].iloc[0] - others[f"{col}_acc"].max())
                    if table == "2" and col == "cifar10":
                        t2.append(diffs[-1])
                sds += [x for x in g[f"{col}_std"] if pd.notna(x)]
    assert (round(min(diffs), 1), round(max(diffs), 1)) == (0.1, 2.9)
    assert round(float(np.median(diffs)), 1) == 0.7
    assert (min(sds), round(max(sds), 1)) == (0.05, 0.8)
    assert (round(min(t2), 1), round(max(t2), 1)) == (0.3, 0.4)
    plan = json.loads(PLAN.read_text())["sweeps"]
    seeds = [plan["fig3"]["cpu"]["claims"]["fig3_accuracy_concave"],
             plan["table2"]["cpu"]["claims"]["table2_igcv2_vs_xception"]]
    table5 = plan["table5"]["cpu-v2"]["claims"]["table5_igcv2ii_best"]
    doc = " ".join((root / "docs" / "analysis.md").read_text().split())
    assert SESOI == 0.01 and f"{min(seeds)}-{max(seeds)} per design at `cpu`" in doc
    assert f"for Table 5 {table5} at `cpu-v2`" in doc
    assert ("are 0.1-2.9 points, median 0.7, with seed sds of 0.05-0.8" in doc
            and "(Table 2: 0.3-0.4)" in doc)
