"""--time-budget: the plan (studies.halving), the driver's decisions and report
(studies.time_budget), the memory pre-screen (evaluators.memory), the CLI's validation; and,
marked slow, a whole time-budgeted sweep on synthetic data within its budget."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import evaluators as ev
import search_space as ss
from evaluators.cost_model import trial_shape
from evaluators.memory import trial_memory_bytes
from evaluators.record import trial_key
from studies import budget_driver as bd
from studies import budget_plan as bp
from studies import budget_report as report
from studies import cli, run
from studies import halving as hv
from studies import rungs as rg
from studies import time_budget as tb
from studies.estimate import fmt_seconds
from studies.plan import Plan
from studies.store import RecordStore

REPO = Path(__file__).resolve().parents[1]


# --- durations -------------------------------------------------------------------------------


def test_durations_as_users_write_them():
    assert hv.parse_duration("1h") == 3600
    assert hv.parse_duration("90m") == 5400
    assert hv.parse_duration("1h30m") == 5400
    assert hv.parse_duration("45s") == 45
    assert hv.parse_duration("1.5h") == 5400
    assert hv.parse_duration(" 600 ") == 600
    assert hv.parse_duration("1d") == 86_400
    for bad in ("", "h", "1h-", "abc", "0", "0m", "-5", "nan"):
        with pytest.raises(ValueError, match=r"--time-budget .*(duration|positive)"):
            hv.parse_duration(bad)
    assert [fmt_seconds(s) for s in (3600, 125, 42)] == ["1h00m", "2m05s", "42s"]


# --- the ladder ------------------------------------------------------------------------------


def test_ladder_below_cpu_v2_measures_on_the_base_images_up_to_the_rung_and_the_dataset():
    ladder = rg.ladder_fidelities(ev.get_fidelity("cpu-v2"), "cifar10")
    shapes = [trial_shape(f.to_dict(), "cifar10") for f in ladder]
    assert [(s.train_images, s.epochs) for s in shapes] == [(7200, 2), (3600, 1)]
    # validation: 7,200 per epoch at rung 0, as many as it trains on at rung 1; test: all
    # 10,000 (not the 14,400 passes), then 3,600
    assert [s.eval_images for s in shapes] == [7200 * 2 + 10_000, 3600 + 3600]
    assert all(f.name.startswith("cpu-v2+") and f.zero_init_residual for f in ladder)


def test_ladder_below_the_cpu_fidelity_is_named_keyed_and_sized_as_trials_draw():
    ladder = rg.ladder_fidelities(ev.get_fidelity("cpu"), "cifar10")
    # cpu trains 7,200 images x 2 epochs: rungs of 14,400 and 3,600 image passes (225 and
    # 56 SGD steps of 64); 900 passes (14 steps) is under the floor of 50.
    shapes = [trial_shape(f.to_dict(), "cifar10") for f in ladder]
    assert [(s.train_images, s.epochs) for s in shapes] == [(7200, 2), (3600, 1)]
    assert [s.eval_images for s in shapes] == [800 * 2 + 2000, 800 + 2000]
    assert {s.resolution for s in shapes} == {8} and {s.latency_images for s in shapes} == {0}
    names = [f.name for f in ladder]
    assert len(set(names)) == 2 and all(n.startswith("cpu+train_size=") for n in names)
    assert ev.with_changes(ev.get_fidelity("cpu"), **hv.rung_configs(
        ev.get_fidelity("cpu").to_dict(), dataset_train=50_000)[1]["changes"]) == ladder[1]
    # Below the floor the quarter-ladder would go on: 900 and 225 passes.
    deeper = hv.rung_configs(ev.get_fidelity("cpu").to_dict(), dataset_train=50_000,
                             min_steps=1)
    passes = [r["train_images"] * r["epochs"] for r in deeper]
    assert passes == [14_400, 3_600, 900, 225]
    # Each rung trains ETA x the images of the one below it.
    assert all(a == hv.ETA * b for a, b in zip(passes, passes[1:], strict=False))
    # The floor counts SGD steps: batches of 128 halve a rung's steps (3,600 passes: 28).
    big_batch = ev.with_changes(ev.get_fidelity("cpu"), batch_size=128)
    assert len(rg.ladder_fidelities(big_batch, "cifar10")) == 1
    # The smoke fidelity (synthetic, 900 x 4 at 8x8; the machinery's floor of 3 steps) has
    # three rungs.
    smoke = [trial_shape(f.to_dict(), "synthetic")
             for f in rg.ladder_fidelities(ev.get_fidelity("smoke"), "synthetic")]
    assert [(s.train_images, s.epochs) for s in smoke] == [(900, 4), (900, 1), (225, 1)]
    with pytest.raises(ValueError, match="fewer than 3 SGD steps on synthetic"):
        rg.ladder_fidelities(ev.with_changes(ev.get_fidelity("smoke"), train_size=150,
                                             epochs=1), "synthetic")  # 135 passes: 2 steps
    with pytest.raises(ValueError, match="fewer than 50 SGD steps on cifar10"):
        rg.ladder_fidelities(ev.with_changes(ev.get_fidelity("smoke"), epochs=2),
                             "cifar10")  # 900 images x 2 epochs: 28 steps


# --- the plan --------------------------------------------------------------------------------


def test_the_plan_prefers_the_largest_top_rung_then_the_fewest_rungs():
    costs = [600.0, 150.0, 40.0, 12.0]  # seconds of a trial at ladder rungs 0..3
    # Everything at the base fits: no halving at all.
    full = hv.plan_ladder(n_designs=8, seeds=1, workers=2, seconds=2400, rung_seconds=costs)
    assert (full.rungs, full.designs, full.sampled) == ((0,), (8,), False)
    assert full.predicted_s == 4 * 600
    # 74 designs, one hour on 2 workers: rung 1 for the best 19, rung 2 for all:
    # 37 rounds of 40 s + 10 rounds of 150 s = 2,980 s.
    hour = hv.plan_ladder(n_designs=74, seeds=1, workers=2, seconds=3600, rung_seconds=costs)
    assert (hour.rungs, hour.designs, hour.predicted_s) == ((2, 1), (74, 19), 2980)
    # Less time: three rungs, 37 x 12 + 10 x 40 + 3 x 150 = 1,294 s.
    short = hv.plan_ladder(n_designs=74, seeds=1, workers=2, seconds=2400,
                           rung_seconds=costs)
    assert (short.rungs, short.designs, short.predicted_s) == ((3, 2, 1), (74, 19, 5), 1294)
    # Seeds multiply the trials.
    seeded = hv.plan_ladder(n_designs=74, seeds=2, workers=2, seconds=2400,
                            rung_seconds=costs)
    assert seeded.predicted_s <= 2400 and seeded.rungs[0] == 3
    # Too little for every design at the cheapest rung: a sample, on the cheapest ladder.
    tiny = hv.plan_ladder(n_designs=74, seeds=1, workers=2, seconds=400, rung_seconds=costs)
    assert tiny.sampled and tiny.rungs == (3, 2, 1) and tiny.predicted_s <= 400
    n0 = tiny.designs[0]
    bigger = hv.designs_at(n0 + 1, 3)
    assert (math.ceil((n0 + 1) / 2) * 12 + math.ceil(bigger[1] / 2) * 40
            + math.ceil(bigger[2] / 2) * 150) > 400  # the largest sample that fits
    # Less still: fewer rungs on a smaller sample (two rungs: 4 x 12 + 150 s is over 190,
    # 2 x 12 + 40 s is not), then one design at the cheapest rung, then nothing.
    two = hv.plan_ladder(n_designs=74, seeds=1, workers=2, seconds=190, rung_seconds=costs)
    assert (two.rungs, two.sampled) == ((3, 2), True) and two.predicted_s <= 190
    one = hv.plan_ladder(n_designs=74, seeds=1, workers=2, seconds=13, rung_seconds=costs)
    assert (one.rungs, one.designs) == ((3,), (2,))
    assert hv.plan_ladder(n_designs=74, seeds=1, workers=2, seconds=11,
                          rung_seconds=costs) is None
    # Each rung's own start (Tune, its workers) counts.
    assert hv.plan_ladder(n_designs=74, seeds=1, workers=2, seconds=13, rung_seconds=costs,
                          rung_overhead_s=2) is None


def test_queue_makespan_is_tunes_fifo_on_the_workers():
    assert hv.queue_makespan([10, 1, 1, 1], 2) == 10  # the short ones share the other slot
    assert hv.queue_makespan([1, 1, 1, 10], 2) == 11
    assert hv.makespan(5, 10.0, 2) == 30


def test_the_next_rung_takes_what_the_time_left_allows():
    kw = dict(planned=19, seeds=1, workers=2)  # 74 candidates: one time each
    trial_s, later = [150.0] * 74, [[600.0] * 74]
    # 19 as planned: 10 rounds of 150 s + 3 of 600 s = 3,300 s; 20 costs the same (its
    # top rung takes 5 designs: 3 rounds too), 21 one more round of 150 s.
    assert hv.next_rung_designs(**kw, seconds=3300, trial_s=trial_s, later=later) == 20
    assert hv.next_rung_designs(**kw, seconds=3449, trial_s=trial_s, later=later) == 20
    # Slower than planned: fewer designs, the rung after them included.
    n = hv.next_rung_designs(**kw, seconds=2000, trial_s=trial_s, later=later)
    assert n < 19 and math.ceil(n / 2) * 150 + math.ceil(math.ceil(n / 4) / 2) * 600 <= 2000
    # Faster: up to half the candidates.
    assert hv.next_rung_designs(**kw, seconds=10_000, trial_s=trial_s, later=later) == 37
    assert hv.next_rung_designs(**kw, seconds=100, trial_s=trial_s, later=[]) == 0
    # The candidates' own times: the best designs may be the slowest. The best two take
    # 600 s, the rest 150 s: 10 fit 1,200 s (each worker one of 600 s, then four of 150 s),
    # where 16 of 150 s would.
    mixed = [600.0, 600.0] + [150.0] * 72
    assert hv.next_rung_designs(**kw, seconds=1200, trial_s=mixed, later=[]) == 10
    assert hv.next_rung_designs(**kw, seconds=1200, trial_s=trial_s, later=[]) == 16


def test_stratified_sample_covers_every_L_and_repeats_with_its_seed():
    designs = [d.id for d in ss.enumerate_designs(650_000, "plain8", num_classes=10)]
    sample = hv.stratified_sample(designs, 10, 3, stratum=lambda d: ss.parse(d).L)
    assert len(sample) == 10 and sample == [d for d in designs if d in sample]
    assert {ss.parse(d).L for d in sample} == {ss.parse(d).L for d in designs}  # L 2..6
    assert hv.stratified_sample(designs, 10, 3, stratum=lambda d: ss.parse(d).L) == sample
    assert hv.stratified_sample(designs, 10, 4, stratum=lambda d: ss.parse(d).L) != sample
    assert hv.stratified_sample(designs, 100, 0, stratum=len) == designs


def _rec(design, val, *, seed=0, status="ok", fidelity="f", test=None, wall=10.0):
    return {"design_id": design, "fidelity": fidelity, "dataset": "synthetic", "seed": seed,
            "status": status, "val_acc": val if status == "ok" else None,
            "test_acc": test if test is not None else val, "wall_s": wall, "params": 1000,
            "fidelity_config": {}, "curve": []}


def test_designs_rank_by_mean_validation_accuracy_of_their_ok_records():
    records = [_rec("a", 0.5), _rec("a", 0.7, seed=1), _rec("b", 0.55), _rec("c", 0.9,
                                                                             status="failed"),
               _rec("d", 0.6)]
    assert hv.rank_designs(records) == [("a", pytest.approx(0.6), 2), ("d", 0.6, 1),
                                        ("b", 0.55, 1)]


# --- memory ----------------------------------------------------------------------------------


def test_memory_estimate_grows_with_width_batch_and_resolution():
    cfg = {"resolution": 8, "batch_size": 64, "eval_batch_size": 500}
    small, wide = "plain8-c64-k1.64", "plain8-c2888-k1.2.2.2.2.2"
    at8 = trial_memory_bytes(wide, cfg, "cifar10")
    assert trial_memory_bytes(small, cfg, "cifar10") < at8
    assert trial_memory_bytes(wide, {**cfg, "resolution": 16}, "cifar10") > 3 * (
        at8 - tb_process_bytes())
    mid = "plain8-c1504-k1.16.16.16"  # heap-sized tensors at batch 64 and 32 alike
    assert trial_memory_bytes(mid, {**cfg, "batch_size": 32}, "cifar10") < trial_memory_bytes(
        mid, cfg, "cifar10")
    # Measured peaks (docs/studies.md): 0.60 GB for C=64, 3.38 for C=1504, 3.87 for C=2888;
    # the estimate errs high, by at most 20%.
    for design, measured in ((small, 0.60), (mid, 3.38), (wide, 3.87)):
        predicted = trial_memory_bytes(design, cfg, "cifar10") / 2**30
        assert measured <= predicted <= 1.2 * measured, design
    kept, skipped = rg.screen_memory(
        (small, wide), ev.with_changes(ev.get_fidelity("cpu"), resolution=8), "cifar10", 10,
        limit=(trial_memory_bytes(small, cfg, "cifar10") + at8) / 2)
    assert kept == [small] and list(skipped) == [wide] and skipped[wide] == at8


def tb_process_bytes() -> float:
    from evaluators import memory

    return memory.PROCESS_BYTES + (50_000 + 10_000) * 3 * 32 * 32


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_a_finished_trials_freed_heap_goes_back_to_the_system():
    import psutil

    from evaluators.memory import release_memory

    proc = psutil.Process()
    blocks = [bytearray(64 * 1024) for _ in range(4000)]  # 250 MB from glibc's heap
    kept = blocks[::2]
    del blocks  # every other block freed: holes the heap does not return by itself
    before = proc.memory_info().rss
    assert release_memory()
    assert proc.memory_info().rss < before - 64 * 2**20
    assert len(kept) == 2000


def test_memory_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv(rg.MEMORY_ENV, "5.5")
    assert rg.trial_memory_limit(2) == 5.5 * 2**30
    monkeypatch.setenv(rg.MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match="IGCBENCH_TRIAL_MEMORY_GB='lots'"):
        rg.trial_memory_limit(2)
    monkeypatch.delenv(rg.MEMORY_ENV)
    import psutil

    assert 0 < rg.trial_memory_limit(2) <= psutil.virtual_memory().total / 2


# --- the driver's decisions and the report, from records ----------------------------------


def _two_rungs(tmp_path):
    ladder = rg.ladder_fidelities(ev.get_fidelity("smoke"), "synthetic")
    plan = Plan(name="x", design_ids=("a", "b", "c", "d"), seeds=(0,), fidelity="smoke",
                dataset="synthetic")
    store = RecordStore(tmp_path)
    low = rg.Rung(2, ladder[2], ["a", "b", "c", "d"], "every design")
    for d, v in (("a", 0.40), ("b", 0.70), ("c", 0.55), ("d", 0.62)):
        store.write(_rec(d, v, fidelity=ladder[2].name))
    return ladder, plan, store, low


def test_a_rungs_trials_start_longest_first(tmp_path, monkeypatch):
    """The driver hands Tune a rung's designs longest-first (predicted), so no long trial
    starts last while the other worker idles; the Tune run's plan keeps that order."""
    from types import SimpleNamespace

    ladder = rg.ladder_fidelities(ev.get_fidelity("smoke"), "synthetic")
    designs = ["plain8-c16-k1.4.4", "plain8-c64-k1.64", "plain8-c44-k1.4.4.4",
               "plain8-c24-k1.24"]
    plan = Plan(name="lpt", design_ids=tuple(designs), seeds=(0,), fidelity="smoke",
                dataset="synthetic")
    request = SimpleNamespace(plan=plan, num_classes=10, cpus_per_trial=1.0,
                              gpus_per_trial=0.0, storage_url=f"sqlite:///{tmp_path}/o.db",
                              run_dir=tmp_path, data_dir=None, address=None,
                              time_budget_s=600.0)
    driver = bd.Driver(request, RecordStore(tmp_path), ladder, designs, 2,
                       time.monotonic() + 600, io.StringIO(), run.space_model())
    handed = {}

    def fake_run_rung(request, rung, order, seconds, config_cls, run_sweep, err, **kw):
        handed["order"] = order
        return 0

    real_run_rung = bd._run_rung
    monkeypatch.setattr(bd, "_run_rung", fake_run_rung)
    rung = rg.Rung(2, ladder[2], designs, "every design")
    driver.run(rung)
    costs = driver.costs(ladder[2], designs)
    assert sorted(handed["order"]) == sorted(designs)
    assert [costs[designs.index(d)] for d in handed["order"]] == sorted(costs, reverse=True)
    assert handed["order"] != designs  # the enumeration order is not longest-first here

    captured = {}

    def fake_sweep(cfg, out, err):
        captured["ids"] = cfg.plan.design_ids
        return 0

    from studies.sweep import SweepConfig

    assert real_run_rung(request, rung, handed["order"], 60.0, SweepConfig, fake_sweep,
                         io.StringIO()) == 0
    assert list(captured["ids"]) == handed["order"]


