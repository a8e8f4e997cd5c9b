"""docs/fidelities.md quotes two committed measurements: the deep nets' first epochs and
trials (benchmarks/results/deep_nets_cpu.json) and the recheck of committed records
(docs/reproduction/recheck.json). Its tables are their renderings, and its prose says what
they hold."""

from __future__ import annotations

import json
import math
from pathlib import Path

from analysis.doc_blocks import block_in_doc
from benchmarks import deep_nets, recheck

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "fidelities.md").read_text()
PROSE = " ".join(DOC.split())
DEEP = json.loads(deep_nets.OUT.read_text())
RECHECK = json.loads((ROOT / "docs" / "reproduction" / "recheck.json").read_text())
LN10 = math.log(10)


def _first(design: str, fidelity: str) -> dict:
    (run,) = [r for r in DEEP["results"].values()
              if r["kind"] == "first_epoch" and r["design"] == design
              and r["fidelity"] == fidelity]
    return run


def test_the_deep_nets_tables_are_the_measurements():
    assert block_in_doc(DOC, "deep-nets") == deep_nets.markdown(DEEP)


def test_res20_ends_its_first_epoch_below_ln10_at_each_v2_cpu_rung():
    """The issue: "The 20-layer nets' training loss falls below ln 10 within the first epoch
    at every CPU rung"."""
    for rung in ("cpu-v2", "cpu2-v2"):
        run = _first(deep_nets.RES20, rung)
        assert run["epoch"]["train_loss"] < LN10, rung
        # "the loss stays within 0.05 of its start (about ln 10) until it falls"
        assert run["max_loss"] <= run["steps"][0]["loss"] + 0.05
        assert abs(run["steps"][0]["loss"] - LN10) < 0.05


def test_every_table4_depth_ends_its_first_epoch_below_ln10_at_each_v2_rung():
    """The issue: "The 20-layer nets' training loss falls below ln 10 within the first epoch
    at every CPU rung": at `cpu-v2` every record of the table4 and table6 exports (depths 8,
    20, 26, three seeds each), at `cpu2-v2` the first epoch of Table 4's IGCV2 at each depth
    (seed 0); and after it res20 validates within a point of res8 (the doc's numbers)."""
    from analysis.table.release import read_records

    exports = ROOT / "docs" / "reproduction"
    losses = [r["curve"][0]["train_loss"] for name in ("table4", "table6")
              for r in read_records(exports / f"{name}-cpu-v2-cifar10.csv").to_dict("records")]
    assert len(losses) == 36 and max(losses) < LN10
    low, high = min(losses), max(losses)
    assert f"all 36 end it at a mean loss of {low:.2f}-{high:.2f}" in PROSE
    depths = (deep_nets.RES8, deep_nets.RES20, deep_nets.RES26)
    cpu2 = [_first(d, "cpu2-v2")["epoch"] for d in depths]
    assert all(e["train_loss"] < LN10 for e in cpu2)
    loss = ", ".join(f"{e['train_loss']:.2f}" for e in cpu2)
    val = ", ".join(f"{e['val_acc']:.3f}" for e in cpu2)
    assert f"mean losses {loss} (res8, res20, res26)" in PROSE
    assert f"validation accuracies {val} after it" in PROSE
    assert abs(cpu2[1]["val_acc"] - cpu2[0]["val_acc"]) < 0.01
    acc = read_records(exports / "table4-cpu-v2-cifar10.csv").groupby("design_id").test_acc
    res20, res8 = acc.mean()[deep_nets.RES20], acc.mean()[deep_nets.RES8]
    assert res20 > res8 and f"res20 IGCV2 {res20:.3f} against res8 {res8:.3f}" in PROSE


def test_the_paper_start_blows_up_and_zero_init_shrinks_the_first_gradient():
    for design in (deep_nets.RES20, deep_nets.RES26):
        paper = _first(design, "cpu-v2+zero_init_residual=False")
        v2 = _first(design, "cpu-v2")
        assert paper["epoch"]["train_loss"] > LN10 > v2["epoch"]["train_loss"]
        # "the IGCV2 nets' loss climbs within a few steps to more than ten times ln 10"
        assert paper["max_loss"] > 10 * LN10 and paper["max_loss_step"] <= 5
        # "the first gradient is an order of magnitude smaller"
        assert paper["first_grad_norm"] > 10 * v2["first_grad_norm"]
        assert v2["max_loss"] <= v2["steps"][0]["loss"] + 0.05
    xception = _first(deep_nets.XCEPTION20, "cpu-v2+zero_init_residual=False")
    assert LN10 < xception["epoch"]["train_loss"] and xception["max_loss"] < 10 * LN10
    assert _first(deep_nets.RES20, "cpu2-v2+zero_init_residual=False")["epoch"][
        "train_loss"] > LN10  # "and so does res20 at cpu2-v2's first epoch"
    # "A linear warm-up delays and shrinks the blow-up but does not stop it: after 20, 50 or
    # 113 steps of it (113: the whole first epoch) the epoch still ends above ln 10"
    paper = _first(deep_nets.RES20, "cpu-v2+zero_init_residual=False")
    for steps in (20, 50, 113):
        warm = _first(deep_nets.RES20, f"cpu-v2+zero_init_residual=False+warmup_steps={steps}")
        assert 2 * LN10 < warm["max_loss"] < paper["max_loss"]
        assert warm["max_loss_step"] > paper["max_loss_step"]
        assert warm["epoch"]["train_loss"] > LN10


