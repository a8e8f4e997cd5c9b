"""docs/reproduction.md's tables are what the committed record exports give."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.claims import eq14, power_report
from analysis.claims import reproduction as rp
from analysis.claims.rank_agreement import table as rank_table
from analysis.claims.verdicts import UNITS, VERDICTS
from analysis.doc_blocks import block_in_doc

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = ROOT / "docs" / "reproduction"
DOC = ROOT / "docs" / "reproduction.md"


@pytest.fixture(scope="module")
def doc() -> str:
    if not any(EXPORTS.glob("*.csv")):
        pytest.fail(f"no record exports in {EXPORTS}")
    return DOC.read_text()


@pytest.mark.parametrize("block, make", [
    ("summary", rp.summary_table), ("costs", rp.cost_table), ("verdicts", rp.verdict_table),
    ("codes", rp.code_table),
    ("ranks", rank_table), ("designs", rp.design_table), ("power", power_report.table),
    ("eq14", lambda _exports: eq14.table())])
def test_every_table_regenerates_from_the_committed_records(doc, block, make):
    assert block_in_doc(doc, block) == make(EXPORTS)


def test_the_committed_power_plan_is_what_the_records_give():
    import json

    assert json.loads((EXPORTS / "power.json").read_text()) == power_report.plan(EXPORTS)


def test_every_verdict_row_shows_raw_and_adjusted_intervals_and_its_unit(doc):
    rows = [r for r in block_in_doc(doc, "verdicts").splitlines()[2:]]
    assert rows
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        verdict, raw, effect, raw_ci, adj_ci, unit = cells[3], cells[4], cells[5], cells[6], \
            cells[7], cells[9]
        assert verdict.strip("*") in VERDICTS
        assert raw in VERDICTS and effect
        assert unit in UNITS
        assert raw_ci.startswith("[") and (adj_ci == "(exact)" if unit == "exact"
                                           else " at " in adj_ci)


def test_every_export_has_its_report_and_its_seeds():
    from analysis.table.release import read_records

    for csv in EXPORTS.glob("*.csv"):
        assert (EXPORTS / csv.stem / "report.html").is_file(), csv.stem
        df = read_records(csv)
        ok = df[df.status == "ok"]
        seeds = ok.groupby("design_id").seed.nunique()
        fidelity = "-".join(csv.stem.split("-")[1:-1])  # <preset>-<fidelity>-<dataset>
        assert seeds.min() == seeds.max() >= (3 if fidelity == "cpu" else 1), csv.stem
        assert (ok.fidelity == fidelity).all() and (ok.dataset == "cifar10").all()


def test_update_rewrites_every_table_in_place_and_keeps_the_rest(tmp_path, doc, capsys):
    stale = tmp_path / "reproduction.md"
    text = doc
    for block in ("summary", "costs", "verdicts", "codes", "ranks", "designs", "power", "eq14"):
        text = text.replace(block_in_doc(doc, block), f"| old {block} |")
    stale.write_text(text)
    exports = tmp_path / "exports"  # --update writes power.json beside them: not in the tree
    exports.mkdir()
    for f in [*EXPORTS.glob("*.csv"), *EXPORTS.glob("*.json")]:
        (exports / f.name).write_bytes(f.read_bytes())
    assert rp.main(["table", str(exports), "--update", str(stale)]) == 0
    assert stale.read_text() == doc  # exactly the committed document
    assert (exports / "power.json").read_text() == (EXPORTS / "power.json").read_text()
    assert rp.main(["table", str(exports), "--update", str(stale)]) == 0
    assert "already current" in capsys.readouterr().out
    (tmp_path / "bare.md").write_text("no markers here\n")
    assert rp.main(["table", str(EXPORTS), "--update", str(tmp_path / "bare.md")]) == 2
    assert ("no block of summary, costs, verdicts, codes, ranks, designs, power, eq14 between "
            "its markers") in capsys.readouterr().err
    assert (tmp_path / "bare.md").read_text() == "no markers here\n"


def test_every_committed_report_is_of_the_current_analysis():
    """`python -m analysis.claims.reproduction reports docs/reproduction` rewrote each report from
    its CSV: the verdict rows are check_claims' of that CSV, and the figures are there."""
    import re

    from analysis.claims.check import check_claims
    from analysis.table.release import read_records

    for csv in sorted(EXPORTS.glob("*.csv")):
        page = (EXPORTS / csv.stem / "report.html").read_text()
        rows = re.findall(r"<tr class='verdict ([^']*)' data-claim='([^']*)'>", page)
        tested = [(v.verdict.replace(" ", "-"), v.claim)
                  for v in check_claims(read_records(csv)) if v.tested]
        assert rows == tested, csv.stem
        figures = re.findall(r"<figure id='([^']+)'>", page)
        assert len(figures) >= 3 and all(
            (EXPORTS / csv.stem / "figures" / f"{f}.png").is_file() for f in figures), csv.stem


