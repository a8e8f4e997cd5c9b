"""The committed outputs come out of today's code unchanged: the release, the record exports
of docs/reproduction/ and the replayed searches of docs/benchmark/replay.json.

Together with tests/test_table_report.py and tests/test_reproduction.py (which regenerate
docs/benchmark.md and docs/reproduction.md from these files, byte for byte), this is what
"behaviour unchanged" means for a refactoring of the record, the table and the replay.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.replay.simulate import replay
from analysis.replay.table import ReplayTable
from analysis.table.benchmark import Benchmark
from analysis.table.release import (
    read_records,
    read_release,
    sha256_of,
    write_records,
    write_release,
)

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "releases" / "igcbench-1.0.json"
REPLAY = ROOT / "docs" / "benchmark" / "replay.json"
EXPORTS = sorted((ROOT / "docs" / "reproduction").glob("*.csv"))


def test_releasing_the_release_again_gives_the_same_parquet_byte_for_byte(tmp_path):
    release = read_release(RELEASE)
    manifest = json.loads(write_release(release.records, tmp_path, "1.0").read_text())
    assert manifest["parquet"]["sha256"] == release.manifest["parquet"]["sha256"]
    assert sha256_of(tmp_path / "igcbench-1.0.parquet") == release.manifest["parquet"]["sha256"]
    same = {k: v for k, v in manifest.items() if k != "created"}
    assert same == {k: v for k, v in release.manifest.items() if k != "created"}


@pytest.mark.parametrize("export", EXPORTS, ids=lambda p: p.name)
def test_exporting_the_exports_again_gives_the_same_bytes(tmp_path, export):
    out = write_records(read_records(export), tmp_path / export.name)
    assert out.read_bytes() == export.read_bytes()


def _replays() -> list[dict]:
    """Every (strategy, scheduler, workers) of replay.json at two of its seeds."""
    runs = json.loads(REPLAY.read_text())["runs"]
    return [r for r in runs if r["seed"] in (0, 7)]


@pytest.fixture(scope="module")
def table() -> ReplayTable:
    return ReplayTable.from_benchmark(Benchmark.load(RELEASE))


def test_replays_give_the_committed_numbers_exactly(table):
    doc = json.loads(REPLAY.read_text())
    assert (doc["best_design"], doc["designs"], doc["epochs"]) == (
        table.design_ids[table.best], len(table.design_ids), table.epochs)
    fields = ("time_to_best", "epochs_to_best", "total_time", "total_epochs", "final_regret")
    runs = _replays()
    assert len(runs) == 4 * 2 * 3 * 2  # strategies x schedulers x workers x seeds
    for run in runs:
        r = replay(table, run["strategy"], scheduler=run["scheduler"], workers=run["workers"],
                   seed=run["seed"])
        assert {f: getattr(r, f) for f in fields} == {f: run[f] for f in fields}, run