def _test_acc(design: str, fidelity: str) -> dict[int, float]:
    return {r["seed"]: r["test_acc"] for r in DEEP["results"].values()
            if r["kind"] == "trial" and r["design"] == design and r["fidelity"] == fidelity}


def test_what_the_trials_say_of_res20_against_res8():
    """"at cpu-v2 res20 IGCV2 scores above res8 on every seed (about 1 point), where from the
    paper's start it scores 19 points below ... res8 ... loses about 9 points with it"."""
    res20, res8 = _test_acc(deep_nets.RES20, "cpu-v2"), _test_acc(deep_nets.RES8, "cpu-v2")
    assert sorted(res20) == sorted(res8) == [0, 1, 2]
    assert all(res20[s] > res8[s] for s in res20)
    gap = sum(res20.values()) / 3 - sum(res8.values()) / 3
    assert 0.005 <= gap < 0.015
    paper20 = _test_acc(deep_nets.RES20, "cpu-v2+zero_init_residual=False")[0]
    paper8 = _test_acc(deep_nets.RES8, "cpu-v2+zero_init_residual=False")[0]
    assert round(paper8 - paper20, 2) == 0.19
    assert round(paper8 - res8[0], 2) == 0.09
    # "with a warm-up over the first epoch, res20 scores 0.397 and res8 0.413 at cpu-v2
    # (seed 0), both above their zero-init scores"
    warm = "cpu-v2+zero_init_residual=False+warmup_steps=113"
    warm20, warm8 = _test_acc(deep_nets.RES20, warm), _test_acc(deep_nets.RES8, warm)
    assert (round(warm20[0], 3), round(warm8[0], 3)) == (0.397, 0.413)
    assert warm20[0] > res20[0] and warm8[0] > res8[0]


def test_the_recheck_table_is_the_json_and_covers_ten_records():
    assert block_in_doc(DOC, "recheck") == recheck.markdown(RECHECK)
    assert RECHECK["rechecked"] >= 10 and RECHECK["at"] == "head"
    sources = {s for r in RECHECK["records"] for s in r["sources"]}
    assert len(sources) >= 7


def test_the_exports_recheck_table_is_the_json_and_the_prose_says_what_it_holds():
    doc = json.loads((ROOT / "docs" / "reproduction" / "recheck-exports.json").read_text())
    assert block_in_doc(DOC, "recheck-exports") == recheck.markdown(doc)
    # "The fig3 and table2 `cpu` records and the 1.0 release differ from every later code on
    # every key they share with it; fig2's, table4's and release 1.1's agree wherever they
    # meet, and so do the two `cpu2` exports"
    older = {"7cb3e666f5/dbf35f53c1", "9c265126c8/dbf35f53c1"}  # fig3/table2 cpu; 1.0
    assert {r["recorded_code"] for r in doc["records"]} >= older
    for r in doc["records"]:
        assert r["equal"] == (r["recorded_code"] not in older), r["design_id"]
    assert any(r["fidelity"] == "cpu2" and r["equal"] for r in doc["records"])


def test_what_the_prose_says_of_the_head_recheck():
    """"Every record drawn from fig2, table4 and release 1.1 re-ran equal at HEAD ...; every
    record drawn from fig3's and table2's `cpu` exports and from release 1.0 differs, by up
    to about 2 points of accuracy"."""
    newer = ("fig2-cpu-cifar10.csv", "table4-cpu-cifar10.csv", "igcbench-1.1.parquet")
    older = ("fig3-cpu-cifar10.csv", "table2-cpu-cifar10.csv", "igcbench-1.0.parquet")
    for r in RECHECK["records"]:
        assert bool(set(r["sources"]) & set(newer)) != bool(set(r["sources"]) & set(older))
        assert r["equal"] == bool(set(r["sources"]) & set(newer)), r["design_id"]
        if r["equal"]:
            assert r["curve_max_abs_diff"] == {"train_loss": 0, "train_acc": 0, "val_acc": 0}
    worst = max(max(abs(r["val_acc_diff"]), abs(r["test_acc_diff"]))
                for r in RECHECK["records"])
    assert 0.015 < worst <= 0.025


def test_the_older_records_do_not_reproduce_at_their_own_commit_either():
    doc = json.loads((ROOT / "docs" / "reproduction" / "recheck-recorded.json").read_text())
    assert block_in_doc(DOC, "recheck-recorded") == recheck.markdown(doc)
    assert doc["at"] == "recorded" and doc["rechecked"] == 2 and doc["equal"] == 0
    assert all(r["recorded_code"] == r["rerun_code"] for r in doc["records"])


def test_the_v2_rung_trains_as_cpu_and_evaluates_the_images_the_ladder_says():
    import evaluators as ev
    from evaluators.cost_model import trial_shape

    old, new = (trial_shape(ev.get_fidelity(f).to_dict(), "cifar10") for f in ("cpu", "cpu-v2"))
    assert (old.train_images, old.epochs) == (new.train_images, new.epochs) == (7200, 2)
    assert (old.eval_images, new.eval_images) == (3_600, 24_400)  # val x 2 epochs + test
    assert "24,400 images evaluated, not 3,600" in PROSE
