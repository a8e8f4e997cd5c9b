"""The paper's claims that the analysis tests: each with the sentence or equation it tests.

Pure data. ``quote`` is the paper's sentence (equations in plain notation); ``anchor`` is a
verbatim run of the paper's text (docs: ../shared/paper/IGCV2-paper.txt, after joining
hyphenated line breaks) that tests/test_claims.py finds there, so a quote cannot drift from
the paper; ``test`` says exactly what is computed. Keys of claims tested in two units (seeds
and groups) appear once here; the verdicts carry the unit.

Example:
    >>> CLAIMS["fig3_width_concave"].source
    'Sec. 4.2, Figure 3'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, as the analysis tests it."""

    statement: str  # short, for tables
    source: str  # section / figure / table / equation
    quote: str  # the paper's words
    anchor: str  # a verbatim run of the paper's text inside the quote
    test: str  # what is computed and how it is decided


_FIG3 = ("It can be seen that the function of accuracy w.r.t. L is concave, the function of "
         "width w.r.t. L is concave, and the function of non-sparsity w.r.t. L is convex.")
_FIG2_BEST = ("It can be seen that the networks with the IGCV2 blocks (nearly) satisfying the "
              "complementary condition (the red bars and the bars next to the red bar in "
              "Figure 2 (a) and (c)) achieve the best performance.")

