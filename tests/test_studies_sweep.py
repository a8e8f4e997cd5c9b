"""Sweeps with Ray: records and Optuna trials, re-runs, kill -9 of the driver, divergence.

Ray starts once for the module (2 CPUs, no dashboard); in-process sweeps use it. The kill
test runs the driver as a subprocess with its own Ray, so killing it kills that Ray only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest

import evaluators
from evaluators.record import trial_key
from studies import run
from studies.presets import get_preset
from studies.store import RecordStore

from sweep_process import Driver

FAST = ["--fidelity-set", "epochs=2"]  # smoke at 2 epochs: a trial in a few seconds


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _trials(run_dir: Path, name: str | None = None) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{run_dir / 'optuna.db'}"
    name = name or optuna.get_all_study_names(storage)[0]
    return optuna.load_study(study_name=name, storage=storage).trials


def _complete_keys(trials) -> list[str]:
    return sorted(t.user_attrs["key"] for t in trials
                  if t.state == optuna.trial.TrialState.COMPLETE)


def _planned_keys(fidelity: str, seeds=(0,)) -> set[str]:
    return {trial_key(d, fidelity, "synthetic", s)
            for d in get_preset("smoke").design_ids for s in seeds}


def test_smoke_sweep_records_every_trial_in_store_and_study(ray_cluster, tmp_path, capsys):
    run_dir = tmp_path / "smoke"
    assert run.main(["--preset", "smoke", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr()
    records = list(RecordStore(run_dir).records())
    assert len(records) == 3 and {r["status"] for r in records} == {"ok"}
    assert {trial_key(r["design_id"], "smoke", "synthetic", 0) for r in records} == \
        _planned_keys("smoke")
    for r in records:  # the schema of docs/internals.md, as evaluate wrote it
        assert len(r["curve"]) == 4 and 0.0 <= r["val_acc"] <= 1.0
        assert r["fidelity_config"]["epochs"] == 4 and r["params"] > 0
    # A Ray trial (reused worker process included) trains exactly as evaluate() here does.
    direct = evaluators.evaluate(records[-1]["design_id"], fidelity="smoke",
                                 dataset="synthetic", seed=0, threads=1)
    assert [row["val_acc"] for row in records[-1]["curve"]] == [row["val_acc"]
                                                               for row in direct.curve]
    trials = _trials(run_dir, "smoke-smoke-synthetic")
    assert _complete_keys(trials) == sorted(_planned_keys("smoke")) and len(trials) == 3
    for t in trials:  # objectives and describe() fields, for optuna-dashboard
        rec = RecordStore(run_dir).read(t.user_attrs["key"])
        assert t.values == [rec["val_acc"], rec["params"]]
        assert t.params == {"design_id": rec["design_id"]}
        assert t.user_attrs["width"] == rec["width"] and t.user_attrs["seed"] == 0
    assert json.loads((run_dir / "run.json").read_text())["study"] == "smoke-smoke-synthetic"
    analysis = pytest.importorskip("analysis")  # the reader downstream: files and study agree
    df = analysis.load_results(run_dir, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert len(df) == 3 and set(df.optuna_state) == {"COMPLETE"}
    assert f"run directory: {run_dir}" in out.out and "3 of 3 planned trials recorded" in out.out
    assert "done 3/3 (ok 3)" in out.err  # the progress lines
    first = out.err.splitlines()[0]  # the estimate of the fixed calibration (conftest.py)
    assert first.endswith("; estimate: 3 trials, ~11s each, ~23s in all, 2 at a time (cost "
                          "model with this machine's calibration (cpu, 1 thread, 8x8, "
                          "measured 2026-11-29 00:00))"), first
    epochs = re.findall(r"\] epoch (\d)/4 (\S+) s0  val (0\.\d{3}), ~\d+s left in the trial",
                        out.err)
    assert sorted(e for e, *_ in epochs) == ["1"] * 3 + ["2"] * 3 + ["3"] * 3  # 4th: "ok"
    assert list((run_dir / "checkpoints").iterdir()) == []  # each removed with its record
    _matches_the_smoke_example(out.err + out.out)
    assert not list((run_dir / "records").glob(".*"))  # no temporary files left

    # The same command again trains nothing and changes nothing.
    before = {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").iterdir()}
    assert run.main(["--preset", "smoke", "--run-dir", str(run_dir)]) == 0
    assert "0 to run" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").iterdir()} == before
    assert len(_trials(run_dir)) == 3


TIME = r"\d+d\d\dh|\d+h\d\dm|\d+m\d\ds|\d+s"
STATUS = re.compile(r"done \d/3( \((ok|failed|stopped|error|interrupted|before) \d"
                    r"(, \w+ \d)*\))? \| running \d( \+\d queued)?"
                    r"( \| best 0\.\d{3} plain8-\S+ s0)?( \| left ~<t>)?")


def _shape(line: str) -> str:
    """A line with what varies from run to run (times, dates, paths, wall seconds) masked."""
    line = re.sub(r"measured \d{4}-\d\d-\d\d \d\d:\d\d", "measured <date>", line)
    line = re.sub(r"^run directory: .*", "run directory: <dir>", line)
    line = re.sub(r"^\[\s*(?:" + TIME + r")\]", "[<t>]", line)
    line = re.sub(r"(?<![\w.])(?:" + TIME + r")(?!\w)", "<t>", line)
    if re.match(r"plain8-\S+\s+[\d,]+\s+\d/\d", line):  # a summary row: wall_s varies
        line = " ".join(line.split()[:5])
    return line


def _matches_the_smoke_example(output: str) -> None:
    """docs/studies.md's smoke example, line by line, modulo timings and the order of events
    (which trial finishes first varies; what each one prints does not)."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "studies.md").read_text()
    block = doc.split("<!-- smoke-example:begin -->\n```\n")[1].split("\n```")[0]

    def split(text: str) -> tuple[list[str], list[str]]:
        lines = [_shape(line) for line in text.splitlines() if line.strip()]
        events = [line for line in lines if line.startswith("[<t>] ")]
        for event in events:  # the status part's form; its counts depend on the order
            assert STATUS.fullmatch(event.split(" | ", 1)[1]), event
        return ([line for line in lines if not line.startswith("[<t>] ")],
                sorted(event.split(" | ", 1)[0] for event in events))

    assert split(output) == split(block)


