"""`python -m analysis report`: one self-contained HTML file, figures, every verdict row."""

from __future__ import annotations

import base64
import json
import re
from html import escape, unescape
from pathlib import Path

import pytest

import analysis
from analysis.__main__ import main

import fake_records as fake

N_BOOT = 300  # the report's numbers are checked against check_claims at the same settings


def _fake_run(root: Path) -> Path:
    return fake.write_fake_run(root / "fake-run", seeds=2)


def _smoke_run(root: Path) -> Path:
    """The smoke preset's three designs, really trained (smoke fidelity, synthetic data;
    seconds), into a run directory as a sweep writes it."""
    import evaluators as ev
    from studies.presets import get_preset
    from studies.store import RecordStore

    store = RecordStore(root / "smoke-run")
    for design_id in get_preset("smoke").design_ids:
        store.write(ev.evaluate(design_id, "smoke", "synthetic", seed=0).to_dict())
    return store.run_dir


RUNS = {"fake": _fake_run, "smoke": _smoke_run}
KINDS = {"fake": ("fig3", "fig4", "pareto", "curves", "accuracy", "verdicts"),
         "smoke": ("pareto", "curves", "accuracy")}


@pytest.fixture(scope="module", params=sorted(RUNS))
def rendered(request, tmp_path_factory):
    run = RUNS[request.param](tmp_path_factory.mktemp(request.param))
    assert main(["report", str(run), "--n-boot", str(N_BOOT)]) == 0
    return run, (run / "report.html").read_text(encoding="utf-8"), request.param


def test_every_referenced_figure_exists(rendered):
    run, page, kind = rendered
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) >= 3  # a smoke sweep too: Pareto fronts, learning curves, accuracy
    for src in images:
        assert src.startswith("data:image/png;base64,"), "figures must be embedded"
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    links = re.findall(r"href='([^']+)'", page)
    assert {Path(x).suffix for x in links} == {".png", ".svg"}
    for href in links:
        assert (run / href).is_file(), href
    names = {Path(x).stem for x in links}
    for figure in KINDS[kind]:
        assert any(n.startswith(figure) for n in names), figure
    assert len(images) == len(names)  # each figure embedded once, with both files beside it


def test_every_verdict_row_is_present(rendered):
    run, page, _ = rendered
    verdicts = analysis.check_claims(analysis.load_results(run), n_boot=N_BOOT)
    rows = re.findall(r"<tr class='verdict [^']*' data-claim='([^']*)'>(.*?)</tr>", page)
    cells = [(claim, [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)])
             for claim, r in rows]
    got = [(claim, c[1], c[2], c[3], c[8]) for claim, c in cells]
    tested = [v for v in verdicts if v.tested]
    assert got == [(v.claim, f"{v.fidelity} / {v.dataset}", v.verdict, v.raw_verdict, v.unit)
                   for v in tested]
    for v in verdicts:  # the untested claims are listed with their reason
        if not v.tested:
            assert escape(v.detail) in page


def test_pareto_tables_configuration_and_failures_are_present(rendered):
    run, page, _ = rendered
    df = analysis.load_results(run)
    for front in analysis.pareto_fronts(df):
        assert f"{front.metric} vs {front.cost} [{front.fidelity}, {front.dataset}]" in page
        for design in front.ids:
            assert f"<td>{design}</td>" in page
    config = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    for key in config:
        assert escape(json.dumps(key)) in page  # run.json, shown verbatim
    failed = df[df["status"] != "ok"]
    assert len(failed) == page.count("<tr class='failed'>")
    for reason in failed["reason"]:
        assert escape(str(reason)) in page


def test_out_elsewhere_puts_figures_beside_it(tmp_path):
    run = fake.write_fake_run(tmp_path / "run", fake.fig3_records(lambda L: 0.5, seeds=2))
    out = tmp_path / "reports" / "r.html"
    assert main(["report", str(run), "--out", str(out), "--n-boot", "50"]) == 0
    assert out.is_file() and not (run / "report.html").exists()
    files = sorted(p.name for p in (out.parent / "figures").iterdir())
    stems = sorted({Path(f).stem for f in files})
    assert "fig3_cpu_cifar100" in stems and "pareto_cpu_cifar100" in stems
    assert files == sorted(f"{s}{x}" for s in stems for x in (".png", ".svg"))
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report-")]


def test_missing_run_dir_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    assert main(["report", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and str(missing) in err and out == ""
    assert not missing.exists()


def test_run_without_records_is_exit_2_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "records").mkdir()
    (tmp_path / "run.json").write_text("{}")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "records") in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
