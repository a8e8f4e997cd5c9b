"""Estimates where a user decides: --dry-run, --list-presets, the confirmation of a long
sweep, and the ETA of a running one; with the fixed calibration of conftest.py, so the
numbers below are the cost model's, not this machine's (no Ray is started here)."""

from __future__ import annotations

import io
import json
import os

import pytest

import evaluators as ev
from evaluators.cost_model import compute_seconds, predict_seconds
from studies import estimate as est
from studies import run
from studies.plan import Plan
from studies.presets import PRESETS, get_preset
from studies.store import RecordStore

SMOKE = get_preset("smoke").design_ids


@pytest.fixture(autouse=True)
def two_cores(monkeypatch, tmp_path):
    """This machine's parallelism, whatever machine runs the tests; run directories (runs/)
    resolved in an empty directory, not in whatever the tests start from."""
    monkeypatch.setattr(est.os, "cpu_count", lambda: 2)
    monkeypatch.chdir(tmp_path)


def _costs(fidelity: str = "smoke", dataset: str = "synthetic") -> est.TrialCosts:
    f = ev.get_fidelity(fidelity)
    return est.TrialCosts(est.calibration(f, threads=1), f.to_dict(), dataset, 10)


def test_a_sweep_is_its_trials_laid_out_on_the_slots_in_start_order():
    assert est.makespan([30, 10, 10, 10], slots=2) == 30.0  # 10+10+10 beside the 30
    assert est.makespan([10, 10, 10, 30], slots=2) == 40.0  # the 30 starts last
    assert est.makespan([5], slots=4, busy=[20, 1]) == 20.0
    assert est.makespan([], slots=2) == 0.0
    costs = _costs()
    e = est.estimate(list(SMOKE), costs, slots=2)
    each = [costs.seconds(d) for d in SMOKE]
    assert e.per_trial == tuple(each) and e.trials == 3
    assert e.total == pytest.approx(est.makespan(each, 2) + est.RAY_START_S)
    assert e.describe() == "3 trials, ~11s each, ~28s in all, 2 at a time"


def test_trials_to_run_skip_recorded_keys_in_the_plans_order():
    plan = Plan(name="x", design_ids=("a", "b", "c"), seeds=(0, 1), fidelity="smoke",
                dataset="synthetic")
    recorded = {plan.key("b", 0), plan.key("a", 1)}
    assert est.trials_to_run(plan, recorded) == ["a", "c", "b", "c"]
    tpe = Plan(name="x", design_ids=("a", "b"), seeds=(0,), fidelity="smoke",
               dataset="synthetic", search="tpe", max_trials=2)
    assert est.trials_to_run(tpe, {tpe.key("a", 0)}) == ["b"]


def test_refit_rescales_the_compute_part_to_the_sweeps_records():
    costs = _costs("cpu", "cifar10")
    d = "plain8-c64-k1.64"
    compute = compute_seconds(d, costs.fidelity_config, "cifar10", costs.calibration,
                              num_classes=10)
    records = [{"design_id": d, "status": "ok", "dataset": "cifar10", "num_classes": 10,
                "fidelity_config": costs.fidelity_config,
                "wall_s": costs.calibration.overhead_s + 3 * compute}]
    fitted = costs.refitted(records)
    assert fitted.seconds(d) == pytest.approx(costs.calibration.overhead_s + 3 * compute)
    assert "rescaled x3.00 to 1 finished trial of this sweep" in fitted.source()
    assert costs.refitted([]) is costs


def _ledger_running_the_first(tmp_path, ids):
    """A grid sweep's ledger over ``ids`` (seed 0, cpu) with the first design's trial
    started as "t0"."""
    from studies import study as st
    from studies.ledger import Ledger, Running
    from studies.sampling import make_sampler

    plan = Plan(name="x", design_ids=ids, seeds=(0,), fidelity="cpu", dataset="cifar10")
    storage = st.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = st.open_study(storage, plan.name, make_sampler("grid", 0, plan.target))
    ledger = Ledger(plan, RecordStore(tmp_path), study, storage,
                    fidelity=ev.get_fidelity("cpu"), num_classes=10)
    trial = study.ask()
    ledger.register(Running(plan.key(ids[0], 0), ids[0], 0, trial._trial_id, trial.number,
                            "t0"))
    ledger.started("t0")
    return ledger


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_the_eta_comes_from_the_cost_model_not_from_the_finished_trials(tmp_path):
    from studies.ledger import Finished
    from studies.progress import sweep_left

    ids = ("plain8-c16-k1.4.4", "plain8-c64-k1.64", "plain8-c144-k1.12.12")
    ledger = _ledger_running_the_first(tmp_path, ids)
    ledger.running["t0"].curve.append({"epoch": 1, "seconds": 40.0})  # 1 of 2 epochs
    costs = _costs("cpu", "cifar10")
    clock = est.SweepClock(costs, slots=2, epochs=2)
    running_left = 40.0 + costs.tail(ids[0])  # its own epoch time, then test and latency
    assert clock.trial_left(ids[0], 50.0, ledger.running["t0"].curve) == pytest.approx(
        running_left)
    expected = est.makespan([costs.seconds(d) for d in ids[1:]], 2, busy=[running_left])
    assert sweep_left(ledger, clock) == pytest.approx(expected, rel=1e-3)
    # A finished trial that took an hour changes nothing: the ETA is the cost model's.
    ledger.finished.append(Finished("k", "plain8-c16-k1.g1", 0, "ok", 0.5, None, 3600.0))
    assert sweep_left(ledger, clock) == pytest.approx(expected, rel=1e-3)


