"""analysis.proxies.equal_params and its report: scores judged within pairs of equal block weights,
on planted data, and docs/proxies.md's equal-parameter blocks and sentences regenerated from
the committed files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import search_space as ss
from analysis.doc_blocks import block_in_doc
from analysis.proxies import equal_params as ep
from analysis.proxies import equal_params_report as epr

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "proxies.md"
SWEEPS = sorted((REPO / "docs" / "reproduction").glob("*.csv"))
TABLES = {"t40k": ("releases/igcbench-1.1.json", "docs/proxies/zc-t40k.csv"),
          "t10k": ("releases/igcbench-1.0.json", "docs/proxies/zc-t10k.csv")}


def test_close_pairs_tolerance_and_groups():
    q = np.array([100.0, 104.0, 104.2, 200.0, 100.0])
    p = ep.close_pairs(q, ["a", "a", "a", "a", "b"], 0.04)
    assert sorted(zip(*np.nonzero(p), strict=True)) == [(0, 1), (1, 2)]  # not 0-2: 4.03%
    assert ep.close_pairs(q, ["a"] * 5, 0.0).sum() == 1  # 0 and 4 exactly equal
    # A bootstrap sample that repeats a design never pairs the copies.
    boot = ep.close_pairs_boot(q, ["a"] * 5, np.array([[0, 0, 1, 3, 3]]), 0.04)
    assert sorted(zip(*np.nonzero(boot[0]), strict=True)) == [(0, 2), (1, 2)]


def test_pair_tau_counts_only_the_pairs():
    pairs = np.zeros((4, 4), bool)
    pairs[0, 1] = pairs[2, 3] = True
    acc = np.array([0.1, 0.2, 0.3, 0.4])
    # Concordant on both pairs, though discordant across them (score 0-1 above 2-3).
    assert ep.pair_tau(np.array([3.0, 4.0, 1.0, 2.0]), acc, pairs)[0] == 1.0
    assert ep.pair_tau(np.array([4.0, 3.0, 1.0, 2.0]), acc, pairs)[0] == 0.0
    assert np.isnan(ep.pair_tau(np.ones(4), acc, pairs)[0])


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Nine designs of distinct widths at three budgets (about 4.7k, 10k and 17k block
    weights): accuracy is set by the budget, plus a small rise with width. ``good`` is
    width; ``size`` is the block weights, which rank the designs well across budgets and
    not within pairs."""
    ids = ["plain8-c144-k1.12.12", "plain8-c64-k1.64", "plain8-c256-k1.16.16",
           "plain8-c96-k1.96", "plain8-c361-k1.19.19", "plain8-c128-k1.128",
           "plain8-c112-k1.16.16", "plain8-c184-k1.4.4.4.4", "plain8-c222-k1.6.6"]
    q = ep.design_quantities(ids)
    rng = np.random.default_rng(0)
    rows = []
    for d in ids:
        base = 0.3 * (q.loc[d, "q"] > 8000) + 0.3 * (q.loc[d, "q"] > 15000) + np.log(
            q.loc[d, "width"]) / 100
        rows += [{"design_id": d, "seed": s, "test_acc": base + rng.normal(0, 1e-4),
                  "good": q.loc[d, "width"] + rng.normal(0, 1e-3),
                  "size": q.loc[d, "q"] + rng.normal(0, 1e-3)} for s in range(3)]
    frame = pd.DataFrame(rows)
    return frame[["design_id", "seed", "test_acc"]], frame.drop(columns="test_acc"), q


def test_within_pairs_rewards_the_within_pair_order_not_size(planted):
    acc, scores, q = planted
    w = ep.within_pairs(acc, scores, ["good", "size"], q, n_boot=200).set_index("score")
    assert w.loc["good", "tau"] == 1.0 and w.loc["good", "lo"] > 0.5
    assert w.loc["good", "n_designs"] == 9
    assert w.loc["good", "n_pairs"] == int(ep.close_pairs(q["q"].to_numpy(), [0] * 9).sum())
    # Size ranks the designs across budgets, but within a pair the wider design is as
    # often the smaller as the larger.
    means = acc.groupby("design_id")["test_acc"].mean()
    across = sps.kendalltau(q.loc[means.index, "q"], means).statistic
    assert across > 0.5 and w.loc["size", "tau"] < across - 0.3