def test_a_diverging_trial_is_recorded_as_failed_and_the_sweep_goes_on(ray_cluster, tmp_path,
                                                                        capsys):
    run_dir = tmp_path / "lr100"
    argv = ["--preset", "smoke", "--run-dir", str(run_dir), "--fidelity-set", "lr=100", *FAST]
    assert run.main(argv) == 0  # failures are results, not errors of the sweep
    records = list(RecordStore(run_dir).records())
    assert len(records) == 3
    for r in records:
        assert r["status"] == "failed" and r["reason"].startswith("diverged: loss=nan")
        assert r["val_acc"] is None and r["fidelity"] == "smoke+lr=100+epochs=2"
    trials = _trials(run_dir)
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 3
    assert all(t.user_attrs["reason"].startswith("diverged") for t in trials)
    events = [line.split("]", 1)[1].split()[:2] for line in capsys.readouterr().err.splitlines()
              if line.startswith("[")]
    assert [e[0] for e in events].count("failed") == 3 and events[-1][0] == "failed"
    # Two run at once on 2 CPUs: the third starts only after a trial failed.
    assert events.index(["start", get_preset("smoke").design_ids[2]]) > \
        [e[0] for e in events].index("failed")


def test_tpe_with_asha_stays_within_max_trials_and_never_repeats_a_key(ray_cluster, tmp_path):
    run_dir = tmp_path / "tpe"
    argv = ["--preset", "smoke", "--run-dir", str(run_dir), "--search", "tpe", "--seeds", "2",
            "--max-trials", "5", *FAST]
    assert run.main(argv) == 0
    records = list(RecordStore(run_dir).records())
    assert len(records) == 5  # ok, or stopped by ASHA: each is a record
    for r in records:
        assert r["status"] == "ok" or r["reason"].startswith("stopped: ASHA")
    trials = _trials(run_dir)
    told = [t for t in trials if "status" in t.user_attrs]
    assert sorted(t.user_attrs["key"] for t in told) == sorted(RecordStore(run_dir).keys())
    # Seeds of a design run together: 5 trials touch at most 3 designs, each at seed 0 first.
    assert {r["seed"] for r in records} == {0, 1}
    assert run.main(argv) == 0 and len(RecordStore(run_dir).keys()) == 5


def test_kill_9_mid_trial_then_two_drivers_resume_it_without_duplicates(
        ray_cluster, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "killed"
    args = ["--preset", "smoke", "--run-dir", str(run_dir), "--fidelity-set", "epochs=6"]
    # Dead drivers' RUNNING trials go stale after 4 s instead of 30, to keep the test short.
    monkeypatch.setenv("IGCBENCH_STALE_AFTER_S", "4")
    driver = Driver(args)
    try:
        driver.wait_for(lambda line: line.startswith("[") and " epoch 3/" in line)
    finally:
        driver.kill()  # kill -9 of the driver, its Ray and its workers, mid-trial
    store = RecordStore(run_dir)
    recorded_at_kill = store.keys()
    kept = {p.stem for p in (run_dir / "checkpoints").glob("*.pt")} - recorded_at_kill
    assert len(recorded_at_kill) < 3 and kept  # a trial was cut off after an epoch

    # The same command again, twice at once on the same run directory and storage: one
    # driver in this process (on the module's Ray), one in a subprocess with its own Ray.
    second = Driver(args)
    try:
        assert run.main(args) == 0
        status, _, second_err = second.finish(timeout=240)
        assert status == 0, second_err[-2000:]
    finally:
        second.proc.kill()
    err = capsys.readouterr().err + second_err
    resumed = re.findall(r"\] resume\s+(\S+) s0 after epoch (\d+)", err)
    assert resumed and max(int(e) for _, e in resumed) >= 3  # from the last epoch, not 0
    fidelity = evaluators.with_changes(evaluators.get_fidelity("smoke"), epochs=6)
    planned = _planned_keys(fidelity.name)
    assert store.keys() == planned
    for key in planned & kept:  # resumed trials end as if never interrupted
        record = store.read(key)
        direct = evaluators.evaluate(record["design_id"], fidelity=fidelity,
                                     dataset="synthetic", seed=0, threads=1)
        assert [r["val_acc"] for r in record["curve"]] == [r["val_acc"] for r in direct.curve]
        assert (record["val_acc"], record["test_acc"]) == (direct.val_acc, direct.test_acc)
    assert all(store.read(k)["status"] == "ok" for k in planned)
    assert not [p for p in (run_dir / "records").iterdir() if not p.name.endswith(".json")
                or p.name.startswith(".")]
    assert list((run_dir / "checkpoints").iterdir()) == []  # removed once recorded
    trials = _trials(run_dir)
    complete = _complete_keys(trials)
    assert complete == sorted(planned)  # one COMPLETE trial per key: no duplicates
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