def test_the_next_rung_takes_the_best_of_the_rung_below(tmp_path):
    ladder, plan, store, low = _two_rungs(tmp_path)
    records = rg.rung_records(store, low, plan)
    assert len(records) == 4

    def costs_for(fidelity, designs):
        return [10.0 if fidelity is ladder[1] else 40.0 for _ in designs]

    nxt = rg.decide_next([low], 0, [2, 1, 0], ladder, records, costs_for=costs_for,
                          seeds=1, workers=2, left=1000)
    # 4 designs -> planned 1, but the time allows half of them: the best two.
    assert (nxt.ladder, nxt.designs) == (1, ["b", "d"])
    assert "best 2 of rung 2's 4" in nxt.decided
    # Little time: rung 0 after it is dropped rather than rung 1 (two designs take one
    # round of 10 s on two workers, one on one worker).
    two = rg.decide_next([low], 0, [2, 1, 0], ladder, records, costs_for=costs_for,
                          seeds=1, workers=2, left=15)
    assert two.designs == ["b", "d"]
    one = rg.decide_next([low], 0, [2, 1, 0], ladder, records, costs_for=costs_for,
                          seeds=1, workers=1, left=15)
    assert one.designs == ["b"]
    # The rungs' own start counts: 5 s each leaves room for one round only.
    assert rg.decide_next([low], 0, [2, 1, 0], ladder, records, costs_for=costs_for,
                           seeds=1, workers=1, left=15, rung_overhead_s=5).designs == ["b"]
    assert rg.decide_next([low], 0, [2, 1, 0], ladder, records, costs_for=costs_for,
                           seeds=1, workers=1, left=14, rung_overhead_s=5) is None
    assert rg.decide_next([low], 0, [2, 1, 0], ladder, records, costs_for=costs_for,
                           seeds=1, workers=2, left=5) is None
    # Past the plan's top, time left: the next rung of the ladder all the same.
    assert rg.decide_next([low], 0, [2], ladder, records, costs_for=costs_for, seeds=1,
                           workers=2, left=1000).designs == ["b", "d"]
    top = rg.Rung(0, ladder[0], ["b"], "x")
    assert rg.decide_next([low, top], 1, [2, 1, 0], ladder, records, costs_for=costs_for,
                           seeds=1, workers=2, left=1000) is None  # the ladder's top