def test_the_fidelity_page_carries_the_same_rank_agreement():
    fidelities = (ROOT / "docs" / "fidelities.md").read_text()
    assert block_in_doc(fidelities, "ranks") == rank_table(EXPORTS)



def test_the_prose_on_cpu_vs_cpu2_says_what_the_rank_table_gives(doc):
    """docs/reproduction.md says: the cpu records of fig3/table2 are another training code
    (0 of 18 keys equal, c144 seed 0 0.405 vs 0.389); against cpu2 on 9 designs both
    intervals are above zero, two of the top three shared (the third named at each rung),
    and every design higher at cpu2."""
    import json

    from analysis.claims.code_groups import read_equalities, separate_codes
    from analysis.table.release import read_records

    old = "cpu [code 7cb3e666f5/dbf35f53c1]"
    (row,) = [r for r in block_in_doc(doc, "ranks").splitlines() if f"{old} vs cpu2" in r]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "9"
    tau, low = float(cells[4].split()[0]), float(cells[4].split("[")[1].split(",")[0])
    rho_low = float(cells[5].split("[")[1].split(",")[0])
    assert 0.75 <= tau < 0.85 and low > 0 and rho_low > 0 and cells[6].startswith("0.67 of top 3")
    text = " ".join(doc.split())
    assert "Both intervals lie above zero" in text and "Kendall tau about 0.8" in text
    pairs = json.loads((EXPORTS / "recheck-exports.json").read_text())["records"]
    against = [p for p in pairs if p["recorded_code"] == old.split()[-1].rstrip("]")
               and p["rerun_code"] == "720d38895d/ad2aa1838b"]
    assert len(against) == 18 and not any(p["equal"] for p in against)
    assert "(0 of 18 keys equal; `plain8-c144-k1.12.12` seed 0 scored 0.405 there and 0.389 " \
        "in fig2)" in text
    df = separate_codes(pd.concat([read_records(p) for p in sorted(EXPORTS.glob("*.csv"))]),
                        read_equalities(EXPORTS))
    c144 = df[df.design_id.eq("plain8-c144-k1.12.12") & df.seed.eq(0)
              & df.fidelity.str.startswith("cpu [")]
    assert sorted(c144.test_acc.round(4).unique().tolist()) == [0.389, 0.405]
    means = df.groupby(["fidelity", "design_id"]).test_acc.mean()
    cpu = means[old]
    cpu2 = means[[f for f in means.index.levels[0] if f.startswith("cpu2 [code 5db7")][0]]
    shared = cpu2.index.intersection(cpu.index)
    assert len(shared) == 9 and (cpu2[shared] > cpu[shared]).all()
    top = {n: set(m[shared].nlargest(3).index) for n, m in (("cpu", cpu), ("cpu2", cpu2))}
    assert top["cpu"] - top["cpu2"] == {"plain8-c144-k1.12.12"}
    assert top["cpu2"] - top["cpu"] == {"plain8-c128-k1.128"}
    assert "`plain8-c144-k1.12.12` at `cpu`, `plain8-c128-k1.128` at `cpu2`" in text


def test_the_prose_quotes_table2s_differences_at_both_rungs(doc):
    """The IGCV2-minus-Xception differences docs/reproduction.md quotes for cpu2 and cpu are
    the table2 exports' (mean test accuracy per design)."""
    from analysis.table.release import read_records

    pairs = (("plain8-c144-k1.12.12", "plain8-c64-k1.64"),
             ("plain8-c256-k1.16.16", "plain8-c96-k1.96"),
             ("plain8-c361-k1.19.19", "plain8-c128-k1.128"))
    quoted = {}
    for rung in ("cpu2", "cpu"):
        acc = read_records(EXPORTS / f"table2-{rung}-cifar10.csv").groupby(
            "design_id").test_acc.mean()
        quoted[rung] = ", ".join(f"{acc[a] - acc[b]:+.3f}" for a, b in pairs)
    text = " ".join(doc.split())
    assert (f"({quoted['cpu2']} at C=144/64, 256/96, 361/128; {quoted['cpu']} at `cpu`)"
            in text)


