"""studies without Ray: keys, atomic records, plans, presets, and the CLI's bad-input paths."""

from __future__ import annotations

import json
import math
import os
import socket
import sys

import pytest

import search_space as ss
from studies import cli, run
from studies.plan import Plan, parse_seeds
from studies.presets import (
    FIG3_L,
    FIG_BUDGET,
    PRESETS,
    TABLE40K_BUDGET,
    TABLE_BUDGET,
    get_preset,
)
from studies.store import RecordStore

# --- store (the key and the atomic write: tests/test_record.py) ----------------------------


def test_store_write_replaces_and_leaves_no_temporary_files(tmp_path):
    store = RecordStore(tmp_path)
    assert store.keys() == set() and not (tmp_path / "records").exists()
    rec = {"design_id": "d", "fidelity": "f", "dataset": "x", "seed": 0, "val_acc": 0.5}
    key = store.write(rec)
    store.write({**rec, "val_acc": 0.75})  # same key: replaced, not duplicated
    assert store.keys() == {key}
    assert store.read(key)["val_acc"] == 0.75
    assert os.listdir(tmp_path / "records") == [f"{key}.json"]


# --- plan ---------------------------------------------------------------------------------


def _plan(**kw):
    base = dict(name="x", design_ids=("a", "b", "c"), seeds=(0, 1), fidelity="smoke",
                dataset="synthetic")
    return Plan(**{**base, **kw})


def test_grid_order_is_seed_major_and_cut_at_max_trials():
    p = _plan(max_trials=3)
    assert p.ordered_pairs() == [("a", 0), ("b", 0), ("c", 0)]
    assert _plan().ordered_pairs() == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1),
                                       ("c", 1)]
    assert p.target == 3 and _plan().target == 6
    assert len(p.all_pairs()) == 6


def test_random_order_is_a_seeded_permutation_without_replacement():
    orders = {tuple(_plan(search="random", sampler_seed=s).ordered_pairs()) for s in range(6)}
    assert len(orders) > 1  # the seed matters
    for order in orders:
        assert sorted(order) == sorted(_plan().ordered_pairs())
        assert [d for d, s in order][::2] == [d for d, s in order][1::2]  # seeds together
    assert _plan(search="random").ordered_pairs() == _plan(search="random").ordered_pairs()


def test_plan_rejects_unknown_search_and_repeated_designs():
    with pytest.raises(ValueError,
                       match="unknown search 'bayes'; accepted: grid, random, tpe, nsga2$"):
        _plan(search="bayes")
    # A search the replays alone run (studies.searches) is refused with its reason.
    with pytest.raises(ValueError, match=r"search 'zc-order' runs in replays only \(sweeps "
                       "record no zero-cost scores.*; a sweep accepts: grid, random, tpe"):
        _plan(search="zc-order")
    with pytest.raises(ValueError, match="repeat"):
        _plan(design_ids=("a", "a"))


# --- presets ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_id_parses_to_itself(name):
    p = get_preset(name)
    assert p.design_ids and len(set(p.design_ids)) == len(p.design_ids)
    for design_id in p.design_ids:
        assert ss.parse(design_id).id == design_id


def test_unknown_preset_names_the_accepted_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'fig9'; accepted: smoke, fig2"):
        get_preset("fig9")


