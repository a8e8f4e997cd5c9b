"""Release 1.1 through other tools: syne-tune's blackbox and simulator, ConfigSpace with SMAC.

Expected numbers come from the release's parquet read here with pandas (``TABLE``), not from
``analysis``. The tests of a package skip, saying so, where it is not installed (the
``interop`` extra: ``pip install -e ".[interop]"``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.interop.configspace import TableObjective
from analysis.interop.export import main as export_main
from analysis.interop.space import OBJECTIVES, design_space, nearest_index

REPO = Path(__file__).resolve().parents[1]
RELEASE = REPO / "releases" / "igcbench-1.1.json"
EXTRA = 'the interop extra (pip install -e ".[interop]")'


def need(module: str):
    return pytest.importorskip(module, reason=f"{module} is not installed: {EXTRA}")


def _table() -> dict[tuple[str, int], dict]:
    """(design_id, seed) -> the record, from the parquet with pandas alone."""
    df = pd.read_parquet(RELEASE.with_suffix(".parquet"))
    assert (df["status"] == "ok").all()
    df["curve"] = df["curve"].map(json.loads)
    df["K"] = df["K"].map(json.loads)
    return {(r["design_id"], int(r["seed"])): r for r in df.to_dict("records")}


TABLE = _table()
IDS = sorted({d for d, _ in TABLE})
SEEDS = sorted({s for _, s in TABLE})
FINAL_VAL = {k: r["curve"][-1]["val_acc"] for k, r in TABLE.items()}
MEAN_VAL = {d: np.mean([FINAL_VAL[(d, s)] for s in SEEDS]) for d in IDS}
BEST = max(IDS, key=MEAN_VAL.get)
# The release's seed noise (analysis.replay.table.ReplayTable.seed_noise): the median over
# designs of the seeds' std (ddof 1) of the final val_acc.
SEED_NOISE = float(np.median([np.std([FINAL_VAL[(d, s)] for s in SEEDS], ddof=1) for d in IDS]))


def expected(design_id: str, seed: int, epoch: int) -> dict[str, float]:
    """The table's objectives of one record after ``epoch`` epochs."""
    r = TABLE[(design_id, seed)]
    curve = r["curve"][:epoch]
    last = epoch == len(r["curve"])
    return {"val_acc": curve[-1]["val_acc"], "test_acc": r["test_acc"] if last else np.nan,
            "train_seconds": sum(p["seconds"] for p in curve), "params": r["params"],
            "flops": r["flops"], "latency_b1_ms": r["latency_b1_ms"],
            "latency_b64_ms": r["latency_b64_ms"], "seed": seed}  # fmt: skip


def factors_of(design_id: str) -> dict:
    """The factors of an id, parsed here: plain8-c<width>-k<K_1>.<K_2>... (gN: N branches)."""
    m = re.fullmatch(r"plain8-c(\d+)-k([0-9g.]+)", design_id)
    entries = m.group(2).split(".")
    sizes = TABLE[(design_id, 0)]["K"][0]  # the record's K, gN resolved
    out = {"width": int(m.group(1)), "L": len(entries)}
    out.update({f"k{i}": (sizes[i - 1] if i <= len(entries) else 0) for i in range(2, 7)})
    out["branching"] = "count" if entries[1].startswith("g") else "size"
    return out


@pytest.fixture(scope="module")
def space():
    return design_space(RELEASE)


def test_space_is_the_table_by_factors(space):
    from analysis.replay.table import ReplayTable
    from analysis.table.benchmark import Benchmark

    table = ReplayTable.from_benchmark(Benchmark.load(RELEASE))
    assert (SEED_NOISE, BEST) == (pytest.approx(table.seed_noise), table.design_ids[table.best])
    assert space.design_ids == tuple(IDS) and space.seeds == tuple(SEEDS)
    assert space.fixed == {"k1": 1, "net": "plain8", "depth": 8, "spatial": 1, "expansion": 1,
                           "nonlinear": False, "stem": 0}  # fmt: skip
    assert space.factors.to_dict("records") == [factors_of(d) for d in IDS]
    for i, d in enumerate(IDS):
        for j, s in enumerate(SEEDS):
            for e in (1, 2):
                got = dict(zip(OBJECTIVES, space.values[i, j, e - 1], strict=True))
                want = expected(d, s, e) | {"design_index": i}
                np.testing.assert_allclose([got[k] for k in want], list(want.values()),
                                           rtol=1e-12, err_msg=f"{d} seed {s} epoch {e}")