def test_the_prose_on_table2_at_each_budget_says_what_the_verdict_gives(doc):
    """Table 2 at cpu: two budgets resolved over seeds, the largest not, so the claim "at
    each budget" is inconclusive (docs/reproduction.md's plain words)."""
    import re

    from analysis.claims.check import check_claims
    from analysis.table.release import read_records

    (v,) = [v for v in check_claims(read_records(EXPORTS / "table2-cpu-cifar10.csv"))
            if v.claim == "table2_igcv2_vs_xception"]
    p = [float(x) for x in re.findall(r"\(\+[0-9.]+, p ([0-9.e-]+)\)", v.detail)]
    assert v.verdict == "inconclusive" and len(p) == 3
    assert p[0] < 0.05 and p[1] < 0.05 and p[2] > 0.05 and "c361" in v.detail
    text = " ".join(doc.split())
    assert ("at the two smaller budgets over seeds (each group's interval excludes zero" in text
            and "but at the largest (C361 against C128) the interval spans zero" in text)
    assert "no verdict is `equivalent` yet" in text
    assert not any(v.verdict == "equivalent" for _s, v in rp.verdict_rows(EXPORTS))


def test_no_committed_verdict_pools_codes_that_no_recheck_shows_equal(doc):
    """Each sweep's verdicts use one class of training code (code_groups.code_classes of the
    committed rechecks); the codes table counts every record, kept or left out, and each
    verdict row names the codes block's choice for its sweep."""
    from analysis.claims.code_groups import code_classes, read_equalities
    from analysis.table.release import read_records

    classes = code_classes(read_equalities(EXPORTS))
    used = {}
    for row in block_in_doc(doc, "codes").splitlines()[2:]:
        sweep, _fid, per_code, use, left = [c.strip() for c in row.strip("|").split("|")]
        codes = use.split(";")[0].replace(" (equal in a recheck)", "").split(" = ")
        assert len({classes.get(c, c) for c in codes}) == 1, sweep
        counts = {c: int(n) for c, n in (x.split(": ") for x in per_code.split(", "))}
        kept = int(use.split("; ")[1].split()[0])
        assert kept == sum(counts[c] for c in codes)
        assert kept + int(left) == sum(counts.values()) == len(
            read_records(EXPORTS / f"{sweep}.csv"))
        used[sweep] = use
    assert int(used["table2-cpu2-cifar10"].split("; ")[1].split()[0]) == 4  # the prose's
    for row in block_in_doc(doc, "verdicts").splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[11] == used[cells[0]], cells[:2]


def test_every_unresolved_claim_says_the_seeds_and_hours_that_would_resolve_it(doc):
    """Issue 23: for Figure 3's accuracy curve, Table 2, Table 5 and Tables 3 and 6, each
    verdict is supported, not supported or equivalent, or its cell states the seeds per
    design and hours that would resolve it, as power.json plans them."""
    import json
    import re

    from analysis.claims.texts import CLAIMS

    plan = json.loads((EXPORTS / "power.json").read_text())["sweeps"]
    rows = {}
    for row in block_in_doc(doc, "summary").splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        rows[cells[0]] = cells[2].split("<br>")
    said = re.compile(r"^(\S+)(?: \(not run\))?[^;]*;.* to resolve: (\d+) seeds per design, "
                      r"~\d+\.\d hours at ([\w-]+) on this machine \(\d+ more trials")
    for claim in rp.MUST_RESOLVE:
        cells = rows[CLAIMS[claim].statement]
        assert cells, claim
        for cell in cells:
            if any(f"**{v}**" in cell for v in ("supported", "not supported", "equivalent")):
                continue
            m = said.match(cell)
            assert m, (claim, cell)
            preset = m.group(1).split("-")[0].rstrip(":")
            assert int(m.group(2)) == plan[preset][m.group(3)]["claims"][claim], cell