def _uniform_k(d: ss.Design) -> int:
    ks = {d.width // int(e[1:]) if isinstance(e, str) else e for e in d.K[0][1:]}
    assert len(ks) == 1
    return ks.pop()


def test_fig2_is_the_papers_fifteen_bars():
    # Figure 2 of the paper: (K, C) per bar; L counts the group 1x1 convolutions.
    paper = {2: ((4, 272), (6, 222), (8, 184), (12, 144), (16, 112)),
             3: ((3, 258), (4, 220), (6, 174), (8, 136), (12, 108)),
             4: ((3, 222), (4, 184), (6, 144), (8, 112), (12, 84))}
    designs = [ss.parse(i) for i in get_preset("fig2").design_ids]
    got = {}
    for d in designs:
        assert d.net == "plain8" and d.K[0][0] == 1  # channel-wise 3x3 first
        got.setdefault(d.L - 1, []).append((_uniform_k(d), d.width))
        # about equal block weights: 9C + L*C*K within 10% of Table 2's 4,700
        block = ss.describe(d, num_classes=10)["block_params"]
        assert block == 9 * d.width + (d.L - 1) * d.width * _uniform_k(d)
        assert abs(block / 4_700 - 1) <= 0.10
    assert {L: tuple(pairs) for L, pairs in got.items()} == paper
    assert len(designs) == 15


def test_table40k_is_the_whole_enumerated_space_under_its_budget():
    p = get_preset("table40k")
    assert list(p.design_ids) == [
        d.id for d in ss.enumerate_designs(TABLE40K_BUDGET, "plain8", num_classes=10)]
    assert len(p.design_ids) == 68 and p.fidelity == "cpu-v2" and p.seeds == (0, 1, 2)
    widths = [ss.parse(i).width for i in p.design_ids]
    assert (min(widths), max(widths)) == (24, 310)
    assert {"plain8-c64-k1.64", "plain8-c144-k1.12.12"} <= set(p.design_ids)  # Table 2's pair


def test_table_is_the_whole_enumerated_space_under_its_budget():
    p = get_preset("table")
    assert list(p.design_ids) == [
        d.id for d in ss.enumerate_designs(TABLE_BUDGET, "plain8", num_classes=10)]
    assert len(p.design_ids) >= 30 and p.fidelity == "cpu-v2" and p.seeds == (0, 1, 2)
    assert max(ss.describe(ss.parse(i), num_classes=10)["params"]
               for i in p.design_ids) <= TABLE_BUDGET


def test_fig3_is_the_most_balanced_dense_design_of_each_l():
    designs = [ss.parse(i) for i in get_preset("fig3").design_ids]
    assert [d.L for d in designs] == list(FIG3_L)
    for d in designs:
        info = ss.describe(d, num_classes=10)
        assert 0.9 * FIG_BUDGET <= info["params"] <= FIG_BUDGET and info["density"] == 1.0
        deviation = abs(math.log(_uniform_k(d) ** (d.L - 1) / d.width))
        # No other dense uniform-K design of this L at its widest width within budget (and
        # using >= 90% of it) has K^(L-1) closer to C.
        for other in ss.enumerate_designs(FIG_BUDGET, "plain8", num_classes=10, L=(d.L,),
                                          branch_sizes=range(2, 65), branch_counts=(1,)):
            ks = {other.width // int(e[1:]) if isinstance(e, str) else e
                  for e in other.K[0][1:]}
            o = ss.describe(other, num_classes=10)
            if len(ks) == 1 and o["params"] >= 0.9 * FIG_BUDGET and o["density"] == 1.0:
                assert abs(math.log(ks.pop() ** (d.L - 1) / other.width)) >= deviation - 1e-12
    widths = [d.width for d in designs]  # the paper: width is concave in L
    assert widths.index(max(widths)) not in (0, len(widths) - 1)


def test_table_presets_have_the_papers_widths():
    widths = {p: [ss.parse(i).width for i in get_preset(p).design_ids]
              for p in ("table2", "table3", "table5")}
    assert widths["table2"] == [64, 144, 96, 256, 128, 361]
    assert widths["table3"] == [58, 96, 71, 126, 83, 150, 216, 304, 416]
    assert widths["table5"] == [64, 98, 100, 96, 162, 169, 128, 242, 256]
    star = ss.parse(get_preset("table3").design_ids[-1])  # IGCV2*(C416): L* = ceil(log8 416)+1
    assert star.L == 4 and star.stem == 64 and star.K[0][1:] == (8, 8, 8)


# --- the command line ---------------------------------------------------------------------


def test_seeds_accepts_a_count_or_a_list():
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("4,7") == (4, 7) and parse_seeds("5,") == (5,)
    for bad in ("0", "-1", "a", "1,1", ",", "0,,1", ",1", "0, ,1"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_help_says_a_seed_count_of_one_is_seed_0_alone():
    text = " ".join(cli.build_parser().format_help().split())
    assert "a count N: seeds 0..N-1 (so 1 is seed 0 alone, the default" in text


def test_default_names_say_what_ran():
    assert cli._default_name(None, "plain8", 650_000, [], "cpu", "cifar10") == \
        "plain8-650k-cpu-cifar10"
    assert cli._default_name(get_preset("fig3"), None, None, [], "proxy", "cifar100") == \
        "fig3-proxy-cifar100"
    two = [ss.parse("plain8-c64-k1.64"), ss.parse("res20-c64-k1.8.8/1.16.16/1.32.32")]
    assert cli._default_name(None, None, None, two, "cpu", "cifar10") == \
        "plain8-c64-k1.64+res20-c64-k1.8.8_1.16.16_1.32.32-cpu-cifar10"  # no "/" in a name
    many = [ss.parse(f"plain8-c{c}-k1.{c}") for c in (16, 32, 48, 64, 80, 96)]
    name = cli._default_name(None, None, None, many, "cpu", "cifar10")
    assert name.startswith("designs6-") and len(name) == len("designs6-12345678-cpu-cifar10")


def test_dry_run_of_a_preset_lists_its_designs(capsys):
    assert run.main(["--preset", "fig3", "--dry-run", "--format", "json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(get_preset("fig3").design_ids)


def _refused_port() -> int:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BAD = {
    "unknown preset": (["--preset", "fig9"], "unknown preset 'fig9'; accepted: smoke, fig2"),
    "unknown net": (["--budget", "50k", "--net", "vgg"], "unknown net 'vgg'"),
    "unknown dataset": (["--preset", "smoke", "--dataset", "mnist"],
                        "unknown dataset 'mnist'; accepted: synthetic, cifar10"),
    "unknown search": (["--preset", "smoke", "--search", "bayes"],
                       "unknown search 'bayes'; accepted: grid, random, tpe, nsga2"),
    "replay-only search": (["--preset", "smoke", "--search", "tpe-struct"],
                           "search 'tpe-struct' runs in replays only (the sweep's searcher "
                           "proposes design ids", "a sweep accepts: grid, random, tpe, nsga2"),
    "unknown scheduler": (["--preset", "smoke", "--scheduler", "pbt"],
                          "--scheduler: invalid choice: 'pbt' (choose from", "asha"),
    "malformed budget": (["--budget", "0.65X"], "budget '0.65X' is not a parameter count"),
    "missing data dir": (["--preset", "table2", "--data-dir", "no/such/dir"],
                         "--data-dir 'no/such/dir' is not a directory: give --data-dir DIR "
                         "holding cifar-10-batches-py/", "prepare_cifar10.py no/such/dir`"),
    # /proc is a directory where no download can be written: refused before any download,
    # by the dry run too (it used to pass the dry run and fail the sweep with a raw errno).
    "unwritable data dir": (["--preset", "table2", "--data-dir", "/proc"],
                            "cifar10 is not in /proc and cannot be downloaded there (cannot "
                            "create a file there", "holding cifar-10-batches-py/",
                            "prepare_cifar10.py"),
    "budget with preset": (["--preset", "smoke", "--budget", "1M"],
                           "--preset smoke fixes its designs; drop --budget"),
    "design with budget": (["--design", "plain8-c16-k1.g1", "--budget", "1M"],
                           "--design names the designs; drop --budget/--net"),
    "bad design": (["--design", "plain8-c16-k1.g1", "--design", "plain9-c1"], "plain9-c1"),
    "design twice": (["--design", "plain8-c16-k1.g1", "--design", "plain8-c16-k1.g1"],
                     "--design plain8-c16-k1.g1 is given twice"),
    "net without budget": (["--net", "res20"], "--net res20 needs --budget"),
    "neither": ([], "one of --budget, --preset or --design is required"),
    "seeds letter": (["--preset", "smoke", "--seeds", "a"], "--seeds 'a': expected a count"),
    "seed zero": (["--preset", "smoke", "--seeds", "0"],
                  "--seeds '0': expected a count N >= 1", "(seed 0 alone: --seeds 0,)"),
    "empty seed": (["--preset", "smoke", "--seeds", "0,,1"], "--seeds '0,,1': expected"),
    "no trials": (["--preset", "smoke", "--max-trials", "0"], "--max-trials 0 must be >= 1"),
    "bad duration": (["--preset", "smoke", "--confirm-above", "2 hours"],
                     "--confirm-above '2 hours' is not a duration; accepted: 2h, 90m"),
    "unknown fidelity": (["--preset", "smoke", "--fidelity", "huge"],
                         "unknown fidelity 'huge'; accepted: smoke, cpu"),
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line_and_creates_nothing(case, dry_run, tmp_path,
                                                            monkeypatch, capsys):
    # The dry run refuses exactly what the run refuses, with the same line (one validation).
    argv, *messages = BAD[case]
    monkeypatch.chdir(tmp_path)
    assert run.main(argv + (["--dry-run"] if dry_run else [])) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("run.py: error: ") and not out
    assert all(m in err for m in messages), err
    assert os.listdir(tmp_path) == []  # no runs/, no run directory, no database


def test_unreachable_address_exits_2_within_seconds(tmp_path, monkeypatch, capsys):
    import time

    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    port = _refused_port()
    assert run.main(["--preset", "smoke", "--address", f"127.0.0.1:{port}"]) == 2
    assert time.monotonic() - t0 < 20
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--address '127.0.0.1:{port}': cannot reach" in err
    assert os.listdir(tmp_path) == []
    assert run.main(["--preset", "smoke", "--address", "ray://h:10001"]) == 2
    assert "Ray Client addresses are not supported" in capsys.readouterr().err


@pytest.mark.parametrize("data_dir", [None, "given"])
def test_missing_dataset_without_network_names_the_three_ways_and_creates_nothing(
        data_dir, tmp_path, monkeypatch, capsys):
    import urllib.error
    import urllib.request

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.delenv("IGCBENCH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    argv = ["--preset", "table2"]
    if data_dir:
        (tmp_path / data_dir).mkdir()
        argv += ["--data-dir", data_dir]
    assert run.main(argv) == 2
    err = capsys.readouterr().err
    root = data_dir or "data"
    assert err.count("\n") == 1 and err.startswith(
        f"run.py: error: {root}/cifar-10-batches-py is missing and downloading "
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz failed"), err
    assert "give --data-dir DIR holding cifar-10-batches-py/" in err
    assert "/shared/data/prepare_cifar10.py " + root + "`" in err
    assert "--dataset synthetic" in err
    assert os.listdir(tmp_path) == ([data_dir] if data_dir else [])  # no data/, no runs/
    assert not data_dir or os.listdir(tmp_path / data_dir) == []  # no partial download


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_default_data_path_that_is_a_file_is_refused_alike(dry_run, tmp_path, monkeypatch,
                                                             capsys):
    """The dry run used to say "the sweep downloads it first" where the sweep then failed
    with "Not a directory"; both now refuse it in one line naming the ways."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IGCBENCH_DATA", raising=False)
    (tmp_path / "data").write_text("not a dataset")
    assert run.main(["--preset", "table2"] + (["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "run.py: error: the default data directory 'data' is not a directory: give "
        "--data-dir DIR holding cifar-10-batches-py/, or without internet run `python "), err
    monkeypatch.setenv("IGCBENCH_DATA", str(tmp_path / "data" / "below"))
    assert run.main(["--preset", "table2"] + (["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err
    assert f"cifar10 is not in {tmp_path}/data/below and cannot be downloaded there " \
           f"({tmp_path}/data is not a directory)" in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == ["data"]


def test_a_run_directory_refuses_another_sweep(tmp_path, capsys):
    run_dir = tmp_path / "r"
    args = cli.build_parser().parse_args(["--preset", "smoke", "--run-dir", str(run_dir)])
    run._create_run_dir(cli.resolve(args), ["--preset", "smoke"])
    assert json.loads((run_dir / "run.json").read_text())["design_ids"][0] == \
        "plain8-c16-k1.4.4"
    assert run.main(["--preset", "smoke", "--run-dir", str(run_dir),
                     "--fidelity-set", "epochs=2"]) == 2
    assert "holds another sweep (fidelity_config differ)" in capsys.readouterr().err


def test_script_is_runnable_without_installing(tmp_path):
    import subprocess
    from pathlib import Path

    script = Path(run.__file__)
    done = subprocess.run([sys.executable, str(script), "--preset", "nope"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown preset 'nope'" in done.stderr
    assert os.listdir(tmp_path) == []


# --- progress and summary -----------------------------------------------------------------


def test_fmt_seconds():
    from studies.progress import fmt_seconds

    assert [fmt_seconds(s) for s in (0.4, 41, 185, 7800)] == ["0s", "41s", "3m05s", "2h10m"]


def test_summary_ranks_designs_by_mean_val_acc_over_ok_seeds():
    import io

    from studies.progress import summary_rows, write_summary

    def rec(design, seed, val, status="ok", reason=None):
        return {"design_id": design, "seed": seed, "params": 1000, "status": status,
                "reason": reason, "val_acc": val, "test_acc": val, "wall_s": 2.0}

    records = [rec("a", 0, 0.5), rec("a", 1, 0.7), rec("b", 0, 0.8),
               rec("b", 1, None, "failed", "diverged: loss=nan at epoch 1 step 3"),
               rec("c", 0, None, "failed", "stopped: ASHA stopped the trial")]
    rows = summary_rows(records)
    assert [r["design"] for r in rows] == ["b", "a", "c"]
    assert rows[1]["val_acc"] == pytest.approx(0.6) and rows[1]["val_sd"] == pytest.approx(
        0.1414, abs=1e-4)
    assert (rows[0]["ok"], rows[0]["seeds"], rows[0]["failed"]) == (1, 2, "diverged")
    out = io.StringIO()
    write_summary(records, out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["design", "params", "ok", "val_acc", "test_acc", "wall_s",
                                "failed"]
    assert lines[2].split()[:4] == ["a", "1,000", "2/2", "0.600"] and "stopped" in lines[3]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_trials_cut_off_by_the_end_of_a_sweep_show_as_interrupted_not_error(tmp_path):
    from studies import study as st
    from studies.ledger import Ledger, Running
    from studies.progress import describe_outcome, status
    from studies.sampling import make_sampler

    plan = _plan()
    storage = st.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = st.open_study(storage, plan.name, make_sampler("grid", 0, plan.target))
    ledger = Ledger(plan, RecordStore(tmp_path), study, storage, fidelity="smoke",
                    num_classes=10)
    for i, (d, s) in enumerate(plan.ordered_pairs()[:2]):
        t = study.ask()
        ledger.register(Running(plan.key(d, s), d, s, t._trial_id, t.number, f"tune{i}"))
        ledger.started(f"tune{i}")
    ledger.finish("tune0", None, error="RayTaskError: boom")
    ledger.abandon_all()
    outcomes = [f.outcome for f in ledger.finished]
    assert outcomes == ["error", "interrupted"]
    assert describe_outcome(ledger.finished[1]).startswith("interrupted b s0  the sweep ended")
    assert "(error 1, interrupted 1)" in status(ledger)
    assert ledger.peak_running == 2


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_resumed_sweep_shows_the_best_of_its_earlier_records_too(tmp_path):
    from studies import study as st
    from studies.ledger import Finished, Ledger
    from studies.progress import status
    from studies.sampling import make_sampler

    plan = _plan()
    store = RecordStore(tmp_path)
    for (d, s), val in zip(plan.ordered_pairs()[:2], (0.42, 0.61), strict=True):
        store.write({"design_id": d, "seed": s, "fidelity": plan.fidelity,
                     "dataset": plan.dataset, "status": "ok", "reason": None,
                     "params": 1000, "val_acc": val, "test_acc": val, "wall_s": 3.0, "curve": []})
    # a record of another fidelity in the same run dir is not this sweep's
    store.write({"design_id": "c", "seed": 0, "fidelity": "other", "dataset": plan.dataset,
                 "status": "ok", "reason": None, "params": 1000, "val_acc": 0.99, "wall_s": 1.0,
                 "curve": []})
    storage = st.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = st.open_study(storage, plan.name, make_sampler("grid", 0, plan.target))
    ledger = Ledger(plan, store, study, storage, fidelity="smoke", num_classes=10)
    assert "best 0.610 b s0" in status(ledger)
    ledger.finished.append(Finished("k", "c", 1, "ok", 0.7, None, 1.0))
    assert "best 0.700 c s1" in status(ledger)
