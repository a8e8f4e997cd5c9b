"""benchmarks.retime: a re-run sweep's trial seconds against a release's, design by design."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks import retime


def _record(design: str, seed: int, wall_s: float, status: str = "ok") -> dict:
    return {"design_id": design, "fidelity": "cpu", "dataset": "cifar10", "seed": seed,
            "status": status, "wall_s": wall_s, "commit": "b" * 40}


@pytest.fixture
def run_and_release(tmp_path):
    records = tmp_path / "run" / "records"
    records.mkdir(parents=True)
    for i, rec in enumerate([_record("plain8-c64-k1.64", 0, 50.0),
                             _record("plain8-c144-k1.12.12", 0, 100.0),
                             _record("plain8-c144-k1.12.12", 1, 1.0),  # another seed
                             _record("plain8-c72-k1.g1", 0, 9.0, "failed")]):
        (records / f"{i}.json").write_text(json.dumps(rec))
    release = pd.DataFrame([
        {**_record("plain8-c64-k1.64", 0, 60.0), "commit": "a" * 40},
        {**_record("plain8-c144-k1.12.12", 0, 300.0), "commit": "a" * 40},
        {**_record("plain8-c144-k1.12.12", 1, 7.0), "commit": "a" * 40},
        {**_record("plain8-c72-k1.g1", 0, 20.0), "commit": "a" * 40}])
    path = tmp_path / "release.parquet"
    release.to_parquet(path)
    return tmp_path / "run", path


def test_compares_the_finished_designs_of_the_seed_with_the_releases(run_and_release):
    run, release = run_and_release
    result = retime.compare(run, pd.read_parquet(release), 0)
    assert [(r["design"], r["speedup"]) for r in result["rows"]] == [
        ("plain8-c144-k1.12.12", 3.0), ("plain8-c64-k1.64", 1.2)]
    s = result["summary"]
    assert s["designs"] == 2 and s["total_speedup"] == pytest.approx(360 / 150)
    assert s["median_speedup"] == pytest.approx(2.1)
    assert result["designs_in_release"] == 3  # the failed one is the run's, not the release's
    assert result["commits_now"] == ["b" * 40] and result["commits_recorded"] == ["a" * 40]
    assert "**2.40x** in total" in retime.markdown({**result, "created": "t", "command": "c"})


def test_bad_input_exits_2_with_one_line_naming_it(run_and_release, tmp_path, capsys):
    run, release = run_and_release
    for argv, message in (
            ([str(tmp_path / "none"), "--release", str(release)], "run_dir "),
            ([str(run), "--release", str(tmp_path / "x.csv")], "--release "),
            ([str(run), "--release", str(release), "--seed", "5"], f"{run}: no ok record"),
            ([str(run), "--release", str(release), "--out", "/no/such/r.json"], "--out ")):
        with pytest.raises(SystemExit) as e:
            retime.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith(message) and err.count("\n") == 1


def test_the_docs_block_is_what_the_committed_run_prints():
    """docs/performance.md's re-timed sweep is the committed JSON's."""
    from pathlib import Path

    from analysis.doc_blocks import block_in_doc

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "benchmarks" / "results" / "retime_table40k_cpu.json")
                        .read_text())
    doc = (root / "docs" / "performance.md").read_text()
    assert block_in_doc(doc, "retime").strip() == retime.markdown(result).strip()
    assert result["fidelities"] == ["cpu"] and result["seed"] == 0


def test_control_bad_input_exits_2_with_one_line_naming_it(run_and_release, tmp_path, capsys):
    from benchmarks import retime_control

    _, release = run_and_release
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)
    data = ["--data-dir", str(tmp_path / "data")]
    for argv, message in (
            (["plain8-c64-k1.64", "--commit", "HEAD", "--reps", "0"], "--reps 0: "),
            (["plain8-c64-k1.64", "--commit", "no-such-rev", "--release", str(release), *data],
             "--commit 'no-such-rev': "),
            (["plain8-c1-k1.1", "--commit", "HEAD", "--release", str(release), *data],
             "design 'plain8-c1-k1.1': "),
            (["plain8-c64-k1.64", "--commit", "HEAD", "--data-dir", "/no/such"],
             "--data-dir '/no/such': ")):
        with pytest.raises(SystemExit) as e:
            retime_control.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith(message) and err.count("\n") == 1


def test_control_table_reads_machine_and_code_factors():
    from benchmarks import retime_control

    result = {"commit_release": "5da8024", "commit": "f" * 40, "reps": 2, "created": "t",
              "command": "c", "rows": [
                  {"design": "plain8-c24-k1.24", "recorded_s": 10.0, "release_code_s": 16.0,
                   "this_code_s": 12.8, "machine_factor": 1.6, "code_speedup": 1.25}]}
    md = retime_control.markdown(result)
    assert "| `plain8-c24-k1.24` | 10.0 | 16.0 | 12.8 | 1.60 | 1.25 |" in md