def test_report_names_the_best_design_of_the_highest_rung_with_its_interval(tmp_path):
    ladder, plan, store, low = _two_rungs(tmp_path)
    high = rg.Rung(1, ladder[1], ["b", "d", "c"], "the best 3 of rung 2's 4")
    test_images = ladder[1].test_size
    assert test_images == 500
    store.write(_rec("b", 0.80, fidelity=ladder[1].name, test=0.40))
    store.write(_rec("d", 0.85, fidelity=ladder[1].name, test=0.84))
    store.write(_rec("c", 0.60, fidelity=ladder[1].name, status="failed"))
    answer = report.summarise([low, high], store, plan, {"z": 6.5 * 2**30})
    assert [r["ok"] for r in answer["rungs"]] == [4, 2]
    assert answer["rungs"][1]["failed"] == 1 and answer["rungs"][1]["missing"] == 0
    best = answer["best"]
    assert (best["design_id"], best["rung"], best["val_acc"]) == ("d", 1, 0.85)
    # 420 of 500 test images: the exact (Clopper-Pearson) 95% interval.
    from scipy.stats import beta

    lo, hi = beta.ppf(0.025, 420, 81), beta.ppf(0.975, 421, 80)
    assert best["test_ci"] == [pytest.approx(lo), pytest.approx(hi)]
    assert 0.80 < lo < 0.84 < hi < 0.88
    assert [r["design_id"] for r in answer["runners_up"]] == ["b"]
    answer.update(seconds=61.0, time_budget_s=120.0)
    out = io.StringIO()
    report.write_report(answer, out)
    text = out.getvalue()
    assert "time budget 2m00s, used 1m01s: 4 candidate designs, 1 skipped for memory (z 6.5 GB)" \
        in text
    assert "rung 2 (225 images x 1 epoch at 8x8): 4 designs (every design): 4 ok" in text
    assert f"best: d at rung 1: val 0.850, test 0.840 [{lo:.3f}, {hi:.3f}] on 500 images" in text
    assert "then: b at rung 1: val 0.800, test 0.400" in text
    assert answer["chance"] == 0.1 and "at chance" not in text


