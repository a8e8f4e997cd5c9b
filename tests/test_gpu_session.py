"""The prepared GPU run (benchmarks/gpu_session.sh) and its benchmark, dry on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from benchmarks import engine_measure, engine_report, engine_throughput
from studies.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]

FILES = {"device.txt", "session.log", "engine_throughput_gpu.json", "fig3_proxy15.tgz",
         "table2_proxy15.tgz", "table4_proxy15.tgz"}


def _records(tgz: Path) -> tuple[list[dict], str]:
    """The records and the proxy_gpu.py log in a preset's tarball."""
    with tarfile.open(tgz) as tar:
        records = [json.load(tar.extractfile(m)) for m in tar.getmembers()
                   if m.name.startswith("./records/") and m.name.endswith(".json")]
        return records, tar.extractfile("./proxy_gpu.log").read().decode()


@pytest.mark.slow
def test_dry_session_leaves_its_files_and_records_under_out(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "benchmarks/gpu_session.sh", "dry"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # At most 8 files come back from a device run, none deeper than 2 folders.
    assert {p.name for p in tmp_path.iterdir()} == FILES
    bench = json.loads((tmp_path / "engine_throughput_gpu.json").read_text())
    assert bench["device"] == "cpu" and bench["label"].startswith("CPU run")
    assert bench["errors"] == []
    for name in ("fig3", "table2", "table4"):
        records, log = _records(tmp_path / f"{name}_proxy15.tgz")
        assert "6 trials to run (smoke, smoke+epochs=1, synthetic, seeds (0, 1))" in log
        assert sorted((r["design_id"], r["seed"]) for r in records) == sorted(
            (d, s) for d in ("plain8-c16-k1.4.4", "plain8-c16-k1.g1", "plain8-c16-k2.g2")
            for s in (0, 1))
        assert {(r["status"], r["fidelity"]) for r in records} == {("ok", "smoke+epochs=1")}
        assert all(r["fidelity_config"]["engine"]["name"] == "multi_model" for r in records)
    assert "done;" in (tmp_path / "session.log").read_text()


def _measured(**targets) -> dict:
    """A benchmark JSON whose fig3 levers measured so (img/s per design)."""
    designs = get_preset("fig3").design_ids
    rows = [{"designs": [d], "lever": lever, "img_s": rate}
            for lever, rate in (("dense+graph", 30_000), ("grouped", 10_000),
                                ("dense", 20_000), ("grouped+graph", 40_000)) for d in designs]
    rows.append({"designs": [designs[0]], "lever": "bmm", "img_s": 1e9})  # one design only
    return {"config": {"presets": ["fig3", "table2"]}, "engine": rows,
            "targets": {"fig3": targets}}


def test_choose_takes_the_fastest_lever_measured_on_every_design():
    out = _measured()
    assert engine_report.choose(out, "fig3", 600) == ["--conv1x1", "grouped"]
    del out["engine"][-2]  # grouped+graph now lacks a design
    assert engine_report.choose(out, "fig3", 600) == ["--conv1x1", "dense"]
    out["engine"] = [r for r in out["engine"] if r["lever"] in ("grouped", "bmm")]
    assert engine_report.choose(out, "fig3", 600) == ["--conv1x1", "grouped",
                                                      "--no-cuda-graph"]


def test_choose_puts_designs_side_by_side_only_when_faster_and_it_fits():
    faster = {"proxy15_projected_s_side_by_side": 300,
              "proxy15_projected_s_one_design_at_a_time": 500}
    out = _measured(**faster)
    out["engine"] = [r for r in out["engine"] if r["lever"] == "dense+graph"]
    assert engine_report.choose(out, "fig3", 400) == [
        "--conv1x1", "dense", "--designs-per-batch", "6"]
    assert engine_report.choose(out, "fig3", 250) == ["--conv1x1", "dense"]
    out["targets"]["fig3"]["proxy15_projected_s_side_by_side"] = 480  # within 10%: no
    assert engine_report.choose(out, "fig3", 600) == ["--conv1x1", "dense"]


def test_choose_falls_back_to_the_defaults_without_a_readable_json(tmp_path, capsys):
    argv = ["--choose", str(tmp_path / "missing.json"), "--preset", "fig3"]
    assert engine_throughput.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "--conv1x1 dense"
    assert "no choice from" in captured.err


def test_tiny_benchmark_writes_a_labelled_json_with_ratios_and_targets(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--device", "cpu", "--tiny", "--presets", "smoke", "--levers", "dense+graph", "vmap",
            "--seeds", "2", "--threads", "1", "--budget-s", "300", "--out", str(out)]
    assert engine_throughput.main(argv) == 0
    bench = json.loads(out.read_text())
    assert bench["label"].startswith("CPU run") and bench["errors"] == []
    designs = list(get_preset("smoke").design_ids)
    assert [r["design"] for r in bench["baseline"]] == designs
    engine = {r["designs"][0]: r for r in bench["engine"] if len(r["designs"]) == 1}
    for d in designs:  # the ratio is the two measured rates'
        base = next(b["img_s"] for b in bench["baseline"] if b["design"] == d)
        assert engine[d]["over_baseline"] == round(engine[d]["img_s"] / base, 2)
        assert engine[d]["models"] == 2 and len(engine[d]["epoch_s"]) == 2
    assert bench["together"][0]["designs"] == designs and bench["together"][0]["models"] == 6
    assert set(bench["vmap"][0]["img_s"]) == {"vmap", "folded"}
    smoke = bench["targets"]["smoke"]
    assert smoke["measured"] and smoke["proxy15_within_600_s"] is False  # a CPU: far off
    assert bench["profile"]["design"] == smoke["slowest_design"]
    assert bench["profile"]["top"] and bench["profile"]["sorted_by"] == "self CPU ms"


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert engine_throughput.main(["--out", str(out), "--levers", "turbo"]) == 2
    assert capsys.readouterr().err.strip() == (
        "engine_throughput.py: error: --levers turbo: accepted "
        + ", ".join(engine_measure.LEVERS))
    assert engine_throughput.main(["--out", str(out), "--steps", "0"]) == 2
    assert "--steps 0 must be >= 1" in capsys.readouterr().err
    assert not out.exists()