CLAIMS: dict[str, Claim] = {
    "eq14_widest_L": Claim(
        "The widest balanced dense block at a parameter budget has L within one of 1 + ln C",
        "Sec. 3.2, eq. 14 (separated form)",
        "Q is the minimum if L = log(SC). (14) ... [for a channel-wise 3x3 followed by group "
        "1x1 convolutions] the balance condition becomes K2 = K3 = ... = KL = C^(1/(L-1)), for "
        "which the amount of parameters is the smallest.",
        "for which the amount of parameters is the smallest",
        "A fact of the design space, not a verdict of any sweep (analysis.claims.eq14): over a "
        "scan "
        "of block budgets Q (eq. 7), the widest separated-form design with one branch size "
        "K for every 1x1 convolution, dense (any number of paths) or complementary "
        "(K^(L-1) = C), has its L within one of 1 + ln C (the separated form's eq. 14: "
        "L - 1 = ln C) or not.",
    ),
    "fig3_width_concave": Claim(
        "Width is concave in L at equal parameters", "Sec. 4.2, Figure 3", _FIG3,
        "the function of width w.r.t. L is concave",
        "Deterministic: every second divided difference of width over the sweep's L <= 0.",
    ),
    "fig3_non_sparsity_convex": Claim(
        "Non-sparsity is convex in L at equal parameters", "Sec. 4.2, Figure 3", _FIG3,
        "the function of non-sparsity w.r.t. L is convex",
        "Deterministic: every second divided difference of non-sparsity over L >= 0.",
    ),
    "fig3_accuracy_concave": Claim(
        "Accuracy is concave in L at equal parameters", "Sec. 4.2, Figure 3", _FIG3,
        "the function of accuracy w.r.t. L is concave",
        "Curvature 2a of a quadratic fit of accuracy on L, bootstrap over seeds; < 0 claimed.",
    ),
    "fig3_best_not_widest": Claim(
        "The best L is not the widest (sparsest) one", "Sec. 4.2, Figure 3",
        "The black dashed line denotes an extreme case that the width is the largest and the "
        "non-sparsity is the smallest, the performance however is not the best. Instead, the "
        "maximum accuracy is achieved at some L, in which the width and the non-sparsity "
        "degree reach a balance.",
        "the performance however is not the best",
        "Fitted arg-max L of accuracy minus the L of the sweep's widest design, bootstrap over "
        "seeds; supported when the interval excludes 0, not supported when it lies within "
        "+-0.5 (the arg-max rounds to the widest L).",
    ),
    "width_effect": Claim(
        "Accuracy rises with width at fixed non-sparsity", "Sec. 4.2, Figure 3",
        "The accuracy depends on both the width and the non-sparsity degree. When width "
        "becomes larger, accuracy might be higher.",
        "When width becomes larger, accuracy might be higher",
        "OLS of design-mean accuracy on log(width) and non-sparsity; the log(width) "
        "coefficient > 0 claimed.",
    ),
    "non_sparsity_effect": Claim(
        "Accuracy rises with non-sparsity at fixed width", "Sec. 4.2, Figure 3",
        "On the other hand, accuracy might be lower when non-sparsity degree becomes smaller.",
        "accuracy might be lower when non-sparsity degree becomes smaller",
        "The same OLS; the non-sparsity coefficient > 0 claimed.",
    ),
    "fig2_best_near_complementary": Claim(
        "The best bar is the (nearly) complementary one or next to it", "Sec. 4.2, Figure 2",
        _FIG2_BEST,
        "the red bars and the bars next to the red bar in Figure 2 (a) and (c)",
        "Per panel (a) and (c) of the paper's 15 designs: best mean of the red bar and its "
        "neighbours in K minus the best mean of the other bars, bootstrap over seeds.",
    ),
    "fig2b_beats_a_and_c": Claim(
        "The complementary L=3 bar beats the best of L=2 and L=4", "Sec. 4.2, Figure 2",
        "We also notice that the red bar in Figure 2 (b), satisfying the complementary "
        "condition performs better than the best results in Figure 2 (a) and (c).",
        "satisfying the complementary condition performs better than the best results",
        "Mean of panel (b)'s red bar minus the best mean of panels (a) and (c), bootstrap "
        "over seeds.",
    ),
    "fig2_denser_beats_sparser": Claim(
        "At fixed L, a denser kernel beats a sparser one", "Sec. 4.2, Figure 2 (green bars)",
        "With L being fixed, the kernel is more sparse with smaller K. It can be seen that the "
        "denser kernel leads to higher performance.",
        "It can be seen that the denser kernel leads to higher performance",
        "Within each panel, each sparse (green) bar against the next larger K: mean of the "
        "differences, over seeds (pooled) and over the pairs.",
    ),
    "balance_condition": Claim(
        "Balanced blocks beat unbalanced ones at equal parameters", "Sec. 3.2, eq. 11",
        "As we empirically validate in Section 4.3, under the same number of parameters, an "
        "IGCV2 block satisfying such a balance condition leads to the maximum width and "
        "consistently superior performance: the best or nearly best.",
        "consistently superior performance: the best or nearly best",
        "Balanced (balance deviation <= 1.25) minus unbalanced dense separated-form designs "
        "at equal L and parameters, over seeds (pooled) and over the groups.",
    ),
    "table2_igcv2_vs_xception": Claim(
        "IGCV2 beats Xception on plain8 at each budget", "Sec. 4.3, Table 2",
        "It can be seen that our networks consistently perform better than Xception on both "
        "CIFAR-10 and CIFAR-100 datasets.",
        "our networks consistently perform better than",
        "The paper's three pairs (IGCV2 C144/256/361 vs Xception C64/96/128): mean difference "
        "over seeds (pooled) and over the pairs.",
    ),
    "table3_igcv2_vs_xception": Claim(
        "IGCV2* beats Xception on res20 at fewer parameters", "Sec. 4.3, Table 3",
        "We can see that our network with fewer number of parameters, performs better than "
        "Xception, which shows the powerfulness of IGCV2 block.",
        "our network with fewer number of parameters, performs better than Xception",
        "The paper's three rows (IGCV2* C216/304/416 vs Xception C58/71/83).",
    ),
    "table3_igcv2_vs_igcv1": Claim(
        "IGCV2* beats IGCV1 on res20 at fewer parameters", "Sec. 4.4, Table 3",
        "In addition, the comparison over 20-layer network shown in Table 3 verifies that our "
        "network IGCV2 with smaller model size as well as less computation complexity, is able "
        "to achieve better performance under various widths.",
        "is able to achieve better performance under various widths",
        "The paper's three rows (IGCV2* C216/304/416 vs IGCV1 C96/126/150).",
    ),
    "table4_igcv2_vs_xception": Claim(
        "IGCV2 C64 beats Xception C35 at depths 8, 20, 26", "Sec. 4.3, Table 4",
        "Our IGCV2 (C64) network performs better than Xception (C35) with smaller numbers of "
        "parameters and smaller or similar computation complexity.",
        "Our IGCV2 (C64) network performs better than Xception (C35)",
        "The paper's three depths, IGCV2 (C64) minus Xception (C35).",
    ),
    "table5_igcv2ii_best": Claim(
        "IGCV2 II (balanced) beats IGCV1 and IGCV2 I at each budget", "Sec. 4.4, Table 5",
        "The results given in Table 5 show ... (ii) that the second design performs the best, "
        "which stems from the better satisfaction with the balance condition.",
        "that the second design performs the best",
        "The paper's three budgets: IGCV2 II minus the better of IGCV1 and IGCV2 I.",
    ),
    "table6_igcv2_vs_igcv1": Claim(
        "IGCV2 C80 beats IGCV1 C48 at depths 8, 20, 26", "Sec. 4.4, Table 6",
        "The results over CIFAR-100 and Tiny ImageNet are given in Table 6, showing superior "
        "performance of our network over IGCV1, which demonstrates the effectiveness of IGCV2 "
        "block.",
        "showing superior performance of our network over IGCV1",
        "The paper's three depths, IGCV2 (C80) minus IGCV1 (C48).",
    ),
}

#: Claims about the design space alone (no accuracy): reported once (analysis.claims.eq14), never a
#: verdict of a sweep's family.
DESIGN_SPACE = ("eq14_widest_L",)
#: The claims a sweep's records test.
DATA_CLAIMS = tuple(k for k in CLAIMS if k not in DESIGN_SPACE)