def test_partial_beyond_width_and_fixed_share(planted):
    acc, scores, q = planted
    noisy = scores.assign(noise=np.random.default_rng(1).normal(size=len(scores)),
                          oracle=acc["test_acc"].to_numpy())
    b = ep.partial_beyond(acc, noisy, ["good", "oracle"], {"width": q["width"], "q": q["q"]},
                          n_boot=200).set_index("score")
    # Width ranks the designs, but says nothing once width is controlled (it is width);
    # the accuracy itself still says what width and size leave.
    assert b.loc["good", "spearman"] > 0.3 and np.isnan(b.loc["good", "partial"])
    assert b.loc["oracle", "partial"] == pytest.approx(1.0) and b.loc["oracle", "lo"] > 0.9
    share = ep.fixed_share(noisy, ["good", "noise"])
    assert share["good"] > 0.999 and share["noise"] < 0.9


def test_relu_units_match_the_built_net():
    torch = pytest.importorskip("torch")
    for d, size in (("plain8-c144-k1.12.12", 32), ("plain8-c64-k1.g8.g8", 32)):
        design = ss.parse(d)
        net, seen = ss.build(design, impl="reference"), []  # the proxies' implementation
        for m in net.modules():
            if isinstance(m, torch.nn.ReLU):
                m.register_forward_hook(
                    lambda _m, _i, out, seen=seen: seen.append(out[0].numel()))
        with torch.no_grad():
            net(torch.zeros(1, 3, size, size))
        assert ep.relu_units(design, size) == sum(seen), d
    assert np.isnan(ep.relu_units(ss.parse("res20-c35-k1.g1")))


