"""docs/benchmark.md's table blocks are what the committed release and replay give."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.table import report as tr

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "releases" / "igcbench-1.0.json"
REPLAY = ROOT / "docs" / "benchmark" / "replay.json"
DOC = ROOT / "docs" / "benchmark.md"


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    for path in (RELEASE, REPLAY):
        if not path.is_file():
            pytest.fail(f"{path} is not committed")
    return tr.blocks(RELEASE, REPLAY)


@pytest.mark.parametrize("block", tr.BLOCKS)
def test_each_block_regenerates_from_the_committed_files(blocks, block):
    assert tr.block_in_doc(DOC.read_text(), block) == blocks[block]


def test_the_best_of_the_largest_budget_is_the_replays_best(blocks):
    from analysis.table.benchmark import Benchmark

    bench = Benchmark.load(RELEASE)
    best = bench.best("val_acc")
    assert f"Best design `{best.design_id}`" in blocks["replay"]
    assert best.design_id in blocks["best"].splitlines()[-1]


def test_update_rewrites_the_blocks_and_keeps_the_rest(tmp_path, blocks, capsys):
    doc = DOC.read_text()
    stale = doc
    for block in tr.BLOCKS:
        stale = stale.replace(tr.block_in_doc(doc, block), "stale", 1)
    path = tmp_path / "benchmark.md"
    path.write_text(stale)
    assert tr.main([str(RELEASE), str(REPLAY), "--update", str(path)]) == 0
    assert path.read_text() == doc
    assert tr.main([str(RELEASE), str(REPLAY), "--update", str(path)]) == 0
    assert "already current" in capsys.readouterr().out
    assert tr.main([str(RELEASE), str(tmp_path / "none.json"), "--update", str(path)]) == 2
    assert "none.json" in capsys.readouterr().err
