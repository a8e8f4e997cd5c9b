"""analysis.proxies.picks: each score's picks on planted scores, and the 0.65M blocks of
docs/proxies.md regenerated from the committed exports they name."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from analysis.doc_blocks import block_in_doc
from analysis.proxies import picks as pp

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "proxies.md"


def _scores() -> pd.DataFrame:
    """Four designs x 2 seeds: synflow orders d > c > b > a (seed noise smaller than the
    gaps), theory the reverse, balance deviation lowest at b and c (a tie), density constant."""
    rows = []
    for i, d in enumerate("abcd"):
        for s in range(2):
            rows.append({"design_id": d, "seed": s, "synflow": 10.0 * i + s,
                         "theory": -float(i) - 0.1 * s, "balance_deviation": [3, 0, 0, 1][i],
                         "density": 1.0, "latency_b1_ms": float(i)})
    return pd.DataFrame(rows)


def test_picks_order_direction_ties_and_marks():
    t = pp.picks(_scores(), k=2, marks=["a", "c"]).set_index("score")
    # density is constant: no pick; latency is a running cost, not a predictor: left out
    assert list(t.index) == ["synflow", "balance_deviation", "theory"]
    assert t.loc["synflow", "picks"] == ["d", "c"]
    assert t.loc["synflow", "tau_theory"] == pytest.approx(-1.0)
    assert t.loc["theory", "picks"] == ["a", "b"] and pd.isna(t.loc["theory", "tau_theory"])
    # balance deviation: the lowest is best (eq. 11's balance); b and c tie there
    assert t.loc["balance_deviation", "picks"] == ["b", "c"]
    assert t.loc["balance_deviation", "tied"] == 2 and t.loc["synflow", "tied"] == 1
    assert (t.loc["synflow", "rank:a"], t.loc["synflow", "rank:c"]) == (4, 2)
    assert (t.loc["balance_deviation", "rank:c"], t.loc["theory", "rank:a"]) == (1, 1)


def test_block_names_the_tie_and_says_it_is_a_prediction(tmp_path):
    path = tmp_path / "zc.csv"
    _scores().rename(columns=lambda c: c if c in ("design_id", "seed") else f"zc_{c}").assign(
        fidelity="zc", dataset="cifar10").to_csv(path, index=False)
    text = pp.picks_block(path, k=1, marks=["d"])
    assert "4 designs x 2 initialisation seeds" in text and "fidelity `zc`" in text
    assert "not trained results" in text
    assert "| `balance_deviation` | the paper's | `b` (2 tie at the best) | " in text
    assert re.search(r"\| `synflow` \| generic proxy \| `d` \| -1\.00 \| 1 \|", text)


def test_bad_mark_and_k_are_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "zc.csv"
    _scores().rename(columns=lambda c: c if c in ("design_id", "seed") else f"zc_{c}").to_csv(
        path, index=False)
    assert pp.main([str(path), "--tag", "x", "--mark", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--mark nope: not among the 4 scored designs" in err
    assert pp.main([str(path), "--tag", "x", "--k", "0"]) == 2
    assert "--k 0" in capsys.readouterr().err


#: The 0.65M blocks of docs/proxies.md and the arguments that made them (the doc's command).
BLOCKS = {
    "p650k-picks": ("docs/proxies/zc-p650k.csv", ["plain8-c432-k1.g4.g4"]),
    "r650k-picks": ("docs/proxies/zc-r650k.csv", []),
}


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_doc_block_is_what_the_committed_export_gives(block):
    scores, marks = BLOCKS[block]
    doc = DOC.read_text()
    text = block_in_doc(doc, block)
    assert not text.startswith("Not computed yet"), f"{block}: its scores are committed"
    assert (REPO / scores).is_file(), f"{block} names {scores}, which is not committed"
    assert text == pp.picks_block(REPO / scores, marks=marks)


def _block_and_prose(tag: str) -> tuple[str, str]:
    """A picks block of docs/proxies.md and the prose after it (to the next heading)."""
    doc = DOC.read_text()
    block = block_in_doc(doc, f"{tag}-picks")
    assert not block.startswith("Not computed yet"), f"{tag}: the scores are committed"
    prose = " ".join(doc.split(f"<!-- {tag}-picks:end -->", 1)[1].split("\n#", 1)[0].split())
    return block, prose


def test_docs_p650k_prose_says_what_its_block_says():
    block, prose = _block_and_prose("p650k")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| [^|]+ \|(.*)$",
                                                         block, re.M)}

    def cells(score: str) -> list[str]:
        return [c.strip() for c in rows[score].split("|")]

    theory_picks = re.findall(r"plain8-c(\d+)-k1((?:\.\d+)+)", cells("theory")[0])
    # "near a thousand channels with three to five equal 1x1 branches"
    for width, branches in theory_picks:
        sizes = branches.strip(".").split(".")
        assert 800 <= int(width) <= 1200 and 3 <= len(sizes) <= 5 and len(set(sizes)) == 1
    assert cells("width")[0] == cells("naswot")[0]  # naswot follows width
    assert float(cells("width")[1]) < 0  # the two rankings disagree
    assert f"ranks {_ordinal(cells('theory')[2])} of 74 by the theory score" in prose
    assert f"and {_ordinal(cells('width')[2])} by width" in prose
    readme = " ".join((REPO / "README.md").read_text().split())
    assert (f"the theory score ranks it {_ordinal(cells('theory')[2])} of the 74 and width "
            f"{_ordinal(cells('width')[2])}") in readme
    hour = pd.read_csv(REPO / "docs" / "studies" / "budget-650k-1h-floor.csv")
    sampled = set(hour["design_id"])
    assert len(sampled) == 10 and "none of them among the ten that hour sampled" in readme
    assert not sampled & set(re.findall(r"`(plain8-[^`]+)`", cells("theory")[0]))


def _ordinal(n: str) -> str:
    k = int(n)
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def test_docs_r650k_prose_says_what_its_block_says():
    block, prose = _block_and_prose("r650k")

    def picks(score: str) -> list[tuple[int, int]]:
        row = next(ln for ln in block.splitlines() if ln.startswith(f"| `{score}` |"))
        return [(int(c), len(k.split("."))) for c, k in
                re.findall(r"res20-c(\d+)-k(\S+?)`", row.split("|")[3])]

    def span(values: list[int]) -> str:
        lo, hi = min(values), max(values)
        return f"{lo}" if lo == hi else f"{lo}-{hi}"

    theory, width = picks("theory"), picks("width")
    assert picks("naswot") == width
    assert (f"theory score picks C = {span([c for c, _ in theory])} with "
            f"L = {span([n for _, n in theory])}") in prose
    assert (f"the widest, C = {span([c for c, _ in width])} with "
            f"L = {span([n for _, n in width])}") in prose