def test_a_best_design_at_chance_is_reported_as_no_ranking(tmp_path):
    """Nets that learned nothing (test accuracy within reach of guessing): the report says
    the ranking is noise instead of naming a winner without comment."""
    ladder, plan, store, low = _two_rungs(tmp_path)
    high = rg.Rung(1, ladder[1], ["b", "d"], "the best 2 of rung 2's 4")
    store.write(_rec("b", 0.11, fidelity=ladder[1].name, test=0.10))
    store.write(_rec("d", 0.12, fidelity=ladder[1].name, test=0.11))
    answer = report.summarise([low, high], store, plan, {})
    assert answer["best"]["test_ci"][0] < 0.1  # 55 of 500 test images
    answer.update(seconds=61.0, time_budget_s=120.0)
    out = io.StringIO()
    report.write_report(answer, out)
    assert out.getvalue().splitlines()[-1] == (
        "  at chance: the best design's test interval reaches 10%, the accuracy of guessing; "
        "its rungs trained too little to rank these designs (give more time, a smaller "
        "--budget, or fewer designs)")


def test_rank_agreement_between_rungs_is_reported(tmp_path):
    ladder, plan, store, low = _two_rungs(tmp_path)
    high = rg.Rung(1, ladder[1], ["b", "d", "c", "a"], "all")
    for d, v in (("a", 0.5), ("b", 0.9), ("c", 0.6), ("d", 0.8)):  # the same order
        store.write(_rec(d, v, fidelity=ladder[1].name))
    answer = report.summarise([low, high], store, plan, {})
    assert answer["rungs"][1]["spearman_vs_below"] == {"n": 4, "rho": pytest.approx(1.0)}


# --- the command line ------------------------------------------------------------------------


def test_bad_time_budgets_are_refused_in_one_line(tmp_path, capsys):
    base = ["--budget", "40k", "--dataset", "synthetic", "--run-dir", str(tmp_path / "r")]
    for extra, message in ((["--time-budget", "soon"], "--time-budget 'soon' is not a duration"),
                           (["--time-budget", "0"], "must be a positive duration"),
                           (["--time-budget", "1h", "--search", "tpe"], "drop --search"),
                           (["--time-budget", "1h", "--scheduler", "asha"], "drop --scheduler"),
                           (["--time-budget", "1h", "--max-trials", "3"], "drop --max-trials")):
        assert run.main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_a_time_budget_run_shares_the_grid_sweeps_run_directory():
    """Its records are keyed by rung fidelity and its Optuna studies named by rung, so a
    grid sweep and a time budget on one run directory never mix."""
    args = run.build_parser().parse_args(["--budget", "40k", "--dataset", "synthetic",
                                          "--time-budget", "2m"])
    request = run.resolve(args)
    assert request.plan.name == "plain8-40k-cpu-v2-synthetic" and request.time_budget_s == 120
    assert run.resolve(run.build_parser().parse_args(
        ["--budget", "40k", "--dataset", "synthetic"])).time_budget_s is None


# --- a whole time-budgeted sweep -------------------------------------------------------------


