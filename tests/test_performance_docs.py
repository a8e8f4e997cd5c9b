"""docs/performance.md and docs/fidelities.md quote the engine's measurements and rung as
the code and the committed JSON have them."""

from __future__ import annotations

import json
from pathlib import Path

import evaluators as ev
from analysis.doc_blocks import block_in_doc
from benchmarks import engine_report
from studies.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "benchmarks" / "results"
PERFORMANCE = (ROOT / "docs" / "performance.md").read_text()
FIDELITIES = (ROOT / "docs" / "fidelities.md").read_text()


def test_engine_blocks_are_the_committed_json():
    cpu = json.loads((RESULTS / "engine_throughput_cpu.json").read_text())
    assert cpu["device"] == "cpu" and cpu["label"].startswith("CPU run")
    assert block_in_doc(PERFORMANCE, "engine-cpu") == engine_report.markdown(cpu)
    assert "(every ratio below is under 1x)" in " ".join(PERFORMANCE.split())
    assert all(r["over_baseline"] < 1 for r in cpu["engine"] if "over_baseline" in r)
    gpu = RESULTS / "engine_throughput_gpu.json"
    want = (engine_report.markdown(json.loads(gpu.read_text())) if gpu.exists()
            else "Not measured yet.")
    assert block_in_doc(PERFORMANCE, "engine-gpu") == want


def test_the_one_model_gpu_rates_quoted_are_the_h100_json():
    rows = json.loads((RESULTS / "step_time_h100.json").read_text())["rows"]
    rate = {r["design"]: r["img_per_s"] for r in rows if r["impl"] == "fast"
            and r["deterministic"]}
    quoted = (f"{rate['plain8-c72-k1.g1']:,} images/s\nfor Xception C=72, "
              f"{rate['plain8-c144-k1.12.12']:,} for IGCV2 C=144, "
              f"{rate['plain8-c138-k1.3.3.3.3.3.3']:,} for IGCV2 L=7")
    assert quoted in PERFORMANCE


def test_proxy15_as_the_fidelities_doc_states_it():
    f = ev.get_fidelity("proxy15")
    fig3 = get_preset("fig3")
    images = len(fig3.design_ids) * len(fig3.seeds) * f.epochs * 45_000
    assert f"18 x 15 x 45,000 = {images / 1e6:.1f} million" in " ".join(FIDELITIES.split())
    assert (f.epochs, f.batch_size, f.lr, f.deterministic) == (15, 64, 0.1, False)
    assert "| `proxy15` | all 50,000 (45,000 + 5,000 val), all 10,000 test | native | 15 |" \
        in FIDELITIES


def test_path_choice_block_is_the_committed_json():
    from benchmarks import path_choice

    result = json.loads((RESULTS / "path_choice_cpu.json").read_text())
    assert block_in_doc(PERFORMANCE, "path-choice") == path_choice.doc_block(result)
    s = result["summary"]
    assert s["median_regret"] == 1.0 and s["worst_regret"] < 2
    assert s["max_fused_over_reference"] > 100 and s["max_reference_over_fused"] > 5
    # The rule never picked the fused path where it was measured (or predicted) 2x slower.
    assert all(r["fused_over_reference"] < 2 for r in result["rows"] if r["chosen"] == "fused")


def test_roofline_block_is_the_committed_json():
    from benchmarks import roofline

    result = json.loads((RESULTS / "roofline_cpu.json").read_text())
    assert not result["quick"] and result["threads"] == 1 and result["batch"] == 64
    assert block_in_doc(PERFORMANCE, "roofline") == roofline.markdown(result)
    # the targets in the block are the run's own medians
    assert result["targets"] == roofline.targets(result)
    designs = {(r["design"], r["side"]) for r in result["steps"]}
    assert {(d, 16) for d in roofline.DESIGNS} | {(roofline.TARGET, 32)} <= designs


def test_kernels_block_is_the_committed_json():
    """The C++ kernels' block: the committed run of benchmarks.kernels, at the rungs'
    settings (one thread, batch 64) and both sizes of issue 24's design."""
    from benchmarks import kernels

    result = json.loads((RESULTS / "kernels_cpu.json").read_text())
    assert block_in_doc(PERFORMANCE, "kernels") == kernels.markdown(result)
    assert result["threads"] == 1 and result["batch"] == 64 and not result["quick"]
    assert {(r["design"], r["side"]) for r in result["steps"]} == {
        (kernels.DESIGN, 16), (kernels.DESIGN, 32)}
    assert all(set(r["step_s"]) == set(kernels.IMPLS) for r in result["steps"])
    for r in result["steps"]:  # the paths the run's nets took, as the code takes them now
        assert r["paths"] == {i: kernels.paths(r["design"], i, r["side"]) for i in kernels.IMPLS}
