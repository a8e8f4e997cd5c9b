"""The presets that test the paper's claims hold the paper's designs, and their claims are
wired: planted records of each preset give the verdicts its claims need."""

from __future__ import annotations

import math

import pytest
from test_claims import frame, verdicts

import analysis
import search_space as ss
from search_space.paper import PAPER_NETS
from studies.presets import FIG3Q_BLOCK_BUDGET, get_preset


@pytest.mark.parametrize("table", ["2", "3", "4", "5", "6"])
def test_table_presets_hold_exactly_the_papers_rows(table):
    ids = {n.design_id for n in PAPER_NETS if n.table == table}
    assert set(get_preset(f"table{table}").design_ids) == ids


def _nearly_complementary_uniform(d: ss.Design, info: dict) -> bool:
    return len(set(d.K[0][1:])) == 1 and info["density"] >= 1.0 and info["max_paths"] <= 2


def test_fig3q_is_the_widest_nearly_complementary_design_of_each_L_at_equal_block_weights():
    designs = [ss.parse(i) for i in get_preset("fig3q").design_ids]
    assert [d.L for d in designs] == [2, 3, 4, 5, 6]
    infos = [ss.describe(d, num_classes=10) for d in designs]
    q = [i["block_params"] for i in infos]
    assert max(q) <= FIG3Q_BLOCK_BUDGET and min(q) >= 0.98 * FIG3Q_BLOCK_BUDGET
    for d, info in zip(designs, infos, strict=True):
        assert d.K[0][0] == 1 and _nearly_complementary_uniform(d, info)
        # no wider nearly complementary uniform-K design of this L fits the block budget
        for C in range(d.width + 1, FIG3Q_BLOCK_BUDGET // 9):
            for K in range(2, C + 1):
                if C % K or C * (9 + (d.L - 1) * K) > FIG3Q_BLOCK_BUDGET:
                    continue
                if d.L == 2 and K != C:
                    continue
                other = ss.Design(net="plain8", depth=8, width=C, K=((1,) + (K,) * (d.L - 1),))
                assert not _nearly_complementary_uniform(
                    other, ss.describe(other, num_classes=10)), other.id
    widths = [d.width for d in designs]
    assert widths == [64, 144, 174, 188, 198]
    d2 = [widths[i + 1] - 2 * widths[i] + widths[i - 1] for i in range(1, len(widths) - 1)]
    assert all(x < 0 for x in d2)  # concave in L, as the paper's Figure 3


def test_fig3q_holds_figure2s_red_bars_and_table2s_pair_where_they_fit():
    ids = set(get_preset("fig3q").design_ids)
    assert {"plain8-c144-k1.12.12", "plain8-c174-k1.6.6.6", "plain8-c64-k1.64"} <= ids


def test_fig3q_records_form_one_figure3_sweep_grouped_by_block_weights():
    # whole-net params span 32,074-50,500 (more than x1.25), the blocks' weights 4,672-4,752
    # (paper_params, six blocks: 28,032-28,512): grouped by those, the five are one sweep
    ids = get_preset("fig3q").design_ids
    df = frame({i: 0.6 - 0.01 * (ss.parse(i).L - 4) ** 2 for i in ids}, noise=0.002)
    (concave,) = verdicts(df, "fig3_accuracy_concave")
    assert concave.verdict == "supported" and "paper_params 28,032-28,512, L 2/3/4/5/6" in \
        concave.detail
    (gap,) = verdicts(df, "fig3_best_not_widest")  # peak at 4, widest at 6
    assert gap.verdict == "supported" and gap.effect == pytest.approx(-2.0, abs=0.2)
    (width,) = verdicts(df, "fig3_width_concave")
    assert width.verdict == "supported" and width.n == 5


@pytest.mark.parametrize("preset, claims", [
    ("table3", ("table3_igcv2_vs_xception", "table3_igcv2_vs_igcv1")),
    ("table5", ("table5_igcv2ii_best",)),
    ("table6", ("table6_igcv2_vs_igcv1",)),
    ("table4", ("table4_igcv2_vs_xception",)),
])
def test_every_table_presets_claims_are_tested_on_its_records(preset, claims):
    ids = get_preset(preset).design_ids
    # the claimed arm 2 points better in every group
    arms = {n.design_id for n in PAPER_NETS if n.label.startswith(("IGCV2 C", "IGCV2* ",
                                                                    "IGCV2 II"))}
    df = frame({i: 0.5 + (0.02 if i in arms else 0.0) for i in ids}, noise=0.002)
    for claim in claims:
        (v,) = verdicts(df, claim)
        assert v.tested and v.verdict == "supported", (claim, v.detail)
        assert v.effect == pytest.approx(0.02, abs=4e-3)
        assert "3 of 3" in v.detail and "intersection-union" in v.detail


def test_table5_balanced_igcv2_ii_equal_to_the_others_is_equivalent():
    ids = get_preset("table5").design_ids
    (v,) = verdicts(frame({i: 0.5 for i in ids}, noise=0.001), "table5_igcv2ii_best")
    assert v.verdict == "equivalent" and math.isfinite(v.eq_level)
    assert analysis.Verdict.__dataclass_fields__["sesoi"]