def test_dry_run_prints_the_estimate_here_and_at_the_other_fidelities(capsys):
    assert run.main(["--preset", "smoke", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-1] == "est" and all(line.split()[-1] == "11s" for line in out[1:4])
    assert out[4:7] == [
        "3 designs of preset smoke: 3 tiny designs (IGCV2, Xception, IGCV1) at the smoke "
        "fidelity on synthetic data (10 classes)",
        "3 trials (3 designs x 1 seed, grid) at fidelity smoke on synthetic",
        "estimated on this machine: 3 trials, ~11s each, ~28s in all, 2 at a time"]
    others = dict(x.split(" ~") for x in out[7].split(": ", 1)[1].split(", "))
    assert list(others) == [f for f in ev.FIDELITIES if f != "smoke"]
    fidelity = ev.get_fidelity("paper")  # 400 epochs of 1,600 train images of 2,000, 2 slots
    cal = est.calibration(fidelity, threads=1)
    paper = [predict_seconds(d, fidelity.to_dict(), "synthetic", cal, num_classes=10)
             for d in SMOKE]
    assert others["paper"] == est.fmt_seconds(est.makespan(paper, 2) + est.RAY_START_S)
    assert out[8].startswith("(an estimate, from the cost model with this machine's "
                             "calibration (cpu, 1 thread, 8x8")


def test_dry_run_json_keeps_stdout_one_object_per_line(capsys):
    assert run.main(["--design", "plain8-c64-k1.64", "--design", "plain8-c144-k1.12.12",
                     "--dataset", "synthetic", "--dry-run", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["plain8-c64-k1.64", "plain8-c144-k1.12.12"]
    assert rows[1]["est_seconds"] > rows[0]["est_seconds"] > 0  # wider: slower
    assert err.startswith("2 designs named by --design (10 classes)\n2 trials (2 designs x")


def test_dry_run_without_the_data_says_the_sweep_downloads_it_and_creates_nothing(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IGCBENCH_DATA", raising=False)
    assert run.main(["--preset", "table2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "note: cifar10 is not in data: the sweep downloads it first; or give --data-dir " \
           "DIR holding cifar-10-batches-py/, or without internet run `python " in out
    assert os.listdir(tmp_path) == []


def test_list_presets_gives_every_preset_its_trials_and_time_here(capsys):
    assert run.main(["--list-presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:7] == ["preset", "designs", "seeds", "trials", "fidelity",
                                    "dataset", "estimated"]
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert list(rows) == list(PRESETS)
    for name, preset in PRESETS.items():
        assert rows[name][1:5] == [str(len(preset.design_ids)), str(len(preset.seeds)),
                                   str(len(preset.design_ids) * len(preset.seeds)),
                                   preset.fidelity]
    assert rows["smoke"][6:9] == ["~28s", "(2", "at"]
    assert lines[-1].startswith("(estimates: the cost model with this machine's calibrations")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _request(*argv: str):
    from studies.cli import build_parser, resolve

    return resolve(build_parser().parse_args(["--preset", "smoke", *argv]), dry_run=True)


def test_a_sweep_over_the_threshold_asks_on_a_terminal_and_needs_yes_elsewhere(
        tmp_path, monkeypatch, capsys):
    from studies.cli import UsageError

    long = est.SweepEstimate(3, 2, (4000.0,) * 3, 3 * 3600.0, "cost model ...")
    assert run._confirmed(_request(), est.SweepEstimate(1, 2, (9.0,), 9.0, "m"), io.StringIO(),
                          io.StringIO())  # under 2 h: no question
    err = _Terminal()
    assert run._confirmed(_request(), long, _Terminal("y\n"), err)
    assert err.getvalue().endswith("start it? [y/N] ")
    err = _Terminal()
    assert not run._confirmed(_request(), long, _Terminal("\n"), err)  # the default: no
    assert err.getvalue().endswith("not started\n")
    assert run._confirmed(_request("--yes"), long, io.StringIO(), io.StringIO())
    with pytest.raises(UsageError, match=r"estimated at 3h00m on this machine .* over the "
                       r"--confirm-above 2h00m; cheaper: --time-budget DURATION .* a smaller "
                       r"--budget or --max-trials N; or --yes"):  # smoke: no cheaper rung
        run._confirmed(_request(), long, io.StringIO(), io.StringIO())
    with pytest.raises(UsageError, match=r"a cheaper rung \(--fidelity smoke or cpu-v2\), a "):
        run._confirmed(_request("--fidelity", "cpu2-v2"), long, io.StringIO(), io.StringIO())

    # The whole command, not on a terminal: one line, exit 2, nothing created.
    monkeypatch.chdir(tmp_path)
    assert run.main(["--preset", "smoke", "--confirm-above", "10s"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this sweep is estimated at 28s on this machine" in err
    assert os.listdir(tmp_path) == []


def test_calibration_is_measured_once_and_said_so(tmp_path, monkeypatch):
    import dataclasses

    from evaluators import calibrate

    monkeypatch.setenv("IGCBENCH_CACHE", str(tmp_path))
    measured = []

    def measure(fidelity, *, device, threads, probes=None, impl=None):  # seconds, really
        measured.append(fidelity.name)
        return dataclasses.replace(calibrate._identity(fidelity, device, threads),
                                   train=(1e-9, 1e-10, 1e-3), eval=(0.0, 1e-10, 1e-4))

    monkeypatch.setattr(calibrate, "measure", measure)
    err = io.StringIO()
    cal = est.calibration(ev.get_fidelity("cpu"), threads=1, err=err)
    assert measured == ["cpu"] and cal.resolution == 16 and cal.train[0] == 1e-9
    assert err.getvalue().startswith("measuring this machine's speed for the cost model (cpu, "
                                     "1 thread, 16px, batch 64): a few seconds, once")
    err = io.StringIO()
    assert est.calibration(ev.get_fidelity("cpu2"), threads=1, err=err) == cal  # same shape
    assert measured == ["cpu"] and err.getvalue() == ""


def test_dry_run_with_a_time_budget_says_the_estimate_is_the_full_grid(capsys):
    assert run.main(["--preset", "smoke", "--time-budget", "90m", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    head = next(i for i, x in enumerate(out) if x.startswith("with --time-budget"))
    assert out[head].startswith("with --time-budget 1h30m (the estimate above is the full "
                                "grid): successive halving on ")
    assert out[-1].startswith("  the smallest budget that trains anything here: ")
    assert run.main(["--preset", "smoke", "--time-budget", "0", "--dry-run"]) == 2
    assert capsys.readouterr().err == ("run.py: error: --time-budget '0' must be a positive "
                                       "duration\n")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_long_trial_prints_a_heartbeat_and_a_rung_shows_the_budgets_time_left(
        tmp_path, monkeypatch):
    """A trial past a minute with no line prints one, with its own predicted time left;
    a rung of --time-budget shows its ETA (never past its deadline) and the budget's."""
    import studies.progress as pg

    now = [1000.0]
    monkeypatch.setattr(pg, "time", type("T", (), {"monotonic": staticmethod(lambda: now[0])}))
    ids = ("plain8-c64-k1.64", "plain8-c144-k1.12.12")
    ledger = _ledger_running_the_first(tmp_path, ids)
    ledger.running["t0"].started = 1000.0
    ledger.t0 = 1000.0
    costs = _costs("cpu", "cifar10")
    clock = est.SweepClock(costs, slots=2, epochs=2)
    out = io.StringIO()
    progress = pg.Progress(ledger, out, clock, deadlines=(1000.0 + 100.0, 1000.0 + 900.0))
    now[0] = 1059.0
    progress.on_step_end(0, [])
    assert out.getvalue() == ""  # under a minute: quiet
    predicted = costs.seconds(ids[0])
    assert 10 < predicted < 120
    now[0] = 1000.0 + 60.0 + predicted / 2  # past a minute, within its prediction
    progress.on_step_end(0, [])
    line = out.getvalue().strip()
    assert f"running {ids[0]} s0 for {est.fmt_seconds(60.0 + predicted / 2)}, past its " \
        f"predicted {est.fmt_seconds(predicted)} |" in line
    # The rung's deadline passed (100 s): no ETA past it; the budget's time left.
    assert "| left ~" not in line and line.endswith(
        f"| budget left ~{est.fmt_seconds(900.0 - 60.0 - predicted / 2)}")
    now[0] += 20.0
    progress.on_step_end(0, [])  # a line 20 s ago: no heartbeat yet
    assert out.getvalue().count("\n") == 1
    # A trial within its prediction: its own time left.
    now[0] += 61.0
    ledger.running["t0"].started = now[0] - 61.0
    progress.on_step_end(0, [])
    if predicted > 62.0:
        assert f"~{est.fmt_seconds(predicted - 61.0)} left in the trial (predicted)" in \
            out.getvalue().splitlines()[-1]
    assert pg.status(ledger, clock, (now[0] + 5.0, now[0] + 750.0)).endswith(
        "| running 1 | left ~5s | budget left ~12m30s")  # the ETA, cut at the deadline
    assert pg.status(ledger, clock).endswith(
        f"| left ~{est.fmt_seconds(pg.sweep_left(ledger, clock))}")  # no deadline: as was