@pytest.mark.slow
def test_a_two_minute_budget_on_synthetic_data_resumes_after_ctrl_c_and_finishes_in_time(
        tmp_path):
    """The command the docs show, on the 40k plain8 space (68 designs), at smoke's ladder.
    A first run is interrupted (SIGINT) once a trial is recorded: it ends its rung, reports
    and exits 130. The same command again keeps that record, finishes within its 2 minutes
    plus a margin for the last trial's stop, and promotes the best by validation accuracy
    at every rung."""
    run_dir = tmp_path / "tb"
    cmd = [sys.executable, "studies/run.py", "--budget", "40k", "--dataset", "synthetic",
           "--fidelity", "smoke", "--time-budget", "2m", "--run-dir", str(run_dir)]
    env = {**os.environ, "IGCBENCH_CACHE": str(tmp_path / "cache"),
           "IGCBENCH_TRIAL_MEMORY_GB": "2"}
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    records = run_dir / "records"
    deadline = time.monotonic() + 150
    while not (records.is_dir() and any(records.glob("*.json"))):
        assert first.poll() is None and time.monotonic() < deadline, "no record in time"
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)
    sigint = time.monotonic()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 130, err[-3000:]
    assert time.monotonic() - sigint < 60
    assert "stopped by Ctrl-C: the same command resumes" in err
    assert "best: " in out and f"run directory: {run_dir}" in out
    kept = {p.name for p in records.glob("*.json")}

    start = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=400)
    wall = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert wall < 120 + 30, f"took {wall:.0f} s"
    assert kept <= {p.name for p in records.glob("*.json")}
    state = json.loads((run_dir / tb.STATE_FILE).read_text())
    rungs = state["rungs"]
    assert len(rungs) >= 2, done.stderr[-3000:]
    store = RecordStore(run_dir)
    for lower, upper in zip(rungs, rungs[1:], strict=False):
        recs = [store.read(trial_key(d, lower["fidelity"], "synthetic", 0))
                for d in lower["designs"]]
        ranked = hv.rank_designs([r for r in recs if r is not None])
        assert upper["designs"] == [d for d, _, _ in ranked[:len(upper["designs"])]]
    best = state["answer"]["best"]
    top = [r for r in rungs if r["ladder"] == best["rung"]][0]
    assert best["design_id"] in top["designs"]
    assert f"best: {best['design_id']} at rung {best['rung']}: val " in done.stdout
    assert 0 <= best["test_ci"][0] <= best["test_acc"] <= best["test_ci"][1] <= 1


# --- docs/studies.md -------------------------------------------------------------------------


def test_docs_show_the_ladder_the_code_makes_and_the_reports_lines(tmp_path):
    import re

    from analysis.doc_blocks import block_in_doc

    doc = (REPO / "docs" / "studies.md").read_text()
    assert block_in_doc(doc, "time-budget-ladder") == rg.ladder_markdown(
        ev.get_fidelity(cli.DEFAULT_FIDELITY), "cifar10")
    section = doc.split("## A time budget", 1)[1].split("\n## ", 1)[0]
    example = section.split("**What the report means.**", 1)[1].split("```")[1]
    lines = example.strip().splitlines()
    assert re.fullmatch(r"time budget \dm00s, used \dm\d\ds: \d+ candidate designs", lines[0])
    rung = (r"  rung \d \([\d,]+ images x \d epochs? at 8x8\): \d+ designs \(.+\): \d+ ok, "
            r"\d+ failed, \d+ not finished(; rank agreement with the rung below: Spearman "
            r"-?\d\.\d\d over \d+ designs)?")
    best = (r"best: \S+ at rung \d: val 0\.\d{3}, test 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\] on "
            r"[\d,]+ images")
    # The doc's example and a report the code writes now have the same lines.
    ladder, plan, store, low = _two_rungs(tmp_path)
    answer = report.summarise([low], store, plan, {})
    answer.update(seconds=100.0, time_budget_s=120.0)
    written = io.StringIO()
    report.write_report(answer, written)
    for text in (lines, written.getvalue().splitlines()):
        rungs = [x for x in text if x.startswith("  rung")]
        assert rungs and all(re.fullmatch(rung, x) for x in rungs)
        assert re.fullmatch(best, next(x for x in text if x.startswith("best: ")))
    assert len([x for x in lines if x.startswith("  rung")]) == 2  # the cpu ladder's two
    # The memory figures quoted: the estimate for the measured designs, and the one design
    # of the 0.65M space over 5.5 GB.
    cfg = {"resolution": 8, "batch_size": 64, "eval_batch_size": 500}
    quoted = [round(trial_memory_bytes(d, cfg, "cifar10") / 2**30, 2)
              for d in ("plain8-c64-k1.64", "plain8-c620-k1.g4", "plain8-c1504-k1.16.16.16",
                        "plain8-c2888-k1.2.2.2.2.2")]
    text = " ".join(section.split())
    assert "C=64: 0.60 GB; C=620: 1.17; C=1504: 3.38; C=2888 (K=2, L=6): 3.87" in text
    assert f"({quoted[0]:.2f} GB, {quoted[1]:.2f}, {quoted[2]:.2f}, {quoted[3]:.2f} for " \
        "those)" in text
    designs = ss.enumerate_designs(650_000, "plain8", num_classes=10)
    over = [d.id for d in designs if trial_memory_bytes(d, cfg, "cifar10") > 5.5 * 2**30]
    assert over == ["plain8-c1884-k1.6.6.6.6.6"] and len(designs) == 74
    assert "(`plain8-c1884-k1.6.6.6.6.6`, 6.2 GB predicted) is over 5.5 GB" in text


def test_the_floor_in_the_docs_is_the_committed_measurement():
    """docs/studies.md's floor block is benchmarks/rung_floor.py's committed JSON, which
    measured at the ladder's cheapest rung, and that rung trained the nets off chance."""
    from analysis.doc_blocks import block_in_doc
    from benchmarks import rung_floor

    result = json.loads((REPO / "benchmarks" / "results" / "rung_floor_cpu.json").read_text())
    doc = (REPO / "docs" / "studies.md").read_text()
    assert block_in_doc(doc, "rung-floor") == rung_floor.doc_block(result)
    ladder = rg.ladder_fidelities(ev.get_fidelity("cpu"), "cifar10")
    assert result["fidelity"] == ladder[-1].name and result["min_steps"] == hv.MIN_STEPS
    assert result["steps"] >= hv.MIN_STEPS
    # Every design measured there is above chance: its test interval's low end over 10%.
    rows = block_in_doc(doc, "rung-floor").splitlines()[2:2 + len(result["trained"])]
    lows = [float(r.split("[")[1].split(",")[0]) for r in rows]
    assert len(lows) >= 5 and min(lows) > 0.10
    widths = [ss.parse(t["design"]).width for t in result["trained"]]
    assert min(widths) <= 319 and max(widths) >= 3000
    # The hour's plan with the floor: a stratified sample at the cheapest rung.
    hour = next(p for p in result["plans"] if p["hours"] == 1)
    assert hour["sampled"] and hour["rungs"][0] == len(ladder) - 1
    assert hour["predicted_s"] <= 3600


