"""benchmarks.roofline: the useful work it divides by, the kinds it sorts ATen ops into, the
old rule it compares against, its CLI; and benchmarks.path_costs's fit is the rule's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import search_space as ss
from benchmarks import roofline
from benchmarks.roofline_ops import kind_of, op_work
from search_space.work import CPU_COSTS, choose_path

ROOT = Path(__file__).resolve().parents[1]


def test_op_work_counts_the_reference_function_per_kind():
    # plain8 IGCV2 C=144, K=(1,12,12): per block a 3x3 channel-wise conv and two group 1x1s
    # with 12 branches, then shuffles after both 1x1s, a ReLU at the end; 16x16, batch 64.
    plan = ss.net_plan(ss.parse("plain8-c144-k1.12.12"), 10)
    w = op_work(plan, side=16, batch=64)
    px = 16 * 16 * 64
    assert w["3x3"]["flops"] == pytest.approx(6 * 6 * 144 * 9 * px)
    assert w["group 1x1"]["flops"] == pytest.approx(6 * 6 * 2 * 144 * 12 * px)
    assert w["group 1x1"]["bytes"] == pytest.approx(4 * 6 * 2 * 5 * 144 * px)
    assert w["BatchNorm"]["bytes"] == pytest.approx(4 * 6 * 3 * 8 * 144 * px)
    assert w["permutation"]["bytes"] == pytest.approx(4 * 6 * 2 * 4 * 144 * px)
    assert w["ReLU"]["bytes"] == pytest.approx(4 * 6 * 4 * 144 * px)
    assert w["optimizer"]["bytes"] == 4 * 5 * plan.params


def test_kind_of_sorts_convolutions_by_their_weight():
    x, dw, g1, stem = [64, 144, 16, 16], [144, 1, 3, 3], [144, 12, 1, 1], [144, 3, 3, 3]
    assert kind_of("aten::mkldnn_convolution", [x, dw, []]) == "3x3"
    assert kind_of("aten::convolution_backward", [x, x, g1]) == "group 1x1"
    assert kind_of("aten::mkldnn_convolution", [[64, 3, 16, 16], stem, []]) == "other"
    assert kind_of("aten::bmm", [[12, 12, 12], [12, 12, 16384]]) == "group 1x1"
    assert kind_of("aten::native_batch_norm_backward", []) == "BatchNorm"
    assert kind_of("aten::threshold_backward", []) == "ReLU"
    assert kind_of("aten::copy_", []) == "permutation"
    assert kind_of("aten::cross_entropy_loss", []) == "other"
    assert kind_of("BatchNormShuffleBackward", []) == "BatchNorm"  # search_space.kernels
    assert kind_of("DepthwiseConv3x3", []) == "3x3"
    assert kind_of("_BatchNormShuffle", []) == "other"  # the pure path's: its ATen ops count
    # bn_fold's folded steps, whose own time is the C++ group GEMMs
    assert kind_of("ConvBN", []) == kind_of("ConvBNBackward", []) == "group 1x1"


def test_the_old_rule_is_the_rule_before_the_grouped_path():
    """fast_old reproduces FastBlock's choice with the costs of commit 6ea8947."""
    narrow = ss.net_plan(ss.parse("plain8-c200-k1.g2.g2.g2.g2.g2"), 10).blocks[0]
    wide = ss.net_plan(ss.parse("plain8-c1504-k1.16.16.16"), 10).blocks[0]
    assert roofline.old_rule(narrow, 8) == "fused"
    assert roofline.old_rule(wide, 8) == "reference"
    net = roofline.build("plain8-c144-k1.12.12", "fast_old", 16)
    assert {b.path for b in net.blocks} == {"fused"}


@pytest.mark.parametrize("argv,message", [
    (["--reps", "0"], "--reps 0: accepted: an integer >= 1"),
    (["--out", "/no/such/dir/r.json"], "--out '/no/such/dir/r.json': directory"),
])
def test_bad_cli_input_exits_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        roofline.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_grouped_costs_are_the_committed_fit():
    """The grouped path's training costs are the fit's at the rungs' settings (to the three
    digits the code quotes); the fused and reference paths keep their validated costs."""
    fit = json.loads((ROOT / "benchmarks" / "results" / "path_costs_cpu.json").read_text())
    assert fit["side"] == 16 and fit["batch"] == 64 and fit["threads"] == 1
    c = CPU_COSTS["train"]
    assert c["grouped"] == pytest.approx(tuple(fit["costs"]["grouped"]), rel=5e-3)
    assert c["fused"] == roofline.OLD_COSTS["train"]["fused"]
    assert c["reference"] == roofline.OLD_COSTS["train"]["reference"]


