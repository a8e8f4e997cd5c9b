"""The queryable table, its release file and replayed searches, on a planted synthetic table.

The table: 12 designs x 3 seeds x 4 epochs. Design i (in sorted-id order) has, at seed s and
epoch e, val_acc = BASE[i] * e / 4 + 0.01 * (s - 1) (so the mean over seeds is BASE[i] * e / 4
and the std is exactly 0.01) and trains epoch e in 1 + 0.5 i + 0.1 s + 0.01 e seconds. The
last design in id order is the best. Design 0 has a fourth, failed seed without a curve;
design 1 a fourth seed that ASHA stopped after epoch 1 (status failed, a one-epoch curve).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.replay import report as replay_report
from analysis.replay import simulate as rp
from analysis.replay.asha import AshaRule
from analysis.replay.table import ReplayTable
from analysis.table.benchmark import Benchmark, TableKeyError
from analysis.table.release import ChecksumError, read_release, write_records, write_release
from analysis.table.release import main as release_main

import fake_records as fake

REPO = Path(__file__).resolve().parents[1]
SEEDS, EPOCHS = (0, 1, 2), 4
SHAPES = [(64, (1, 64)), (72, (1, 8, 18)), (80, (2, 40)), (96, (1, 8, 12)), (112, (1, 16, 16)),
          (120, (1, 6, 24)), (144, (1, 12, 12)), (160, (1, 4, 40)), (176, (1, 4, 4, 11)),
          (184, (1, 8, 8)), (192, (1, 4, 4, 4)), (222, (1, 6, 6))]  # fmt: skip
BASE = [0.50, 0.62, 0.41, 0.70, 0.55, 0.66, 0.48, 0.59, 0.73, 0.45, 0.68, 0.80]  # last is best
DESCS = sorted((fake.describe(w, k, num_classes=10) for w, k in SHAPES), key=lambda d: d["id"])
IDS = [d["id"] for d in DESCS]


def val(i: int, s: int, e: int) -> float:
    return BASE[i] * e / EPOCHS + 0.01 * (s - 1)


def sec(i: int, s: int, e: int) -> float:
    return 1 + 0.5 * i + 0.1 * s + 0.01 * e


def planted_records(fidelity: str = "smoke") -> list[dict]:
    out = []
    for i, d in enumerate(DESCS):
        for s in SEEDS:
            curve = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": val(i, s, e) + 0.1,
                      "val_acc": val(i, s, e), "seconds": sec(i, s, e)}
                     for e in range(1, EPOCHS + 1)]
            out.append(record(d, fidelity, s, curve, "ok"))
    out.append(record(DESCS[0], fidelity, 3, [], "failed"))
    stopped = [{"epoch": 1, "train_loss": 2.0, "train_acc": 0.9, "val_acc": 0.05, "seconds": 9.0}]
    out.append({**record(DESCS[1], fidelity, 3, stopped, "failed"), "val_acc": None,
                "test_acc": None, "reason": "stopped: ASHA stopped the trial after epoch 1"})
    return out


def record(d: dict, fidelity: str, seed: int, curve: list, status: str) -> dict:
    final = curve[-1]["val_acc"] if curve else None
    return {**d, "design_id": d["id"], "fidelity": fidelity, "dataset": "synthetic",
            "fidelity_config": {"name": fidelity, "epochs": EPOCHS}, "seed": seed,
            "status": status, "reason": None if curve else "error: planted", "curve": curve,
            "val_acc": final, "test_acc": None if final is None else final - 0.02,
            "wall_s": 10.0 + seed, "latency_b1_ms": 1.0 + 0.1 * seed if curve else None,
            "latency_b64_ms": None, "device": "cpu", "torch_version": "none",
            "commit": "c" * 40, "created": "2025-01-01T00:00:00+00:00"}  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return fake.write_fake_run(tmp_path_factory.mktemp("table") / "run", planted_records())


@pytest.fixture(scope="module")
def bench(run_dir):
    return Benchmark.load(run_dir)


@pytest.fixture(scope="module")
def table(bench):
    return ReplayTable.from_benchmark(bench)


# ---------------------------------------------------------------- queries


def test_query_returns_planted_values_per_seed_epoch_and_mean(bench):
    assert bench.design_ids == tuple(IDS) and len(bench) == 12 * 3 + 2
    for i, d in enumerate(IDS):
        for s in SEEDS:
            final = bench.query(d, seed=s)
            assert final.val_acc == pytest.approx(val(i, s, EPOCHS))
            assert final.test_acc == pytest.approx(val(i, s, EPOCHS) - 0.02)
            assert final.epoch == EPOCHS and final.seeds == (s,) and final.val_acc_std is None
            assert final.train_seconds == pytest.approx(sum(sec(i, s, e) for e in (1, 2, 3, 4)))
            for e in range(1, EPOCHS + 1):
                q = bench.query(d, fidelity="smoke", dataset="synthetic", seed=s, epoch=e)
                assert q.val_acc == pytest.approx(val(i, s, e))
                assert q.train_acc == pytest.approx(val(i, s, e) + 0.1)
                assert q.train_loss == pytest.approx(2.0 / e)
                assert q.train_seconds == pytest.approx(sum(sec(i, s, k) for k in range(1, e + 1)))
                assert (q.test_acc is None) == (e < EPOCHS)
            assert list(final.curve.seconds) == pytest.approx([sec(i, s, e) for e in (1, 2, 3, 4)])
        for e in range(1, EPOCHS + 1):
            m = bench.query(d, epoch=e)
            assert m.seeds == SEEDS and m.val_acc == pytest.approx(BASE[i] * e / EPOCHS)
            assert m.val_acc_std == pytest.approx(0.01)
            assert m.train_seconds_std == pytest.approx(0.1 * e)  # seed s adds 0.1 s an epoch
        m = bench.query(d)
        assert m.val_acc == pytest.approx(BASE[i]) and m.test_acc_std == pytest.approx(0.01)
        assert list(m.curve.val_acc) == pytest.approx([BASE[i] * e / 4 for e in (1, 2, 3, 4)])
        assert m.latency_b1_ms == pytest.approx(1.1) and m.params == DESCS[i]["params"]
        assert m.n_failed == (1 if i < 2 else 0) and m.status == "ok"
    failed = bench.query(IDS[0], seed=3)
    assert failed.status == "failed" and failed.val_acc is None and failed.epoch is None
    stopped = bench.query(IDS[1], seed=3)
    assert (stopped.status, stopped.epoch, stopped.val_acc, stopped.train_seconds) == (
        "failed", 1, None, 9.0)
    assert bench.query(IDS[1], seed=3, epoch=1).val_acc == 0.05
    with pytest.raises(TableKeyError, match=r"epochs: 1\.\.1"):
        bench.query(IDS[1], seed=3, epoch=2)


def test_unknown_keys_raise_key_errors_naming_what_exists(bench):
    near = IDS[3] + "x"  # one character more than an existing id
    with pytest.raises(KeyError) as err:
        bench.query(near)
    assert IDS[3] in str(err.value) and "closest" in str(err.value)
    with pytest.raises(KeyError, match="smoke/synthetic"):
        bench.query(IDS[0], fidelity="paper")
    with pytest.raises(TableKeyError, match="seeds: 0, 1, 2"):
        bench.query(IDS[1], seed=7)
    for bad in (0, 5):
        with pytest.raises(TableKeyError, match=r"epochs: 1\.\.4"):
            bench.query(IDS[1], epoch=bad)
    with pytest.raises(TableKeyError, match="accepted"):
        bench.designs(colour="red")
    two = Benchmark.from_frame(planted_records("smoke") + planted_records("cpu"))
    with pytest.raises(ValueError, match="'cpu', 'smoke'"):
        two.query(IDS[0])
    assert two.query(IDS[0], fidelity="cpu").val_acc == pytest.approx(BASE[0])


def test_designs_best_and_pareto_match_brute_force(bench):
    info = {d["id"]: d for d in DESCS}
    mean = dict(zip(IDS, BASE, strict=True))
    assert bench.designs(L=3) == sorted(d for d in IDS if info[d]["L"] == 3)
    assert bench.designs(family="igcv2", params_max=20_000) == sorted(
        d for d in IDS if info[d]["family"] == "igcv2" and info[d]["params"] <= 20_000)
    assert bench.designs(L=[2, 4], width_min=100) == sorted(
        d for d in IDS if info[d]["L"] in (2, 4) and info[d]["width"] >= 100)
    for budget in sorted({info[d]["params"] for d in IDS}):
        fits = [d for d in IDS if info[d]["params"] <= budget]
        assert bench.best("val_acc", budget=budget).design_id == max(fits, key=mean.get)
        assert bench.best("val_acc", budget=budget, epoch=2).val_acc == pytest.approx(
            max(mean[d] for d in fits) / 2)
    cheapest = min(info[d]["params"] for d in IDS)
    with pytest.raises(ValueError, match=f"cheapest has params {cheapest}"):
        bench.best("val_acc", budget=cheapest - 1)
    assert bench.best("latency_b1_ms").latency_b1_ms == pytest.approx(1.1)  # mode 'min'
    # A budget as the command line takes it ("40k"): the same parser, the same answer.
    kilo = sorted({info[d]["params"] for d in IDS})[-2] // 1000
    fits = [d for d in IDS if info[d]["params"] <= kilo * 1000]
    assert fits and len(fits) < len(IDS)
    assert bench.best("val_acc", budget=f"{kilo}k").design_id == max(fits, key=mean.get)
    assert bench.best("val_acc", budget=str(kilo * 1000)).design_id == max(fits, key=mean.get)
    with pytest.raises(ValueError, match="budget '40 apples' is not a parameter count; "
                                         "accepted: 650000, 650k, 0.65M"):
        bench.best("val_acc", budget="40 apples")
    for metrics in ([("val_acc", "max"), ("params", "min")],
                    [("val_acc", "max"), ("flops", "min"), ("non_sparsity", "min")]):
        def point(d, metrics=metrics):
            return [mean[d] if m == "val_acc" else info[d][m] for m, _ in metrics]

        def dominates(a, b, metrics=metrics):
            signs = [1 if mode == "max" else -1 for _, mode in metrics]
            x = [s * v for s, v in zip(signs, point(a), strict=True)]
            y = [s * v for s, v in zip(signs, point(b), strict=True)]
            return all(p >= q for p, q in zip(x, y, strict=True)) and x != y

        brute = {b for b in IDS if not any(dominates(a, b) for a in IDS)}
        front = bench.pareto(metrics)
        assert {e.design_id for e in front} == brute
        assert [e.val_acc for e in front] == sorted((e.val_acc for e in front), reverse=True)


# ---------------------------------------------------------------- release and exports


def _answers(b: Benchmark) -> list:
    return [(q.val_acc, q.test_acc, q.train_seconds, q.val_acc_std, q.epoch, q.seeds, q.status,
             q.info["K"], q.info["params"])
            for d in IDS for kw in ({}, {"seed": 1}, {"seed": 2, "epoch": 3})
            for q in [b.query(d, **kw)]]  # fmt: skip


def test_release_round_trip_manifest_and_exports(bench, run_dir, tmp_path):
    manifest_path = write_release(run_dir, tmp_path / "rel", "1.0")
    m = json.loads(manifest_path.read_text())
    parquet = tmp_path / "rel" / "igcbench-1.0.parquet"
    assert manifest_path.name == "igcbench-1.0.json" and m["parquet"]["file"] == parquet.name
    assert m["parquet"]["sha256"] == hashlib.sha256(parquet.read_bytes()).hexdigest()
    assert (m["version"], m["records"], m["designs"], m["ok_records"]) == ("1.0", 38, 12, 36)
    assert m["fidelities"] == {"smoke": {"name": "smoke", "epochs": EPOCHS}}
    assert (m["datasets"], m["seeds"], m["commit"]) == (["synthetic"], [0, 1, 2, 3], "c" * 40)
    assert sorted(p.name for p in (tmp_path / "rel").iterdir()) == [
        "igcbench-1.0.json", "igcbench-1.0.parquet"]  # no temporary files left
    expected = _answers(bench)
    for path in (manifest_path, tmp_path / "rel", parquet):
        loaded = Benchmark.load(path)
        assert loaded.manifest["version"] == "1.0" and _answers(loaded) == expected
    key = ["design_id", "fidelity", "dataset", "seed"]
    curves = read_release(manifest_path).records.set_index(key)["curve"]
    assert curves.to_dict() == bench.frame.set_index(key)["curve"].to_dict()
    for name in ("export.parquet", "export.csv"):
        write_records(bench.frame, tmp_path / name)
        assert _answers(Benchmark.load(tmp_path / name)) == expected
    assert _answers(Benchmark.from_frame(bench.frame)) == expected
    with pytest.raises(FileExistsError, match="exists"):
        write_release(run_dir, tmp_path / "rel", "1.0")


def test_corrupt_release_is_refused(run_dir, tmp_path):
    manifest_path = write_release(run_dir, tmp_path, "2.0")
    parquet = tmp_path / "igcbench-2.0.parquet"
    expected = json.loads(manifest_path.read_text())["parquet"]["sha256"]
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit in the middle
    parquet.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    for load in (read_release, Benchmark.load):
        with pytest.raises(ChecksumError) as err:
            load(manifest_path)
        assert isinstance(err.value, ValueError)
        assert (err.value.expected, err.value.actual, err.value.path) == (expected, actual, parquet)
        assert str(parquet) in str(err.value) and expected in str(err.value)
        assert actual in str(err.value)


def test_release_cli(run_dir, tmp_path, capsys):
    ok = subprocess.run([sys.executable, "-m", "analysis.table.release", str(run_dir),
                         str(tmp_path / "out"), "--version", "1.0"],
                        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "38 records, 12 designs" in ok.stdout
    # 12 designs x seeds 0-2, and seed 3 for two of them: 10 of the 48 keys are missing
    assert "records per seed: 0: 12, 1: 12, 2: 12, 3: 2; ragged: 10 of 48 keys missing" \
        in ok.stdout
    capsys.readouterr()
    for args, needle in (((tmp_path / "nope", tmp_path / "out2", "--version", "1.0"), "nope"),
                         ((run_dir, tmp_path / "out2", "--version", "1 0"), "version"),
                         ((run_dir, tmp_path / "out2"), "--version"),
                         ((run_dir, tmp_path / "out", "--version", "1.0"), "exists")):
        try:
            code = release_main([str(a) for a in args])
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        err = capsys.readouterr().err
        assert code == 2 and needle in err
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out2").exists()


# ---------------------------------------------------------------- ASHA


def test_asha_rule_on_a_hand_worked_example():
    # eta = 3, grace 1, max_t = 4: rungs at epochs 1 and 3 (9 >= max_t is no rung).
    rule = AshaRule(4, grace_period=1, reduction_factor=3)
    assert rule.rungs == (1, 3)
    # Rung 1, in arrival order. Cutoff = the 66.7th percentile of the values already there:
    assert rule.on_epoch("A", 1, 0.5)  # empty rung: go on
    assert not rule.on_epoch("B", 1, 0.3)  # [0.5] -> cutoff 0.5; 0.3 < 0.5: stop
    assert rule.on_epoch("C", 1, 0.6)  # [0.5, 0.3] -> 0.3 + 2/3 * 0.2 = 0.4333: go on
    assert not rule.on_epoch("D", 1, 0.5)  # [0.3, 0.5, 0.6] -> 0.5 + 1/3 * 0.1 = 0.5333: stop
    assert rule.on_epoch("E", 1, 0.54)  # [0.3, 0.5, 0.5, 0.6] -> position 2 of 3: 0.5: go on
    assert rule.on_epoch("A", 2, 0.0)  # no rung at 2
    assert rule.on_epoch("A", 1, 0.0)  # a rung is decided once per trial
    assert rule.on_epoch("C", 3, 0.7)  # rung 3 empty: go on
    assert rule.on_epoch("A", 3, 0.7)  # [0.7] -> 0.7; equal to the cutoff goes on
    assert not rule.on_epoch("E", 3, 0.69)  # [0.7, 0.7] -> 0.7: stop
    assert AshaRule(30).rungs == (1, 3, 9, 27)
    assert AshaRule(16, reduction_factor=4).rungs == (1, 4)
    assert AshaRule(64, grace_period=2, reduction_factor=4).rungs == (2, 8, 32)


def test_asha_rule_decides_as_ray_tune_does():
    bracket = pytest.importorskip("ray.tune.schedulers.async_hyperband")._Bracket
    from ray.tune.schedulers.trial_scheduler import TrialScheduler

    class Trial:
        def __init__(self, trial_id):
            self.trial_id = trial_id

    rng = np.random.default_rng(0)
    for max_t, eta in ((4, 3), (30, 3), (16, 4)):
        ours, theirs = AshaRule(max_t, reduction_factor=eta), bracket(1, max_t, eta, 0)
        running = {n: 0 for n in range(40)}
        while running:
            n = int(rng.choice(list(running)))  # asynchronous: trials report in any order
            running[n] += 1
            v = float(rng.uniform())
            go = ours.on_epoch(n, running[n], v)
            assert go == (theirs.on_result(Trial(str(n)), running[n], v)
                          == TrialScheduler.CONTINUE)
            if not go or running[n] >= max_t:
                del running[n]


# ---------------------------------------------------------------- replay


def test_grid_fifo_one_worker_needs_every_epoch_of_the_table(table):
    assert table.design_ids == tuple(IDS) and table.epochs == EPOCHS
    assert table.best == len(IDS) - 1 and table.mean_val == pytest.approx(BASE)
    for seed in range(3):
        r = rp.replay(table, "grid", scheduler="fifo", workers=1, seed=seed)
        drawn = [t.seed for t in r.trials]
        assert [t.design_id for t in r.trials] == IDS and not any(t.stopped for t in r.trials)
        assert r.total_epochs == r.epochs_to_best == len(IDS) * EPOCHS == 48
        total = sum(sec(i, s, e) for i, s in enumerate(drawn) for e in range(1, EPOCHS + 1))
        assert r.total_time == pytest.approx(total) and r.time_to_best == pytest.approx(total)
        assert r.final_regret == pytest.approx(0.0) and r.best_design == IDS[-1]
    mean = rp.replay(table, "grid", seed_mode="mean")
    assert mean.total_time == pytest.approx(
        sum(sec(i, 1, e) for i in range(len(IDS)) for e in range(1, EPOCHS + 1)))


def test_fifo_with_workers_is_list_scheduling(table):
    r = rp.replay(table, "grid", workers=4, seed_mode="mean")
    free = [0.0] * 4  # the earliest free worker takes the next design, in grid order
    ends = []
    for i in range(len(IDS)):
        w = min(range(4), key=lambda k: (free[k], k))
        free[w] += sum(sec(i, 1, e) for e in range(1, EPOCHS + 1))
        ends.append(free[w])
    assert r.total_time == pytest.approx(max(ends))
    assert r.time_to_best == pytest.approx(ends[-1])
    assert [t.end for t in r.trials] == pytest.approx(sorted(ends))
    assert r.total_epochs == 48


def test_asha_replay_stops_as_the_rule_says(table):
    r = rp.replay(table, "grid", scheduler="asha", workers=1, seed_mode="mean")
    rule, expected = AshaRule(EPOCHS), []
    for i in range(len(IDS)):  # one worker: each trial runs to its end before the next
        e = 1
        while e < EPOCHS and rule.on_epoch(i, e, BASE[i] * e / EPOCHS):
            e += 1
        expected.append(e)
    assert [t.epochs for t in r.trials] == expected and sum(expected) < 48
    assert r.total_epochs == sum(expected)
    assert r.total_time == pytest.approx(
        sum(sec(i, 1, e) for i, n in enumerate(expected) for e in range(1, n + 1)))
    assert r.reached == (expected[-1] == EPOCHS)


@pytest.mark.parametrize("strategy", ["random", "tpe", "nsga2"])
def test_sampled_replays_run_and_are_reproducible(table, strategy):
    def designs(r):
        return [(t.design_id, t.seed, t.worker, t.epochs, round(t.end, 9)) for t in r.trials]

    for scheduler in rp.SCHEDULERS:
        a = rp.replay(table, strategy, scheduler=scheduler, workers=2, seed=5)
        b = rp.replay(table, strategy, scheduler=scheduler, workers=2, seed=5)
        assert designs(a) == designs(b) and a.trace == b.trace
        assert sorted(t.design_id for t in a.trials) == IDS  # every design once, no repeats
        if scheduler == "fifo":
            assert a.total_epochs == 48 and a.reached and a.final_regret >= 0
    others = [designs(rp.replay(table, strategy, workers=2, seed=s)) for s in range(6, 9)]
    assert any(o != designs(a) for o in others)


def test_summary_regret_and_figures(table, tmp_path):
    runs = rp.replay_many(table, strategies=("grid", "random"), schedulers=("fifo",),
                          workers=(1, 3), repeats=3)
    s = replay_report.summarize(runs).set_index(["strategy", "scheduler", "workers"])
    rand = [r for r in runs if r.strategy == "random" and r.workers == 1]
    row = s.loc[("random", "fifo", 1)]
    assert row["repeats"] == 3 and row["reached"] == 3
    assert row["epochs_to_best_mean"] == pytest.approx(np.mean([r.epochs_to_best for r in rand]))
    assert row["time_to_best_std"] == pytest.approx(np.std([r.time_to_best for r in rand], ddof=1))
    assert s.loc[("grid", "fifo", 1), "epochs_to_best_mean"] == 48
    curve = replay_report.regret_frame(runs, axis="epochs", points=49)
    one = curve[(curve.strategy == "grid") & (curve.workers == 1) & (curve.repeat == 0)]
    spread = max(BASE) - min(BASE)
    # grid completes a design every 4 epochs; the incumbent is the best val_acc seen so far
    for e, regret in zip(one["epochs"], one["regret"], strict=True):
        seen = BASE[: int(e) // EPOCHS]
        assert regret == pytest.approx(max(BASE) - max(seen) if seen else spread)
    files = replay_report.plot_regret(runs, tmp_path)
    assert sorted(p.name for p in files) == sorted(
        f"regret_{a}.{x}" for a, x in itertools.product(("time", "epochs"), ("png", "svg")))
    assert all(p.stat().st_size > 1000 for p in files)


def test_replay_script_writes_summary(run_dir, tmp_path):
    rel = write_release(run_dir, tmp_path / "rel", "1.0")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.replay", str(rel), "--workers", "1", "2", "--repeats",
         "2", "--strategies", "grid", "tpe", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "replay.json").read_text())
    assert doc["best_design"] == IDS[-1] and doc["epochs"] == EPOCHS
    rows = {(r["strategy"], r["scheduler"], r["workers"]): r for r in doc["summary"]}
    assert len(rows) == 2 * 2 * 2 and len(doc["runs"]) == 16
    assert rows[("grid", "fifo", 1)]["epochs_to_best_mean"] == 48
    assert doc["timing"]["load_s"] > 0 and doc["timing"]["query_cold"]["mean"]["queries"] == 12
    assert all((out / f"regret_{a}.png").is_file() for a in ("time", "epochs"))
    bad = subprocess.run([sys.executable, "-m", "benchmarks.replay", str(tmp_path / "none"),
                          "--out", str(tmp_path / "bad")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_modules_do_not_import_torch_or_ray(run_dir, tmp_path):
    code = (
        "import sys\n"
        "from analysis.table.benchmark import Benchmark\n"
        "from analysis.table import release\n"
        "from analysis.replay import simulate as replay\n"
        f"b = Benchmark.load({str(run_dir)!r})\n"
        f"release.write_release(b.frame, {str(tmp_path)!r}, '0.1')\n"
        f"b = Benchmark.load({str(tmp_path)!r})\n"
        "from studies.searches import SWEEP_SEARCHES\n"
        "for s in SWEEP_SEARCHES:\n"
        "    replay.replay(b, s, scheduler='asha', workers=2)\n"
        "bad = sorted(m for m in ('torch', 'ray') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)