def _committed_hour(name, blocks):
    """A committed time-budget run under docs/studies/: its state's answer is what the doc's
    blocks show (each block: the extra fields of the answer it was written with), its rungs'
    counts and best design are its records'. Returns (state, ok records, doc)."""
    from analysis.doc_blocks import block_in_doc
    from analysis.table.release import read_records

    hour = REPO / "docs" / "studies"
    state = json.loads((hour / name / "time_budget.json").read_text())
    answer = state["answer"]
    doc = (REPO / "docs" / "studies.md").read_text()
    for block, extra in blocks.items():
        written = io.StringIO()
        report.write_report({**answer, **extra}, written)
        assert block_in_doc(doc, block) == f"```\n{written.getvalue().strip()}\n```"
    records = read_records(hour / f"{name}.csv")
    ok = records[records["status"] == "ok"]
    for row, rung in zip(answer["rungs"], state["rungs"], strict=True):
        at = ok[ok["fidelity"] == row["fidelity"]]
        assert row["ok"] == at["design_id"].isin(rung["designs"]).sum()
    best = answer["best"]
    top = ok[ok["fidelity"] == best["fidelity"]].sort_values("val_acc", ascending=False)
    assert top.iloc[0]["val_acc"] == pytest.approx(best["val_acc"])
    assert answer["seconds"] <= answer["time_budget_s"] + 60  # the hour, plus a margin
    return state, ok, doc


def test_the_hour_with_the_floor_in_the_docs_is_the_committed_runs_answer():
    """The hour with the floor: what it printed (its code had the at-chance line), an
    answer above chance, and the sample and best design the prose quotes."""
    from analysis.doc_blocks import block_in_doc
    from evaluators.catalog import DATASETS

    state, ok, doc = _committed_hour("budget-650k-1h-floor", {
        "time-budget-hour-floor": {"chance": 1 / DATASETS["cifar10"].classes}})
    assert "at chance:" not in block_in_doc(doc, "time-budget-hour-floor")
    assert ok.test_acc.min() > 0.15  # every net it trained left chance
    text = " ".join(doc.split())
    best = state["answer"]["best"]
    lo, hi = best["test_ci"]
    assert (f"`{best['design_id']}`, reached test {best['test_acc']:.3f} [{lo:.3f}, "
            f"{hi:.3f}]") in text
    sample = state["rungs"][0]["designs"]
    candidates = state["answer"]["candidates"] - len(state["skipped_memory"])
    assert f"it saw {len(sample)} of the {candidates} designs" in text
    per_l = {}
    for d in sample:
        per_l[ss.parse(d).L] = per_l.get(ss.parse(d).L, 0) + 1
    assert sorted(per_l) == [2, 3, 4, 5, 6]
    readme = " ".join((REPO / "README.md").read_text().split())
    assert (f"saw {len(sample)} of its {candidates} designs and named `{best['design_id']}` "
            f"(test {best['test_acc']:.3f} [{lo:.3f}, {hi:.3f}])") in readme
    floor = json.loads((REPO / "benchmarks" / "results" / "rung_floor_cpu.json").read_text())
    two = next(p for p in floor["plans"] if p["hours"] == 2)
    assert (two["designs"], two["sampled"]) == ([candidates], False)
    assert f"two hours would train all {candidates} at the cheapest rung" in readme
    # 74 designs, 73 candidates: the README says which one was skipped and why.
    ((skipped, need),) = state["skipped_memory"].items()
    assert candidates + 1 == state["answer"]["candidates"] == 74
    assert f"One design of the 74, `{skipped}` ({need / 2**30:.1f} GB predicted), was over " \
        f"that hour's {state['memory_limit_bytes'] / 2**30:.1f} GB memory limit per trial " \
        "and skipped" in readme
    assert "one to three of each L" in text and (min(per_l.values()), max(per_l.values())) \
        == (1, 3)


def test_the_hour_in_the_docs_is_the_committed_runs_answer():
    """docs/studies.md shows the report the 1-hour 0.65M run printed and the one today's
    code writes from its committed state (time_budget.json), and the numbers it quotes
    are the committed records'."""
    import re

    from analysis.doc_blocks import block_in_doc
    from evaluators.catalog import DATASETS

    state, ok, doc = _committed_hour("budget-650k-1h", {
        "time-budget-hour": {},
        "time-budget-hour-now": {"chance": 1 / DATASETS["cifar10"].classes}})
    answer = state["answer"]
    assert "at chance:" in block_in_doc(doc, "time-budget-hour-now")
    text = " ".join(doc.split())
    ((lo, hi),) = re.findall(r"test accuracies lie within (0\.\d+)-(0\.\d+)", text)
    assert (f"{ok.test_acc.min():.3f}", f"{ok.test_acc.max():.3f}") == (lo, hi)
    distinct = ok.val_acc.round(6).nunique()
    assert f"The {len(ok)} nets' validation accuracies take only {distinct} distinct" in text
    (row,) = answer["rungs"]
    assert f"{row['ok']} of its {row['trials']} trials recorded, {row['missing']} not" in text


# --- an answer in every budget (a fake clock and fake rungs) ----------------------------------


