"""The cost model (evaluators.cost_model), its calibration (evaluators.calibrate), and the
numbers docs/studies.md quotes from benchmarks/results/cost_model_cpu.json."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import search_space as ss
from evaluators.cost_model import (
    COMPOSE_MACS,
    Calibration,
    compute_seconds,
    per_image_work,
    predict_seconds,
    refit,
    trial_shape,
    work_by_path,
)

REPO = Path(__file__).resolve().parents[1]
CPU = {"train_size": 8000, "val_fraction": 0.1, "test_size": 2000, "resolution": 16,
       "epochs": 2, "latency_warmup": 1, "latency_reps": 3, "latency_resolution": None}
CAL = Calibration(machine="m", torch_version="t", device="cpu", threads=1,
                  paths=("fused", "fused"), resolution=16, batch_size=64,
                  train=(4e-9, 2e-10, 1.5e-3), eval=(0.0, 1e-10, 3e-4))


def test_the_model_imports_no_torch():
    code = "import sys, evaluators.cost_model; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "False"


def test_work_of_a_small_igcv2_net_counted_by_hand():
    # plain8-c16-k1.4.4 at 32x32: stem 3->16 3x3; 6 blocks of a depth-wise 3x3 then two
    # group 1x1 convs, which the fused path computes as one 16x16 GEMM (one run).
    px = 32 * 32
    stem_e, stem_m = (3 + 4 * 16) * px, 16 * 3 * 9 * px
    block_e = 16 * px + (16 + 16) * px  # the conv's input, the run's input and output
    block_m = 16 * 9 * px + 16 * 16 * px  # depth-wise 3x3, the run's GEMM
    w = per_image_work("plain8-c16-k1.4.4")
    assert w.train_elements == w.eval_elements == stem_e + 6 * block_e
    assert w.eval_macs == stem_m + 6 * block_m
    compose = COMPOSE_MACS * 6 * 2 * 16 ** 3 / 64  # two 1x1 convs a run, once per step
    assert w.train_macs == w.eval_macs + 6 * 16 * 16 * px + compose  # and each run's Gram
    quarter = per_image_work("plain8-c16-k1.4.4", resolution=16)
    assert quarter.train_macs - compose == pytest.approx((w.train_macs - compose) / 4)


def test_fused_path_costs_igcv2_like_xception_of_its_width_the_reference_path_does_not():
    igcv2, xception = "plain8-c144-k1.12.12", "plain8-c144-k1.144"
    a, b = per_image_work(igcv2), per_image_work(xception)
    assert (a.eval_elements, a.eval_macs) == (b.eval_elements, b.eval_macs)  # one GEMM a run
    # Training composes each run's C x C matrix once per step: one product per 1x1 conv.
    assert a.train_macs - b.train_macs == pytest.approx(
        COMPOSE_MACS * 6 * 144 ** 3 / 64)
    ref = ("reference", "reference")
    a, b = per_image_work(igcv2, paths=ref), per_image_work(xception, paths=ref)
    assert a.train_elements > b.train_elements  # a BN (and shuffle) pass per group conv
    for design in (igcv2, xception):  # the reference path does the multiply-adds counted
        info = ss.describe(ss.parse(design), num_classes=10)
        fc = info["width"] * 10
        assert per_image_work(design, paths=ref).eval_macs + fc == info["flops"]
    with pytest.raises(ValueError, match="path 'gpu'"):
        per_image_work(igcv2, paths=("gpu", "fused"))


def test_auto_paths_count_each_block_on_the_path_fastblock_takes():
    from search_space.work import choose_path

    fused, ref, auto = ("fused",) * 2, ("reference",) * 2, ("auto",) * 2
    # 8x8 images, batch 64: the narrow net takes the fused path in training, the wide one
    # the grouped path in training and the reference path in eval (choose_path; FastBlock
    # follows the same rule). The grouped path counts the reference path's work.
    for design, want in (("plain8-c200-k1.g2.g2.g2.g2.g2", "fused"),
                         ("plain8-c1504-k1.16.16.16", "grouped")):
        block = ss.net_plan(ss.parse(design), 10).blocks[0]
        assert choose_path(block, training=True, batch=64, scale=1 / 16) == want
        w_auto = per_image_work(design, resolution=8, paths=auto)
        w_want = per_image_work(design, resolution=8, paths=fused if want == "fused" else ref)
        assert w_auto.train_macs == pytest.approx(w_want.train_macs)
        assert w_auto.train_elements == pytest.approx(w_want.train_elements)
    auto_cal = dataclasses.replace(CAL, paths=auto, ref_train=(5e-9, 3e-10, 0.0),
                                   ref_eval=(1e-9, 1e-11, 0.0), grp_train=(6e-9, 7e-11, 0.0))
    # The wide net's blocks are priced with the grouped coefficients in training and the
    # reference ones in eval, the stem with the fused ones (and the per-image term once).
    wide, cfg = "plain8-c1504-k1.16.16.16", {**CPU, "resolution": 8, "latency_reps": 0}
    split = work_by_path(wide, resolution=8, paths=auto)
    shape = trial_shape(cfg, "cifar10")
    r, f, g = split["reference"], split["fused"], split["grouped"]
    assert r.train_macs == 0 and g.eval_macs == 0 and g.train_macs > 0
    train = (6e-9 * g.train_elements + 7e-11 * g.train_macs + 4e-9 * f.train_elements
             + 2e-10 * f.train_macs + 1.5e-3)
    evals = 1e-9 * r.eval_elements + 1e-11 * r.eval_macs + 1e-10 * f.eval_macs + 3e-4
    assert compute_seconds(wide, cfg, "cifar10", auto_cal) == pytest.approx(
        shape.train_images * shape.epochs * train + shape.eval_images * evals)
    with pytest.raises(ValueError, match="ref_train"):
        compute_seconds(wide, cfg, "cifar10", dataclasses.replace(auto_cal, ref_train=None))
    # A calibration made before the grouped path prices it as the reference path.
    old = dataclasses.replace(auto_cal, grp_train=None)
    train_old = train + (5e-9 - 6e-9) * g.train_elements + (3e-10 - 7e-11) * g.train_macs
    assert compute_seconds(wide, cfg, "cifar10", old) == pytest.approx(
        shape.train_images * shape.epochs * train_old + shape.eval_images * evals)


def test_trial_shape_is_what_make_splits_draws():
    import evaluators as ev
    from evaluators.splits import make_splits

    data = ev.load_dataset("synthetic")  # through the registry's loader
    spec = ev.DATASETS["synthetic"]
    assert (spec.train_size, spec.test_size, spec.side, spec.classes) == (
        len(data.train_labels), len(data.test_labels), data.resolution, data.num_classes)
    defaults = inspect.signature(ev.make_synthetic).parameters
    assert (spec.train_size, spec.test_size) == (defaults["num_train"].default,
                                                 defaults["num_test"].default)
    smoke = ev.get_fidelity("smoke")
    splits = make_splits(data, smoke, torch.device("cpu"))
    shape = trial_shape(smoke.to_dict(), "synthetic")
    assert shape.train_images == len(splits.train_labels)
    assert shape.eval_images == len(splits.val_labels) * smoke.epochs + len(splits.test_labels)
    assert (shape.resolution, shape.latency_resolution) == (8, 8)
    assert shape.latency_images == (1 + 2) * (1 + 64)
    cpu = trial_shape(ev.get_fidelity("cpu").to_dict(), "cifar10")
    assert (cpu.train_images, cpu.eval_images, cpu.latency_resolution) == (7200, 3600, 32)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        trial_shape(CPU, "mnist")


def test_prediction_grows_with_the_fidelitys_images():
    base = compute_seconds("plain8-c64-k1.64", CPU, "cifar10", CAL)
    more = compute_seconds("plain8-c64-k1.64", {**CPU, "epochs": 4}, "cifar10", CAL)
    shape = trial_shape(CPU, "cifar10")
    w = per_image_work("plain8-c64-k1.64", resolution=16)
    train = shape.train_images * shape.epochs * (4e-9 * w.train_elements
                                                 + 2e-10 * w.train_macs + 1.5e-3)
    val = (shape.eval_images - 2000) / shape.epochs * (1e-10 * w.eval_macs + 3e-4)
    assert more - base == pytest.approx(train + 2 * val, rel=1e-9)  # 2 more epochs
    assert predict_seconds("plain8-c64-k1.64", CPU, "cifar10", CAL) == \
        pytest.approx(CAL.overhead_s + base)


def _record(design: str, wall_s: float, status: str = "ok") -> dict:
    return {"design_id": design, "fidelity_config": CPU, "dataset": "cifar10",
            "status": status, "wall_s": wall_s, "num_classes": 10}


def test_refit_takes_the_median_ratio_of_ok_records():
    designs = ["plain8-c64-k1.64", "plain8-c144-k1.12.12", "plain8-c294-k1.3"]
    factors = [1.5, 2.0, 9.0]  # one outlier: the median ignores it
    records = [_record(d, CAL.overhead_s + f * compute_seconds(d, CPU, "cifar10", CAL))
               for d, f in zip(designs, factors, strict=True)]
    records.append(_record(designs[0], 1e6, status="failed"))
    fitted = refit(CAL, records)
    assert fitted.scale == pytest.approx(2.0) and fitted.scale_records == 3
    assert predict_seconds(designs[1], CPU, "cifar10", fitted) == pytest.approx(
        records[1]["wall_s"])
    assert refit(CAL, []) is CAL
    assert Calibration.from_dict(json.loads(json.dumps(fitted.to_dict()))) == fitted


def test_calibration_measures_fits_and_caches(tmp_path, monkeypatch):
    import evaluators as ev
    from evaluators import calibrate

    monkeypatch.setenv("IGCBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(calibrate, "PROBES", ("plain8-c8-k1.8", "plain8-c16-k1.16",
                                              "plain8-c32-k1.32", "plain8-c16-k1.4.4"))
    monkeypatch.setattr(calibrate, "STEPS", 1)
    smoke = ev.get_fidelity("smoke")
    cal = calibrate.get_calibration(smoke, device="cpu")
    assert cal.paths == calibrate.block_paths(torch.device("cpu")) == ("auto", "auto")
    # FastBlock picks a path per block on the CPU: every path is fitted, and predicted (the
    # grouped path in training only).
    assert cal.ref_train is not None and cal.ref_eval is not None and any(cal.ref_train)
    assert cal.grp_train is not None and any(cal.grp_train)
    assert compute_seconds("plain8-c1504-k1.16.16.16", smoke.to_dict(), "synthetic",
                           cal) > 0
    assert (cal.resolution, cal.batch_size, cal.threads) == (8, 64, 1)
    assert all(c >= 0 for c in cal.train + cal.eval) and any(cal.train) and any(cal.eval)
    # The probes' own times are predicted back (the fit has as many unknowns as probes).
    assert cal.machine == calibrate.machine_id() and cal.scale == 1.0
    assert calibrate.get_calibration(smoke, device="cpu") == cal  # from the cache
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert list(stored) == [calibrate.cache_key(cal)]
    # Cached under the block code's version: other code (or none recorded) measures again.
    from search_space.work import speed_code

    assert cal.code == speed_code() and cal.code in calibrate.cache_key(cal)
    monkeypatch.setattr(calibrate, "speed_code", lambda: "0" * 12)
    assert calibrate.cached_calibration(smoke, device="cpu") is None
    monkeypatch.setattr(calibrate, "speed_code", speed_code)
    refitted = dataclasses.replace(cal, scale=1.7, scale_records=4)
    calibrate.save_calibration(refitted)
    assert calibrate.get_calibration(smoke, device="cpu") == refitted
    other = calibrate.get_calibration(dataclasses.replace(smoke, batch_size=32), device="cpu")
    assert other.batch_size == 32 and len(json.loads(
        (tmp_path / "calibration.json").read_text())) == 2


# --- the measured accuracy quoted in docs/studies.md ---------------------------------------


def test_docs_quote_the_benchmark_json():
    from analysis.doc_blocks import block_in_doc
    from benchmarks import cost_model as bench

    result = json.loads((REPO / "benchmarks" / "results" / "cost_model_cpu.json").read_text())
    doc = (REPO / "docs" / "studies.md").read_text()
    assert block_in_doc(doc, "cost-model") == bench.doc_block(result).strip()


def test_the_benchmark_reads_training_records_and_leaves_zero_cost_ones_out(tmp_path):
    from benchmarks import cost_model as bench
    trial = {"design_id": "plain8-c32-k1.2", "status": "ok", "device": "cpu", "wall_s": 12.0,
             "fidelity_config": CPU}
    zc = {**trial, "wall_s": 3.0, "fidelity_config": {"name": "zc", "batch_size": 64},
          "zero_cost": {"scores": {"synflow": 1.0}, "seconds": {}, "errors": {}}}
    for run, rec in (("sweep", trial), ("zc-run", zc)):
        (tmp_path / run / "records").mkdir(parents=True)
        (tmp_path / run / "records" / "a.json").write_text(json.dumps(rec))
    mine = [r for r in bench.load_records([str(tmp_path)]) if r["source"].startswith(str(tmp_path))]
    assert [(r["sweep"], r["wall_s"]) for r in mine] == [("sweep", 12.0)]
    # a committed sweep's trial found again in its run directory is read once, as committed
    import pandas as pd

    row = pd.read_csv(REPO / "docs" / "reproduction" / "fig2-cpu-cifar10.csv").iloc[0]
    again = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
    (tmp_path / "fig2-copy" / "records").mkdir(parents=True)
    (tmp_path / "fig2-copy" / "records" / "b.json").write_text(json.dumps(
        {**again, "fidelity_config": json.loads(again["fidelity_config"])}))
    records = bench.load_records([str(tmp_path)])
    assert not any(r["sweep"] == "fig2-copy" for r in records)
    assert sum(r["sweep"] == "fig2 (committed)" and r["design_id"] == row["design_id"]
               and r["seed"] == row["seed"] for r in records) == 1


def test_docs_prose_of_the_cost_model_says_what_the_benchmark_json_says():
    import statistics

    result = json.loads((REPO / "benchmarks" / "results" / "cost_model_cpu.json").read_text())
    prose = " ".join((REPO / "docs" / "studies.md").read_text()
                     .split("<!-- cost-model:end -->", 1)[1].split("\n## ", 1)[0].split())
    fast = result["by_impl"]["fast"]
    pct = {k: round(100 * fast[k]["median"]) for k in ("design_out", "flops_design_out")}
    assert f"({pct['design_out']}% against {pct['flops_design_out']}% over all fast" in prose
    assert 2.5 <= pct["flops_design_out"] / pct["design_out"] <= 3.5  # "about three times"
    assert f"(load {result['load_average_1m'][0]:.1f})" in prose
    ratio = {}
    for sweep in {r["sweep"] for r in result["records"]}:
        ratio[sweep] = statistics.median(r["wall_s"] / r["raw"] for r in result["records"]
                                         if r["sweep"] == sweep)
    t40k = result["by_sweep"]["table40k-cpu-cifar10"]["raw"]
    assert f"within {round(100 * t40k['median'])}% (median; recorded / predicted " \
        f"{ratio['table40k-cpu-cifar10']:.2f})" in prose and t40k["n"] == 204
    loaded = {k: v for k, v in ratio.items() if k != "table40k-cpu-cifar10"
              and result["by_sweep"][k]["raw"]["n"] >= 10 and "fast" in
              {r["impl"] for r in result["records"] if r["sweep"] == k}}
    assert f"{min(loaded.values()):.1f}-{max(loaded.values()):.1f} times slower" in prose
    for name, sweep in (("the committed fig2", "fig2 (committed)"),
                        ("table4", "table4-cpu-cifar10"), ("the budget hour", "budget-650k-1h")):
        assert f"{name} {ratio[sweep]:.1f}x" in prose
    wide = [r for r in result["wide"] if r["impl"] == "fast"]
    assert max(abs(r["predicted_s"] - r["measured_s"]) / r["measured_s"] for r in wide) <= 0.25
    assert "predicted within 25%" in prose
    ref = {r["design_id"]: r["measured_s"] for r in result["wide"] if r["impl"] == "reference"}
    assert all(r["measured_s"] <= 1.5 * ref[r["design_id"]] for r in wide)  # "as quick as"


def test_every_probe_is_a_valid_design():
    from evaluators.calibrate import PROBES

    for probe in PROBES:
        assert ss.parse(probe).id == probe