def test_nearest_design(space):
    f = space.factors
    for i in range(len(f)):  # a design of the table answers for itself
        assert nearest_index(f, f.iloc[i].to_dict()) == i
    # Off the table: width 150 (log-nearest 144 or 160), L 2, k2 21 -> c160-k1.g8 (k2 20)
    assert IDS[nearest_index(f, {"width": 150, "L": 2, "k2": 21, "branching": "count"})] == \
        "plain8-c160-k1.g8"
    # ... and k2 24, size -> c144-k1.24 (exact k2, width 150 nearer 144 than 160 on a log axis)
    assert IDS[nearest_index(f, {"width": 150, "L": 2, "k2": 24, "branching": "size"})] == \
        "plain8-c144-k1.24"


def test_objective_function(space):
    f = TableObjective(space)
    cfg = factors_of("plain8-c160-k1.g8")
    for s in SEEDS:
        got = f(cfg, fidelity=1, seed=s)
        assert got["design_id"] == "plain8-c160-k1.g8"
        assert got["val_acc"] == expected("plain8-c160-k1.g8", s, 1)["val_acc"]
        assert np.isnan(got["test_acc"])  # measured once, after training
    mean = f(cfg)  # seed None: the mean over seeds at the last epoch
    assert mean["val_acc"] == pytest.approx(MEAN_VAL["plain8-c160-k1.g8"], rel=1e-12)
    assert f(cfg, seed=7)["val_acc"] == f(cfg, seed=SEEDS[7 % 3])["val_acc"]
    assert f.smac(cfg, seed=1, budget=2.0) == pytest.approx(1 - FINAL_VAL[("plain8-c160-k1.g8",
                                                                          1)])  # fmt: skip
    assert f.smac_mean(cfg, seed=5) == pytest.approx(1 - MEAN_VAL["plain8-c160-k1.g8"])
    with pytest.raises(ValueError, match="epochs are 1..2"):
        f(cfg, fidelity=3)


def test_designs_without_every_seed_are_left_out_and_named(tmp_path):
    from analysis.table.release import read_release, write_release

    df = read_release(RELEASE).records
    short = (df["design_id"] == "plain8-c310-k1.2") & (df["seed"] == 2)
    failed = (df["design_id"] == "plain8-c280-k1.4") & (df["seed"] == 0)
    df = df[~short].copy()
    df.loc[failed[~short], "status"] = "failed"
    s = design_space(write_release(df, tmp_path, "0.1"))
    assert s.left_out == ("plain8-c280-k1.4", "plain8-c310-k1.2")
    assert s.design_ids == tuple(d for d in IDS if d not in s.left_out)
    assert s.values.shape == (len(IDS) - 2, 3, 2, len(OBJECTIVES))


# --- the CLI ---------------------------------------------------------------------------------


def cli(argv: list[str]) -> int:
    """The exit status of ``python -m analysis.interop.export ARGV``, in this process."""
    try:
        return export_main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code)


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    cases = {
        "format 'nope'": (["nope", str(RELEASE), str(tmp_path / "a")], "invalid choice: 'nope'"),
        "no release": (["syne-tune", str(tmp_path / "x.json"), str(tmp_path / "b")],
                       f"no release manifest at {tmp_path / 'x.json'}"),
        "no out dir": (["configspace", str(RELEASE), str(tmp_path / "no" / "c.json")],
                       f"no directory {tmp_path / 'no'}"),
    }  # fmt: skip
    for name, (argv, message) in cases.items():
        assert cli(argv) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("python -m analysis.interop.export: error:"), err
        assert message in err, (name, err)
    assert list(tmp_path.iterdir()) == []


