"""analysis.proxies.report: the correlation report on planted scores, and docs/proxies.md
regenerated from the committed files its source blocks name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.doc_blocks import block_in_doc
from analysis.proxies import report as pr

import fake_records as fake

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "proxies.md"


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, Path]:
    """The fake run (cpu and proxy fidelities) and a scores CSV in which ``theory`` is the
    accuracy plus small noise, ``params`` and ``synflow`` independent noise, ``flops`` the
    accuracy reversed."""
    tmp = tmp_path_factory.mktemp("planted")
    records = fake.fake_records()
    run = fake.write_fake_run(tmp / "run", records)
    rng = np.random.default_rng(0)
    cpu = pd.DataFrame([r for r in records if r["fidelity"] == "cpu"])
    acc = cpu.groupby("design_id")["test_acc"].mean()
    noise = {d: rng.normal() for d in acc.index}
    rows = []
    for d, a in acc.items():
        for s in range(3):
            rows.append({"design_id": d, "seed": s, "fidelity": "zc", "dataset": "cifar100",
                         "zc_theory": a + rng.normal(0, 1e-4), "zc_params": noise[d],
                         "zc_synflow": np.exp(noise[d] + rng.normal(0, 0.1)), "zc_flops": -a,
                         "zc_density": 1.0, "config": "{}"})
    scores = tmp / "zc.csv"
    pd.DataFrame(rows).to_csv(scores, index=False)
    return run, scores


def test_planted_theory_ranks_best_and_the_answer_says_so(planted):
    run, scores = planted
    r = pr.build(run, scores, fidelity="cpu", n_boot=300)
    ranks = r.ranks.set_index("proxy")
    assert r.ranks["proxy"].iloc[0] == "theory" and ranks.loc["theory", "kendall"] > 0.9
    assert ranks.loc["flops", "kendall"] < -0.9 and np.isnan(ranks.loc["density", "kendall"])
    assert list(r.matrix.index) == ["test_acc", "synflow", "params", "flops", "theory"]
    assert r.matrix.loc["test_acc", "flops"] == pytest.approx(-1.0)
    ans = r.answer.set_index("other")
    assert list(ans.index) == ["params", "flops", "synflow"]
    assert (ans["verdict"] == "better").all() and (ans["lo"] > 0).all()
    text = pr.blocks(r, "x")
    assert set(text) == {"x-source", "x-ranks", "x-matrix", "x-answer", "x-surrogate"}
    assert "| gp | describe+zc |" in text["x-surrogate"]
    assert text["x-answer"].startswith("**Yes.**")
    assert "constant over these designs" in text["x-ranks"]
    assert f"{r.accuracy['design_id'].nunique()} designs x 3 seeds" in text["x-source"]


def test_scores_missing_for_a_design_is_an_error(planted, tmp_path):
    run, scores = planted
    df = pd.read_csv(scores)
    df[df["design_id"] != df["design_id"].iloc[0]].to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(ValueError, match="lacks scores of 1 of the table's designs"):
        pr.build(run, tmp_path / "s.csv", fidelity="cpu", n_boot=50)


def test_cli_updates_the_blocks_and_draws(planted, tmp_path, capsys):
    run, scores = planted
    doc = tmp_path / "doc.md"
    doc.write_text("".join(f"<!-- x-{b}:begin -->\nold\n<!-- x-{b}:end -->\n"
                           for b in pr.BLOCKS))
    argv = [str(run), str(scores), "--tag", "x", "--fidelity", "cpu", "--update", str(doc),
            "--figures", str(tmp_path / "fig")]
    assert pr.main(argv) == 0
    assert "updated" in capsys.readouterr().out
    assert "**Yes.**" in block_in_doc(doc.read_text(), "x-answer")
    assert {p.name for p in (tmp_path / "fig").iterdir()} == {"x.png", "x.svg"}
    # Bad input: one line, exit 2, the doc untouched.
    before = doc.read_text()
    assert pr.main([str(run), str(scores), "--tag", "X!", "--update", str(doc)]) == 2
    assert pr.main([str(run), str(tmp_path / "none.csv"), "--tag", "x", "--fidelity", "cpu",
                    "--update", str(doc)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--tag 'X!'" in err[0] and doc.read_text() == before


def doc_tags() -> list[str]:
    return sorted(set(re.findall(r"<!-- ([a-z0-9-]+)-source:begin -->", DOC.read_text())))


@pytest.mark.parametrize("tag", doc_tags())
def test_docs_proxies_blocks_are_what_the_committed_files_give(tag):
    doc = DOC.read_text()
    source = block_in_doc(doc, f"{tag}-source")
    if source.startswith(pr.PENDING):
        for block in pr.BLOCKS[1:]:
            assert block_in_doc(doc, f"{tag}-{block}") == pr.PENDING_BLOCK
        return
    report = committed_report(source)
    for name, text in pr.blocks(report, tag, surrogate=False).items():
        assert block_in_doc(doc, name) == text.strip(), name
    for suffix in (".png", ".svg"):
        assert (REPO / "docs" / "proxies" / f"{tag}{suffix}").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("tag", doc_tags())
def test_docs_proxies_surrogate_block_is_what_the_committed_files_give(tag):
    # Slow: 40 Gaussian-process fits (two feature sets x 10 folds, and the boosting).
    doc = DOC.read_text()
    source = block_in_doc(doc, f"{tag}-source")
    if source.startswith(pr.PENDING):
        return
    assert block_in_doc(doc, f"{tag}-surrogate") == pr.surrogate_block(
        committed_report(source)).strip()


def committed_report(source: str) -> pr.Report:
    table, scores = re.findall(r"`([^`]+\.(?:json|csv))`", source)[:2]
    return pr.build(REPO / table, REPO / scores)


def test_docs_proxies_costs_are_the_measured_ones():
    assert block_in_doc(DOC.read_text(), "costs") == pr.costs_block().strip()


def _ranks(block: str) -> dict[str, tuple[float, float, float]]:
    """score -> (Kendall tau, lo, hi) from a ranks block."""
    out = {}
    for m in re.finditer(r"^\| `(\w+)` \| [^|]+ \| ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\]",
                         block, re.M):
        out[m.group(1)] = tuple(float(m.group(i)) for i in (2, 3, 4))
    return out


def test_docs_proxies_t40k_prose_says_what_its_blocks_say():
    doc = DOC.read_text()
    assert not block_in_doc(doc, "t40k-source").startswith(pr.PENDING)  # table 1.1 is in
    prose = doc.split("<!-- t40k-answer:end -->", 1)[1].split("###", 1)[0]
    release = re.search(r"`(releases/[^`]+\.json)`", block_in_doc(doc, "t40k-source")).group(1)
    seeds = json.loads((REPO / release).read_text())["seeds"]
    if "rc" in release:  # the candidate's docs say which seeds it holds
        assert seeds == [0] and "holds training seed 0 of the three" in " ".join(doc.split())
        assert "holds seed 0 of table 1.1's three" in " ".join(
            (REPO / "docs" / "benchmark.md").read_text().split())
    else:  # the complete table: the docs say what it holds, and no longer call it a candidate
        manifest = json.loads((REPO / release).read_text())
        assert seeds == [0, 1, 2] and manifest["ok_records"] == manifest["designs"] * 3
        flat = " ".join(doc.split())
        assert f"holds the {manifest['designs']} designs x 3 training seeds" in flat
        assert "1.1rc1" not in prose and "Release candidate" not in flat
    ranks = _ranks(block_in_doc(doc, "t40k-ranks"))
    best = max(ranks, key=lambda k: ranks[k][0])
    assert best == "width" and "best\nranker is the paper's own width" in prose
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "the paper's width ranks them best and the theory score no better than chance" in readme
    # naswot "ranks as well within the intervals and almost as width does"
    assert ranks["naswot"][2] >= ranks["width"][0] or ranks["width"][1] <= ranks["naswot"][0]
    matrix = block_in_doc(doc, "t40k-matrix")
    row = next(line for line in matrix.splitlines() if line.startswith("| `naswot` |"))
    head = [c.strip() for c in matrix.splitlines()[0].split("|")[1:-1]]
    assert float(row.split("|")[1:-1][head.index("width")]) >= 0.9
    # "ranks backwards ... intervals below zero"
    for name in ("non_sparsity", "density", "zen", "synflow"):
        assert f"`{name}`" in prose and ranks[name][2] < 0, name
    # the theory score: no better than chance, worse than the parameter count
    lo, hi = ranks["theory"][1:]
    assert lo < 0 < hi and "no better than\nchance and worse than the parameter count" in prose
    answer = block_in_doc(doc, "t40k-answer")
    assert answer.startswith("**No.**")
    assert re.search(r"^\| `params` \|.*\| worse \|$", answer, re.M)


def test_docs_proxies_summary_says_what_every_table_says():
    doc = DOC.read_text()
    summary = " ".join(doc.split("**In short.**", 1)[1].split("\n## ", 1)[0].split())
    assert "the paper's own width is the best single ranker" in summary
    assert "ranks the designs no better than chance" in summary
    for tag in doc_tags():
        if block_in_doc(doc, f"{tag}-source").startswith(pr.PENDING):
            continue
        ranks = _ranks(block_in_doc(doc, f"{tag}-ranks"))
        assert max(ranks, key=lambda k: ranks[k][0]) == "width", tag
        assert ranks["theory"][1] < 0 < ranks["theory"][2], tag
        assert block_in_doc(doc, f"{tag}-answer").startswith("**No.**"), tag