@pytest.mark.parametrize("csv", ["zc-t40k.csv", "zc-t10k.csv", "zc-p650k.csv", "zc-r650k.csv"])
def test_stored_theory_is_the_retired_bottleneck_score(csv):
    stored = pd.read_csv(REPO / "docs" / "proxies" / csv).groupby("design_id")["zc_theory"]
    stored = stored.agg(["min", "max"])
    assert (stored["min"] == stored["max"]).all()  # a function of the design
    q = ep.design_quantities(list(stored.index))
    assert np.allclose(stored["min"], q.loc[stored.index, "bottleneck"], rtol=0, atol=1e-9)


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    doc = tmp_path / "d.md"
    doc.write_text("<!-- x-within:begin -->\nold\n<!-- x-within:end -->\n")
    assert epr.main(["table", str(REPO / TABLES["t40k"][0]), "--tag", "x",
                     "--update", str(doc)]) == 2
    assert epr.main(["sweeps", str(tmp_path / "none.csv"), "--tag", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "got 1 paths" in err[0] and "none.csv" in err[1]
    assert "old" in doc.read_text()


# --- docs/proxies.md -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_inputs() -> dict[str, epr.Inputs]:
    return {tag: epr.table_inputs(REPO / t, REPO / s) for tag, (t, s) in TABLES.items()}


def _doc() -> str:
    return DOC.read_text()


@pytest.mark.parametrize("tag", sorted(TABLES))
def test_table_blocks_are_what_the_committed_files_give(tag, table_inputs):
    inp = table_inputs[tag]
    assert block_in_doc(_doc(), f"{tag}-within") == epr.within_block(
        inp, epr.table_names(inp)).strip()
    assert block_in_doc(_doc(), f"{tag}-axis") == epr.axis_block(inp).strip()


def test_sweeps_block_is_what_the_committed_exports_give():
    got = epr.sweeps_block([epr.sweep_inputs(p) for p in SWEEPS])
    assert block_in_doc(_doc(), "sweeps-within") == got.strip()


def within(tag: str) -> dict[str, dict[str, tuple[float, float, float]]]:
    """score -> column -> (value, lo, hi) of a within block."""
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    cols = ("within", "exact", "beyond")
    for line in block_in_doc(_doc(), f"{tag}-within").splitlines():
        m = re.match(r"\| `(\w+)` \| [^|]+ \|(.*)$", line)
        if not m:
            continue
        cells = [c.strip() for c in m.group(2).split("|")][:3]
        out[m.group(1)] = {c: tuple(map(float, re.findall(r"[+-]\d\.\d+", v)))
                           for c, v in zip(cols, cells, strict=True) if "[" in v}
    return out


def test_prose_says_what_the_within_blocks_say():
    flat = " ".join(_doc().split())
    for tag in TABLES:
        w = within(tag)
        best = max(w[s]["within"][0] for s in w)
        # width first on table 1.1 (ties count); within 0.03 of FLOPs on table 1.0
        assert w["width"]["within"][0] >= best - (0 if tag == "t40k" else 0.03), tag
        assert w["width"]["within"][1] > 0, tag
        for name in ("theory", "bottleneck"):  # no better than chance
            lo, hi = w[name]["within"][1:]
            assert lo < 0 < hi, (tag, name)
        # No score adds to width at equal parameters: no partial interval above zero.
        assert all(v["beyond"][1] <= 0 for v in w.values() if "beyond" in v), tag
    w = within("t40k")
    for name in ("density", "non_sparsity"):
        assert w[name]["within"][2] < 0, name  # "rank backwards (intervals below zero)"
    pairs = re.search(r"(\d+) pairs among", block_in_doc(_doc(), "t40k-within")).group(1)
    assert (f"(tau {w['width']['within'][0]:+.2f} within table 1.1's {pairs} pairs)"
            in flat)
    assert "No score's partial correlation beyond width and block weights lies above zero" in flat


def _axis(tag: str) -> tuple[dict[tuple[str, str], float], str]:
    block = block_in_doc(_doc(), f"{tag}-axis")
    lines = [x for x in block.splitlines() if x.startswith("|")]
    head = re.findall(r"`(\w+)`", lines[0])
    taus = {}
    for line in lines[2:]:
        name = re.match(r"\| `(\w+)`", line).group(1)
        for other, v in zip(head, line.split("|")[2:-1], strict=True):
            taus[name, other] = float(v)
    return taus, " ".join(block.split())


def test_prose_says_what_the_axis_blocks_say():
    flat = " ".join(_doc().split())
    taus, text = _axis("t40k")
    off = [v for (a, b), v in taus.items() if a != b]
    assert (f"one axis on table 1.1 (Kendall tau {min(off):.2f}-{max(off):.2f} with each other)"
            in flat)
    rest = float(re.search(r"the rest ranks it at ([+-][\d.]+)", text).group(1))
    assert f"NASWOT without it ranks table 1.1 at {rest:.2f}" in flat
    assert "has tau +1.00 with width" in text and "its tau with width is 1" in flat
    shares = {n: float(v) for n, v in re.findall(r"`(\w+)` (\d\.\d+)", text)}
    assert all(shares[n] >= 0.9999 for n in ("naswot", "zen", "params", "flops"))
    assert shares["synflow"] >= 0.985 and 0.9 < shares["grad_norm"] < 0.96
    assert (f"`synflow` {shares['synflow']:.0%}" in flat
            and f"`grad_norm` ({1 - shares['grad_norm']:.0%})" in flat)
    assert all(0.7 < shares[n] < 0.8 for n in ("jacob_cov", "snip"))  # "about a quarter"
    t10k, _ = _axis("t10k")
    assert t10k["naswot", "width"] >= 0.97 and "and width are (0.97)" in flat
    assert max(t10k["width", "latency_b1_ms"], t10k["width", "latency_b64_ms"]) < 0.5


def test_prose_says_what_the_sweeps_block_says():
    rows = {re.search(r"reproduction/([\w-]+)\.csv", x).group(1): x
            for x in block_in_doc(_doc(), "sweeps-within").splitlines() if "reproduction/" in x}
    for name in ("table2-cpu-cifar10", "table2-cpu2-cifar10"):
        cells = rows[name].split("|")
        assert cells[4].strip().startswith("3 ") and cells[5].strip().startswith("+1.00")
        assert cells[6].strip().startswith("+1.00")  # theory and width
    fig2 = rows["fig2-cpu-cifar10"].split("|")
    assert fig2[4].strip().startswith("89 ")
    lo, hi = map(float, re.findall(r"[+-]\d\.\d+", fig2[5])[1:])
    assert lo < 0 < hi
    assert rows["fig3-cpu-cifar10"].split("|")[4].strip().startswith("1 ")
    flat = " ".join(_doc().split())
    assert "Figure 2's 15 designs (89 pairs within 4%) give no signal" in flat
    assert "Figure 3's sweep holds a single pair" in flat