def test_cli_without_the_package_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "syne_tune", None)  # as if not installed
    assert cli(["syne-tune", str(RELEASE), str(tmp_path / "bb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the package syne-tune" in err, err
    assert 'pip install -e ".[interop]"' in err and list(tmp_path.iterdir()) == []


# --- syne-tune -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blackbox_dir(tmp_path_factory):
    need("syne_tune.blackbox_repository")
    need("fastparquet")  # syne-tune's (de)serialize writes parquet with it
    out = tmp_path_factory.mktemp("export") / "igcbench-1.1"
    assert export_main(["syne-tune", str(RELEASE), str(out)]) == 0
    return out


def test_syne_tune_reads_the_export_with_its_own_api(blackbox_dir):
    from syne_tune.blackbox_repository.blackbox_tabular import deserialize

    bb = deserialize(str(blackbox_dir))["cifar10"]  # syne-tune alone: no analysis code
    meta = json.loads((blackbox_dir / "metadata.json").read_text())
    assert meta["design_ids"] == IDS and meta["seeds"] == SEEDS
    assert bb.objectives_names == list(OBJECTIVES) and bb.num_seeds == 3
    assert bb.fidelity_values.tolist() == [1, 2] and list(bb.fidelity_space) == ["epoch"]
    assert bb.hyperparameters.to_dict("records") == [factors_of(d) for d in IDS]
    assert sorted(map(str, bb.configuration_space.values())) == sorted([
        "choice(['count', 'size'])", "lograndint(24, 310)", "randint(2, 6)", "lograndint(2, 72)",
        "lograndint(2, 34)", "lograndint(2, 32)", "lograndint(2, 32)", "lograndint(2, 32)"])
    for d in ("plain8-c310-k1.2", "plain8-c24-k1.24.24.24.24.24"):
        for j, s in enumerate(SEEDS):
            for e in (1, 2):
                got = bb.objective_function(factors_of(d), fidelity=e, seed=j)
                want = expected(d, s, e)
                # stored as float32 by syne-tune's serialize
                np.testing.assert_allclose([got[k] for k in want], list(want.values()),
                                           rtol=1e-6)  # fmt: skip
    off = factors_of("plain8-c310-k1.2") | {"width": 300}
    with pytest.raises(ValueError, match="not present in available evaluations"):
        bb.objective_function(off, fidelity=2, seed=0)  # syne-tune's tabular: table only


def simulate(blackbox_dir: Path, scheduler_name: str, trials: int, workers: int = 4):
    """Run syne-tune's simulator on the export; its results frame and best (trial, config)."""
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository import UserBlackboxBackend
    from syne_tune.optimizer.baselines import ASHA, TPE

    from analysis.interop.synetune import load_blackbox

    bb = load_blackbox(blackbox_dir)
    np.random.seed(0)  # the backend draws each trial's seed from numpy's global generator
    backend = UserBlackboxBackend(
        blackbox=bb, elapsed_time_attr="train_seconds", tuner_sleep_time=TICK,
        simulator_config=SimulatorConfig(0.0, 0.0, 0.0, 0.0, 0.0))  # fmt: skip
    common = {"config_space": bb.configuration_space, "metric": "val_acc",
              "do_minimize": False, "random_seed": 0}  # fmt: skip
    scheduler = (ASHA(time_attr="epoch", max_t=2, **common) if scheduler_name == "asha"
                 else TPE(**common))  # fmt: skip
    callback = SimulatorCallback()
    tuner = Tuner(
        trial_backend=backend, scheduler=scheduler, n_workers=workers, sleep_time=0,
        stop_criterion=StoppingCriterion(max_num_trials_started=trials), callbacks=[callback],
        save_tuner=False, tuner_name=f"igcbench-{scheduler_name}", print_update_interval=1e9,
        results_update_interval=1e9, wait_trial_completion_when_stopping=True)  # fmt: skip
    tuner.run()
    return bb, callback.dataframe(), tuner.best_config(metric="val_acc")


TICK = 0.5  # simulated seconds the tuner waits when no worker is free
SLOP = 0.05  # simulated time syne-tune adds for its own bookkeeping (measured: ~2 ms)


@pytest.mark.parametrize("scheduler", ["asha", "tpe"])
def test_syne_tune_simulator_matches_the_table(blackbox_dir, scheduler, monkeypatch, tmp_path):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path))  # its logs, not ~/syne-tune
    workers = 4
    bb, res, (best_trial, best_config) = simulate(blackbox_dir, scheduler, 40, workers)
    trials = res.groupby("trial_id")
    assert trials.ngroups >= 40
    spans, best = [], (-1.0, None)
    for trial_id, rows in trials:
        rows = rows.sort_values("epoch")
        design = IDS[int(rows["design_index"].iloc[0])]
        seed = int(rows["seed"].iloc[0])
        config = {k[len("config_"):]: v for k, v in rows.iloc[0].items() if k.startswith("config_")}
        assert design == IDS[nearest_index(bb.hyperparameters, config)]
        for _, r in rows.iterrows():  # every report is the table's record
            want = expected(design, seed, int(r["epoch"]))
            np.testing.assert_allclose([r[k] for k in want], list(want.values()), rtol=1e-6)
            best = max(best, (want["val_acc"], trial_id))
        if scheduler == "tpe":  # FIFO: every trial trains every epoch
            assert rows["epoch"].tolist() == [1, 2]
        # simulated time: each epoch takes the table's seconds
        ends = rows["st_tuner_time"].to_numpy()
        seconds = [p["seconds"] for p in TABLE[(design, seed)]["curve"][: len(rows)]]
        np.testing.assert_allclose(np.diff(ends), seconds[1:], atol=SLOP)
        spans.append((ends[0] - seconds[0], ends[-1]))
    # ... and the trials share the workers: a trial starts at 0 or when another ended (within
    # one tick), with fewer than `workers` others running
    for k, (start, _) in enumerate(spans):
        assert start >= -SLOP
        others = sum(s <= start + SLOP < e for j, (s, e) in enumerate(spans) if j != k)
        assert others < workers, (start, others)
        if start > SLOP:
            assert any(0 <= start - e <= TICK + SLOP for _, e in spans), start
    assert res["st_tuner_time"].max() == pytest.approx(max(e for _, e in spans))
    # the best syne-tune reports is the table's best of what it ran
    best_row = res[res["trial_id"] == best_trial]
    assert best_row["val_acc"].max() == pytest.approx(best[0], rel=1e-6)
    assert IDS[nearest_index(bb.hyperparameters, best_config)] == \
        IDS[int(best_row["design_index"].iloc[0])]


# --- ConfigSpace and SMAC --------------------------------------------------------------------


def run_smac(space, tmp_path: Path, n_trials: int, seed: int, *, mean: bool = False):
    """SMAC's HPO facade (random forest, EI), as its docs run it, on the table's objective:
    one seed per evaluation, or (``mean``) the mean over seeds with ``deterministic=True``."""
    need("ConfigSpace")
    need("smac")
    from smac import HyperparameterOptimizationFacade, Scenario

    from analysis.interop.configspace import configuration_space

    objective = TableObjective(space)
    scenario = Scenario(configuration_space(space, seed=seed), deterministic=mean,
                        n_trials=n_trials, seed=seed, output_directory=tmp_path / f"smac{seed}")
    target = objective.smac_mean if mean else objective.smac
    smac = HyperparameterOptimizationFacade(scenario, target, overwrite=True, logging_level=40)
    return smac, smac.optimize(), objective


def test_configspace_is_the_factor_space(space, tmp_path):
    need("ConfigSpace")
    from ConfigSpace import Configuration, ConfigurationSpace

    from analysis.interop.configspace import configuration_space

    cs = configuration_space(space, seed=0)
    assert export_main(["configspace", str(RELEASE), str(tmp_path / "cs.json")]) == 0
    assert ConfigurationSpace.from_json(tmp_path / "cs.json") == cs
    assert sorted(cs) == ["L", "branching", "k2", "k3", "k4", "k5", "k6", "width"]
    for d in IDS:  # every design of the table is a legal configuration, k_l > L inactive
        f = {k: v for k, v in factors_of(d).items() if v != 0}
        cs.check_configuration(Configuration(cs, values=f))
    inactive = {c["L"]: sorted(c) for c in cs.sample_configuration(200)}
    assert inactive[2] == ["L", "branching", "k2", "width"] and len(inactive[6]) == 8


def test_smac_runs_on_the_objective_and_reads_the_table(space, tmp_path):
    smac, incumbent, objective = run_smac(space, tmp_path, n_trials=20, seed=0)
    rh = smac.runhistory
    assert len(rh) == 20
    costs: dict[int, list[float]] = {}
    for key, value in rh.items():
        design = IDS[nearest_index(space.factors, dict(rh.get_config(key.config_id)))]
        want = 1 - FINAL_VAL[(design, SEEDS[key.seed % len(SEEDS)])]
        assert value.cost == pytest.approx(want, rel=1e-12)
        costs.setdefault(key.config_id, []).append(want)
    assert rh.get_cost(incumbent) == pytest.approx(np.mean(costs[rh.get_config_id(incumbent)]))


# --- docs/benchmark.md's examples, run as written -------------------------------------------

DOC = REPO / "docs" / "benchmark.md"
SECTION = DOC.read_text().split("## Using the table from other tools")[1]


def doc_blocks(name: str) -> list[tuple[str, str | None]]:
    """(python code, the text block after it or None) between the ``name`` markers."""
    part = SECTION.split(f"<!-- {name}:begin -->")[1].split(f"<!-- {name}:end -->")[0]
    out: list[list] = []
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", part, re.S):
        if lang == "python":
            out.append([body, None])
        else:
            out[-1][1] = body
    return [tuple(b) for b in out]


def run_doc(name: str, tmp_path: Path, monkeypatch, blocks: int | None = None) -> dict:
    """Export as the section's commands do, then run its blocks in one namespace; each
    block's printed lines must end with the text block shown after it. /tmp paths of the
    docs go to tmp_path."""
    monkeypatch.chdir(REPO)  # the examples name releases/ relative to the checkout
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "syne-tune"))

    def here(text: str) -> str:
        return re.sub(r"/tmp/([\w.-]+)", lambda m: str(tmp_path / m.group(1)), text)

    for line in re.findall(r"^python -m analysis.interop.export .*$", SECTION, re.M):
        if not (tmp_path / shlex.split(line)[-1].split("/")[-1]).exists():
            assert export_main(shlex.split(here(line))[3:]) == 0, line
    ns: dict = {}
    for code, shown in doc_blocks(name)[:blocks]:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(here(code), ns)  # noqa: S102 - the documentation's own example
        if shown is not None:
            want = shown.strip().splitlines()
            assert printed.getvalue().strip().splitlines()[-len(want):] == want, code
    return ns