class _FakeSweep:
    """Rungs run on a fake clock: each trial takes ``speed`` x its predicted seconds, the
    trials queue on the workers in the order handed (as Tune's FIFO), those that end after
    the rung's ``seconds`` are stopped (no record), and the rung costs ``overhead`` more.
    Records are written as trials would write them, with a planted val_acc."""

    def __init__(self, monkeypatch, tmp_path, designs, fidelity, dataset, budget, *,
                 speed=1.0, overhead=4.0):
        from types import SimpleNamespace

        import studies.sweep

        self.now, self.speed, self.overhead, self.handed = 0.0, speed, overhead, []
        clock = SimpleNamespace(monotonic=lambda: self.now)
        monkeypatch.setattr(tb, "time", clock)
        monkeypatch.setattr(bd, "time", clock)
        monkeypatch.setattr(studies.sweep, "cluster_slots", lambda *a: 2)
        monkeypatch.setattr(bd, "_run_rung", self.run_rung)
        monkeypatch.setenv("IGCBENCH_TRIAL_MEMORY_GB", "2")
        plan = Plan(name="fake", design_ids=tuple(designs), seeds=(0,),
                    fidelity=fidelity.name, dataset=dataset)
        self.request = SimpleNamespace(
            plan=plan, fidelity=fidelity, num_classes=10, cpus_per_trial=1.0,
            gpus_per_trial=0.0, time_budget_s=budget, run_dir=tmp_path,
            storage_url=f"sqlite:///{tmp_path}/o.db", data_dir=None, address=None)
        self.store = RecordStore(tmp_path)

    def run_rung(self, request, rung, order, seconds, config_cls, run_sweep, err, **kw):
        from evaluators.record import describe_info

        from fake_records import record

        costs = bp.trial_seconds(order, rung.fidelity, request.plan.dataset,
                                 self.calibration(rung), 10)
        self.handed.append((rung.fidelity, list(order), costs))
        slots, start = [0.0, 0.0], self.now + self.overhead
        for d, c in zip(order, costs, strict=True):
            if self.store.read(trial_key(d, rung.fidelity.name, request.plan.dataset, 0)):
                continue  # recorded: the sweep skips it (resumable by key)
            i = min(range(2), key=slots.__getitem__)
            if slots[i] + c * self.speed > seconds - self.overhead:
                break
            slots[i] += c * self.speed
            rec = record(describe_info(d, 10), _planted(d), fidelity=rung.fidelity.name,
                         dataset=request.plan.dataset, seed=0)
            rec.update(fidelity_config=rung.fidelity.to_dict(), wall_s=c * self.speed - 1)
            self.store.write(rec)
        self.now = start + max(slots)
        return 0

    def calibration(self, rung, fidelity=None):
        fidelity = fidelity or rung.fidelity
        return bp.calibration_for(self.request, fidelity, RecordStore(self.request.run_dir /
                                                                      "none"),
                                  [fidelity], io.StringIO())

    def run(self):
        out, err = io.StringIO(), io.StringIO()
        rc = tb._run(self.request, [], run.space_model(), out, err, 0.0,
                     self.request.time_budget_s)
        state = json.loads((self.request.run_dir / tb.STATE_FILE).read_text())
        return rc, out.getvalue(), err.getvalue(), state


def _planted(design):
    """A val_acc that grows with width and falls with L: signal for the surrogate."""
    d = ss.parse(design)
    return 0.2 + 0.5 * math.log(d.width) / math.log(400) - 0.03 * d.L


def _space_40k():
    return [d.id for d in ss.enumerate_designs(40_000, "plain8", num_classes=10)]