@pytest.mark.slow
def test_quick_run_writes_the_targets_and_the_markdown(tmp_path):
    out = tmp_path / "r.json"
    assert roofline.main(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["quick"] and {m["threads"] for m in result["limits"]} == {1, 2}
    (step,) = result["steps"]
    assert set(step["img_per_s"]) == set(roofline.IMPLS)
    assert "plain8-c16-k1.4.4" in roofline.markdown(result)


@pytest.mark.parametrize("argv,message", [
    (["--reps", "0"], "--reps 0: accepted: an integer >= 1"),
    (["--out", "/no/such/dir/k.json"], "--out '/no/such/dir/k.json': directory"),
])
def test_kernels_benchmark_bad_cli_input_exits_2_with_one_line(argv, message, capsys):
    from benchmarks import kernels

    with pytest.raises(SystemExit) as e:
        kernels.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


@pytest.mark.parametrize("argv,message", [
    (["--reps", "0"], "--reps 0: accepted: an integer >= 1"),
    (["--out", "/no/such/dir/p.json"], "--out '/no/such/dir/p.json': directory"),
])
def test_path_nets_bad_cli_input_exits_2_with_one_line(argv, message, capsys):
    from benchmarks import path_nets

    with pytest.raises(SystemExit) as e:
        path_nets.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_path_nets_quick_run_times_every_path_and_the_rules_pick(tmp_path):
    from benchmarks import path_nets

    out = tmp_path / "p.json"
    assert path_nets.main(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert set(row["img_per_s"]) == set(path_nets.PATHS)
    forced = {p: v for p, v in row["img_per_s"].items() if p != "auto"}
    assert row["fastest"] == max(forced, key=forced.get)
    pick = forced[row["auto_picks"][0]]
    assert path_nets.regret(row) == pytest.approx(max(forced.values()) / pick)
    # the rule's pick is what FastBlock's auto takes for this design at 16x16
    block = ss.net_plan(ss.parse("plain8-c16-k1.4.4"), 10).blocks[0]
    assert row["auto_picks"] == [choose_path(block, training=True, batch=64, scale=0.25)]
    assert "`plain8-c16-k1.4.4`" in path_nets.markdown(result)


def test_the_path_nets_block_is_what_the_committed_run_prints():
    """docs/performance.md's whole-net judgement of the rule is the committed JSON's, and
    that run's picks are the rule's today (a rule changed since would need a new run)."""
    from analysis.doc_blocks import block_in_doc
    from benchmarks import path_nets

    result = json.loads((ROOT / "benchmarks" / "results" / "path_nets_cpu.json").read_text())
    doc = (ROOT / "docs" / "performance.md").read_text()
    assert block_in_doc(doc, "path-nets").strip() == path_nets.markdown(result).strip()
    for row in result["rows"]:
        net = path_nets.build(row["design"], "auto")
        assert path_nets.picks(net) == row["auto_picks"], row["design"]


@pytest.mark.parametrize("block,module,result", [
    ("group-gemm", "group_gemm", "group_gemm_cpu.json"),
    ("retime-control", "retime_control", "retime_control_cpu.json")])
def test_the_doc_block_is_what_the_committed_run_prints(block, module, result):
    """docs/performance.md's group GEMM table and the re-time's control are their committed
    JSONs'."""
    import importlib

    from analysis.doc_blocks import block_in_doc

    run = json.loads((ROOT / "benchmarks" / "results" / result).read_text())
    doc = (ROOT / "docs" / "performance.md").read_text()
    md = importlib.import_module(f"benchmarks.{module}").markdown(run)
    assert block_in_doc(doc, block).strip() == md.strip()


def test_group_gemm_quick_run_times_both_forms(tmp_path):
    from benchmarks import group_gemm

    out = tmp_path / "g.json"
    assert group_gemm.main(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (prods,) = result["products"]
    assert prods["side"] == 16 and len(prods["products"]) == 4
    assert all(set(r["ms"]) == {"bmm", "cpp"} for r in prods["products"].values())
    (step,) = result["steps"]
    assert step["bmm_over_cpp"] == pytest.approx(step["step_ms"]["bmm"] / step["step_ms"]["cpp"])
    assert "`plain8-c48-k1.6.6`" in group_gemm.markdown(result)


def test_the_fast_path_before_keeps_the_plain_stem():
    """"fast before" is the fast path as it was: FastBlock's old rule and nn.Sequential's
    stem, not FastStem (whose C++ BatchNorm came with the channel-major hand-off)."""
    from torch import nn

    from search_space.fast import FastStem

    assert type(roofline.build("plain8-c24-k1.6.4", "fast_old", 16).stem) is nn.Sequential
    assert isinstance(roofline.build("plain8-c24-k1.6.4", "fast", 16).stem, FastStem)
