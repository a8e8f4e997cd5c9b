"""docs/reproduction.md's tables are what the committed record exports give."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import reproduction as rp

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = ROOT / "docs" / "reproduction"
DOC = ROOT / "docs" / "reproduction.md"


@pytest.fixture(scope="module")
def doc() -> str:
    if not any(EXPORTS.glob("*.csv")):
        pytest.fail(f"no record exports in {EXPORTS}")
    return DOC.read_text()


def test_verdict_table_regenerates_from_the_committed_records(doc):
    assert rp.table_in_doc(doc) == rp.verdict_table(EXPORTS)


def test_design_table_regenerates_from_the_committed_records(doc):
    table = rp.table_in_doc(doc, rp.DESIGNS_BEGIN, rp.DESIGNS_END)
    assert table == rp.design_table(EXPORTS)


def test_every_export_has_its_report_and_three_seeds():
    from analysis.release import read_records

    for csv in EXPORTS.glob("*.csv"):
        assert (EXPORTS / csv.stem / "report.html").is_file(), csv.stem
        df = read_records(csv)
        ok = df[df.status == "ok"]
        assert ok.groupby("design_id").seed.nunique().min() >= 3, csv.stem
        assert (ok.fidelity == "cpu").all() and (ok.dataset == "cifar10").all()


def test_update_rewrites_both_tables_in_place_and_keeps_the_rest(tmp_path, doc, capsys):
    stale = tmp_path / "reproduction.md"
    text = doc.replace(rp.table_in_doc(doc), "| old |").replace(
        rp.table_in_doc(doc, rp.DESIGNS_BEGIN, rp.DESIGNS_END), "| older |")
    stale.write_text(text)
    assert rp.main(["table", str(EXPORTS), "--update", str(stale)]) == 0
    assert stale.read_text() == doc  # exactly the committed document
    assert rp.main(["table", str(EXPORTS), "--update", str(stale)]) == 0
    assert "already current" in capsys.readouterr().out
    (tmp_path / "bare.md").write_text("no markers here\n")
    assert rp.main(["table", str(EXPORTS), "--update", str(tmp_path / "bare.md")]) == 2
    assert "no <!-- verdicts:begin -->" in capsys.readouterr().err
    assert (tmp_path / "bare.md").read_text() == "no markers here\n"