def test_no_trial_over_a_quarter_of_the_budget_runs_and_the_probe_answers(
        tmp_path, monkeypatch):
    """The issue's 15 minutes, scaled: a budget whose cheapest rung has trials over a
    quarter of it, and too little time for a rung after the probe. No such trial is handed
    to Tune; the probe's records answer, exit 0, time_budget.json written, every design of
    the space in the answer (measured or predicted), the clock within the budget."""
    designs = _space_40k()
    fake = _FakeSweep(monkeypatch, tmp_path, designs, ev.get_fidelity("smoke"), "synthetic",
                      28.0)
    rc, out, err, state = fake.run()
    assert rc == 0, err
    cap = 28.0 / 4
    assert fake.handed and all(c <= cap for _, _, costs in fake.handed for c in costs)
    answer = state["answer"]
    assert answer["too_long"] and answer["max_trial_s"] == cap
    trained = {d for _, order, _ in fake.handed for d in order}
    assert trained.isdisjoint(answer["too_long"])  # "not trained" means not trained
    # The probe: the cheapest quarter of the designs within the cap (predicted), so it
    # ends soon on a machine slower than its calibration.
    fidelity, probe, costs = fake.handed[0]
    fit = sorted(c for c in bp.trial_seconds(designs, fidelity, "synthetic",
                                             fake.calibration(None, fidelity), 10) if c <= cap)
    assert max(costs) <= fit[max(4, len(fit) // 4) - 1]
    assert "no rung fits the time left" in err and "answering from the probe's records" in err
    assert state["rungs"] == [] and answer["best"]["design_id"] in fake.handed[0][1]
    space = answer["space"]
    assert sorted(r["design_id"] for r in space["designs"]) == sorted(designs)
    assert space["measured"] == len(fake.handed[0][1]) == 4
    assert space["predicted"] == len(designs) - 4
    assert {r["kind"] for r in space["designs"]} == {"measured", "predicted"}
    assert all(r["interval"][0] < r["val_acc"] < r["interval"][1] for r in space["designs"]
               if r["kind"] == "predicted")
    assert space["heldout"]["designs"] == 4 and 0 <= space["heldout"]["covered"] <= 4
    assert f"the whole space, {len(designs)} designs at " in out
    assert out.count(" predicted: val ") == len(designs) - 4
    assert fake.now <= 28.0


def test_a_budget_too_small_for_any_trial_answers_from_zero_cost_scores(tmp_path,
                                                                         monkeypatch):
    """The 0.65M space at the cpu ladder in one minute: no trial fits a quarter of it. The
    answer ranks all 74 designs by the committed zero-cost width, says it is predicted
    only, and exits 0 with time_budget.json."""
    designs = [d.id for d in ss.enumerate_designs(650_000, "plain8", num_classes=10)]
    fake = _FakeSweep(monkeypatch, tmp_path, designs, ev.get_fidelity("cpu"), "cifar10",
                      60.0)
    rc, out, err, state = fake.run()
    assert rc == 0 and not fake.handed
    space = state["answer"]["space"]
    assert (space["measured"], space["predicted"]) == (0, 74)
    assert "ranked by zero-cost width alone (docs/proxies/zc-p650k.csv)" in space["method"]
    widths = [ss.parse(r["design_id"]).width for r in space["designs"]]
    assert widths == sorted(widths, reverse=True)
    assert "no design trained in the time: the answer is predicted only (below)" in out
    assert "  1. plain8-c5038-k1.2  predicted: not trained, by width 5038" in out
    assert len(state["answer"]["too_long"]) == 74 - len(state["answer"]["skipped_memory"])


def test_a_budget_with_rungs_trains_within_it_and_predicts_the_rest(tmp_path, monkeypatch):
    """Five minutes on the 40k space at smoke's ladder, the machine 1.5x slower than
    predicted: rungs run, the first rung's sample comes partly from the surrogate, the
    answer is measured at the top rung, every design appears, the clock within budget."""
    designs = _space_40k()
    fake = _FakeSweep(monkeypatch, tmp_path, designs, ev.get_fidelity("smoke"), "synthetic",
                      300.0, speed=1.5)
    rc, out, err, state = fake.run()
    assert rc == 0, err
    assert len(state["rungs"]) >= 2 and fake.now <= 300.0
    assert "by the surrogate (best predicted, most uncertain)" in state["rungs"][0]["decided"]
    space = state["answer"]["space"]
    assert space["measured"] == len(state["rungs"][0]["designs"])
    assert space["measured"] + space["predicted"] == len(designs)
    assert "surrogate (Gaussian process over describe() features)" in space["method"]
    assert state["answer"]["best"]["rung"] == state["rungs"][-1]["ladder"]


def test_the_dry_run_prints_the_plan_and_the_least_budget_that_trains(tmp_path, capsys,
                                                                       monkeypatch):
    import dataclasses
    import re

    monkeypatch.setenv("IGCBENCH_TRIAL_MEMORY_GB", "2")
    argv = ["--budget", "40k", "--dataset", "synthetic", "--fidelity", "smoke",
            "--time-budget", "2m", "--run-dir", str(tmp_path / "r"), "--dry-run"]
    assert run.main(argv) == 0
    out = capsys.readouterr().out
    assert "with --time-budget 2m00s (the estimate above is the full grid): successive " \
        "halving on 3 rungs below smoke, 2 trials at a time; the answer within 2m00s + " \
        "1m00s" in out
    plan_line = next(x for x in out.splitlines() if x.startswith("  plan: "))
    counts = [int(n) for n in re.findall(r"(\d+) designs? at rung", plan_line)]
    request = run.resolve(run.build_parser().parse_args(argv[:-1]))
    plan, why = bp.dry_plan(request, io.StringIO())
    assert counts == list(plan.designs) and plan.predicted_s <= why["seconds"]
    least = why["min_budget"]
    assert f"the smallest budget that trains anything here: --time-budget " \
           f"{fmt_seconds(least)}" in out
    # The least budget plans a trial; a few seconds less plans none.
    assert bp.dry_plan(dataclasses.replace(request, time_budget_s=least),
                       io.StringIO())[0] is not None
    assert bp.dry_plan(dataclasses.replace(request, time_budget_s=least - 2),
                       io.StringIO())[0] is None
    assert not (tmp_path / "r").exists()  # a dry run creates nothing


def test_the_docs_state_the_constants_the_answer_rests_on():
    from analysis.table import space_answer as sa

    text = " ".join((REPO / "docs" / "studies.md").read_text().split())
    assert bp.MAX_TRIAL_SHARE == 0.25 and "longer than a quarter of the budget" in text
    assert bp.MARGIN_S == 60 and "plus a margin of 1 minute (`MARGIN_S`" in text
    assert sa.MIN_FIT == 4 and "With at least 4 measured designs" in text
    assert bd.PICK_REACH == 2 and "within twice the probe's longest trial" in text
    assert sa.ZC_RANKER == "width" and "ranked by their zero-cost width alone" in text
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "no trial predicted longer than a quarter of the budget runs" in readme
    assert "the answer, in 15 min (+ 1 min margin)" in readme  # MARGIN_S, asserted above


def test_time_the_plan_leaves_trains_more_designs_at_the_first_rung(tmp_path, monkeypatch):
    """A 15-minute 0.65M run ended at 3m55s: its planned promotion was over the cap. Time
    left after the plan now trains more untried designs at the first rung, best predicted
    first, until no trial fits; the clock ends near the budget, not minutes before it."""
    designs = _space_40k()
    fake = _FakeSweep(monkeypatch, tmp_path, designs, ev.get_fidelity("smoke"), "synthetic",
                      150.0)
    monkeypatch.setattr(bd.Driver, "next_rung", lambda self, k: None)  # no promotion fits
    rc, out, err, state = fake.run()
    assert rc == 0, err
    (first,) = state["rungs"]
    assert "more with the time left (best predicted first)" in first["decided"]
    assert "time left after the plan: " in err
    first_handed = len(fake.handed[1][1])  # the probe, then the first rung as planned
    assert len(first["designs"]) > first_handed
    assert all(c <= 150.0 / 4 for _, _, costs in fake.handed for c in costs)
    cheapest = min(bp.trial_seconds(designs, fake.handed[0][0], "synthetic",
                                    fake.calibration(None, fake.handed[0][0]), 10))
    # Stopped because nothing more fits: less time left than one more rung of one trial.
    assert 150.0 - bp.SETUP_RESERVE_S - fake.now < cheapest + bp.RUNG_OVERHEAD_S \
        or len(first["designs"]) == len(designs)
    recorded = [d for d in first["designs"]
                if fake.store.read(trial_key(d, first["fidelity"], "synthetic", 0))]
    assert state["answer"]["space"]["measured"] == len(recorded) > first_handed
    assert len(first["designs"]) - len(recorded) <= 2  # at most the last round cut


def test_the_surrogates_picks_stay_within_reach_of_the_probes_times(tmp_path, monkeypatch):
    """The surrogate's picks for the first rung are designs predicted within PICK_REACH
    times the probe's longest trial (its "most uncertain" are the widest, where the cost
    model is several-fold low), while wider designs remain for the stratified sample."""
    import analysis.table.space_answer as sa

    designs = [d.id for d in ss.enumerate_designs(650_000, "plain8", num_classes=10)]
    seen = []
    real = sa.pick

    def spy(candidates, n, records, **kw):
        seen.append(list(candidates))
        return real(candidates, n, records, **kw)

    monkeypatch.setattr(sa, "pick", spy)
    fake = _FakeSweep(monkeypatch, tmp_path, designs, ev.get_fidelity("cpu-v2"), "cifar10",
                      900.0, speed=1.5)
    rc, _, err, state = fake.run()
    assert rc == 0, err
    (candidates,) = seen
    fidelity, probe, probe_costs = fake.handed[0]
    calibration = fake.calibration(None, fidelity)
    reach = bd.PICK_REACH * max(bp.trial_seconds(probe, fidelity, "cifar10", calibration,
                                                 10))
    costs = dict(zip(designs, bp.trial_seconds(designs, fidelity, "cifar10", calibration,
                                                10), strict=True))
    assert candidates and all(costs[d] <= reach for d in candidates)
    # The rule had designs to exclude: untried designs beyond reach, left to the sample.
    assert any(costs[d] > reach for d in designs if d not in probe)