def test_docs_quote_the_release(space):
    assert f"(release 1.1: {len(IDS)} designs)" in SECTION
    flat = " ".join(SECTION.split())
    assert f"the release's seed noise ({SEED_NOISE:.4f}: the median" in flat
    assert f"of the best mean val_acc (`{BEST}`, {MEAN_VAL[BEST]:.4f})" in flat


def test_docs_syne_tune_example_runs_as_shown(tmp_path, monkeypatch):
    need("syne_tune.blackbox_repository")
    need("fastparquet")
    ns = run_doc("interop-synetune", tmp_path, monkeypatch)
    assert len(ns["tuner"].tuning_status.trial_rows) >= 40


def test_docs_objective_example_runs_as_shown(tmp_path, monkeypatch):
    need("ConfigSpace")
    run_doc("interop-smac", tmp_path, monkeypatch, blocks=1)  # SMAC's run: below, slow


@pytest.mark.slow
def test_smac_finds_a_design_within_the_seed_noise_of_the_best(space, tmp_path, monkeypatch):
    """The docs' run (SMAC seed 0) and the same with seeds 1-3: SMAC's runs are not
    repeatable (one seed has given three incumbents here), and on this table one run in
    about three ends on a design just outside the noise (plain8-c160-k1.g8, 0.0133 below)."""
    ns = run_doc("interop-smac", tmp_path, monkeypatch)  # the docs' run, as written
    found = [ns["objective"](ns["incumbent"])["design_id"]]
    for seed in (1, 2, 3):
        _, incumbent, objective = run_smac(space, tmp_path, 100, seed, mean=True)
        found.append(objective(incumbent)["design_id"])
    gaps = [MEAN_VAL[BEST] - MEAN_VAL[d] for d in found]
    assert min(gaps) <= SEED_NOISE, list(zip(found, gaps, strict=True))


def test_the_interop_modules_never_pull_torch_or_ray():
    code = ("import sys, analysis.interop.export, analysis.interop.synetune\n"
            "import analysis.interop.configspace\n"
            "bad = sorted(m for m in ('torch', 'ray') if m in sys.modules)\n"
            "assert not bad, bad\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