def test_the_prose_on_table5_says_what_its_export_and_verdict_give(doc):
    """Table 5 at cpu-v2: the balanced arm's margins over the better of the other two, the
    per-budget p-values, IGCV2 I against IGCV1, and the verdict (docs/reproduction.md)."""
    import re

    from analysis.claims.check import check_claims
    from analysis.table.release import read_records

    rows = read_records(EXPORTS / "table5-cpu-v2-cifar10.csv")
    acc = rows.groupby("design_id").test_acc.mean()
    budgets = (("plain8-c100-k1.10.10", "plain8-c64-k2.g2", "plain8-c98-k2.7.7"),
               ("plain8-c169-k1.13.13", "plain8-c96-k2.g2", "plain8-c162-k2.9.9"),
               ("plain8-c256-k1.16.16", "plain8-c128-k2.g2", "plain8-c242-k2.11.11"))
    margin = ", ".join(f"{acc[ii] - max(acc[v1], acc[i]):+.3f}" for ii, v1, i in budgets)
    i_vs_v1 = ", ".join(f"{acc[i] - acc[v1]:+.3f}" for _, v1, i in budgets)
    (v,) = [v for v in check_claims(rows) if v.claim == "table5_igcv2ii_best"]
    p = re.findall(r"\(\+[0-9.]+, p ([0-9.e-]+)\)", v.detail)
    text = " ".join(doc.split())
    assert v.verdict == "inconclusive" and len(p) == 3
    assert f"({margin} at C=100, 169, 256" in text
    assert f"p {p[0]}; {p[1]} and {p[2]} at the others" in text
    assert f"above IGCV1 at every budget ({i_vs_v1};" in text


def test_the_prose_on_table3_says_what_its_export_and_verdicts_give(doc):
    """Table 3 at cpu-v2: IGCV2*'s margins over Xception and IGCV1 at each width, their
    p-values, the verdicts, the seeds and hours that resolve them (docs/reproduction.md)."""
    import json
    import re

    from analysis.claims.check import check_claims
    from analysis.table.release import read_records

    rows = read_records(EXPORTS / "table3-cpu-v2-cifar10.csv")
    acc = rows.groupby("design_id").test_acc.mean()
    params = rows.groupby("design_id").params.first()
    star = ("res20-c216-k1.8.8.8-stem64", "res20-c304-k1.8.8.8-stem64",
            "res20-c416-k1.8.8.8-stem64")
    others = {"table3_igcv2_vs_xception": ("res20-c58-k1.g1", "res20-c71-k1.g1",
                                           "res20-c83-k1.g1"),
              "table3_igcv2_vs_igcv1": ("res20-c96-k2.g2", "res20-c126-k2.g2",
                                        "res20-c150-k2.g2")}
    verdicts = {v.claim: v for v in check_claims(rows)}
    plan = json.loads((EXPORTS / "power.json").read_text())["sweeps"]["table3"]["cpu-v2"]
    text = " ".join(doc.split())
    for claim, rivals in others.items():
        v = verdicts[claim]
        margins = ", ".join(f"{acc[s] - acc[o]:+.3f}" for s, o in zip(star, rivals, strict=True))
        p = re.findall(r"\(\+[0-9.]+, p ([0-9.e-]+)\)", v.detail)
        assert v.verdict == "inconclusive" and len(p) == 3
        assert f"({margins} " in text and f"p {', '.join(p)}" in text
        assert all(params[s] < params[o] for s, o in zip(star, rivals, strict=True))
        assert plan["claims"][claim] == 16
    assert verdicts["width_effect"].verdict == "supported"
    assert "both `inconclusive`; 16 seeds per design would resolve each" in text


def test_the_prose_on_fig3q_says_what_its_export_and_verdicts_give(doc):
    """fig3q at cpu-v2: the means by L, the curvature, the seeds that resolve it and the
    IGCV2-minus-Xception difference docs/reproduction.md quotes."""
    import json

    from analysis.claims.check import check_claims
    from analysis.table.release import read_records

    rows = read_records(EXPORTS / "fig3q-cpu-v2-cifar10.csv")
    by_l = rows.groupby("L").test_acc.mean()
    verdicts = {v.claim: v for v in check_claims(rows)}
    concave = verdicts["fig3_accuracy_concave"]
    plan = json.loads((EXPORTS / "power.json").read_text())["sweeps"]["fig3q"]["cpu-v2"]
    acc = rows.groupby("design_id").test_acc.mean()
    text = " ".join(doc.split())
    assert f"is {'/'.join(f'{by_l[k]:.3f}' for k in range(2, 7))}, highest at L = 3" in text
    assert by_l.idxmax() == 3 and concave.verdict == "inconclusive"
    assert f"direction ({concave.effect:.3f})" in text
    assert f"{plan['claims']['fig3_accuracy_concave']} seeds per design would resolve" in text
    assert f"by {acc['plain8-c144-k1.12.12'] - acc['plain8-c64-k1.64']:+.3f}" in text
