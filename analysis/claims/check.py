"""The paper's claims as tests over a results DataFrame: one family of verdicts per sweep.

Each claim (claim_texts.CLAIMS) quotes the sentence or equation it tests and is tested
exactly on it: Figure 2 on the paper's own 15 designs (figure2), Tables 2-6 on the paper's
own design pairs (paper_tables), Figure 3 on the sweeps a slice holds (figure3), the width,
non-sparsity and balance statements on any designs (effects). Eq. 14 is a fact of the design
space (analysis.claims.eq14), not a claim about records: no sweep tests it.

No verdict mixes training code versions: the records of a slice are grouped by the
training code that made them (analysis.claims.code_groups: the git trees of search_space/
and evaluators/ at the record's commit), codes that a committed recheck
(benchmarks/recheck.py) found to give equal records count as one, and the verdicts use one
group, the most complete (most designs, then records, then the newest); each verdict names
its code and the records left out (``training_code``, ``left_out``).

Verdicts are given per (fidelity, dataset) slice: a claim holds at the fidelity it was
measured at, not in general. The verdicts of one slice are one family: their p-values are
Holm-adjusted together (verdicts.adjust_family) and ``verdict`` is the adjusted decision;
``raw_verdict`` is the 95% interval's alone. A claim Holm does not decide whose interval
excludes every effect of the smallest size of interest (verdicts.SESOI) is 'equivalent'.
A claim the records cannot test is returned as 'inconclusive' with n = 0 and the reason
(``Verdict.tested`` is False).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pandas as pd

from analysis.claims import code_groups, selection
from analysis.claims.effects import balance, regression
from analysis.claims.figure2 import figure2
from analysis.claims.figure3 import figure3
from analysis.claims.paper_tables import paper_tables
from analysis.claims.selection import Options, Slice
from analysis.claims.texts import CLAIMS, DATA_CLAIMS, Claim
from analysis.claims.verdicts import Verdict, adjust_family, untested

TESTS = (figure3, figure2, paper_tables, regression, balance)

__all__ = ["CLAIMS", "Claim", "Verdict", "check_claims"]


def check_claims(
    df: pd.DataFrame,
    *,
    metric: str | None = None,
    param_tol: float = 0.25,
    balanced_max: float = 1.25,
    n_boot: int = 4000,
    seed: int = 0,
    equalities: Iterable[tuple[str, str, bool]] | None = None,
) -> list[Verdict]:
    """Test every claim of CLAIMS on a results DataFrame (from load_results).

    Args:
        df: one row per (design, fidelity, dataset, seed); failed rows are ignored.
        metric: accuracy column; default test_acc where every ok row has it, else val_acc.
        param_tol: designs count as 'about equal params' within a factor 1 + param_tol.
        balanced_max: a design is balanced when balance_deviation <= this (1 is exact).
        n_boot: bootstrap replicates (the adjusted intervals reach 99.6% levels: keep it
            in the thousands).
        seed: bootstrap RNG seed; the same inputs always give the same intervals.
        equalities: (code, code, equal) of rechecks (code_groups.read_equalities), the codes
            a verdict may pool; default the committed ones (code_groups.COMMITTED).

    Returns:
        At least one Verdict per claim of DATA_CLAIMS and (fidelity, dataset) slice (eq. 14,
        a fact of the design space, is analysis.claims.eq14's), each slice's verdicts
        Holm-adjusted as one family; never raises for lack of data.

    Example (needs a run directory):
        >>> from analysis import load_results, check_claims
        >>> vs = check_claims(load_results("runs/fig3"))  # doctest: +SKIP
        >>> [v.claim for v in vs if v.verdict == "supported"]  # doctest: +SKIP
    """
    opts = Options(metric, param_tol, balanced_max, n_boot, seed)
    equal = list(code_groups.committed_equalities() if equalities is None else equalities)
    out: list[Verdict] = []
    for fid, ds, rows in selection.slices(df):
        rows, code = code_groups.one_code(rows, equal)
        m = selection.pick_metric(rows, metric)
        ok = selection.ok_rows(rows, m)
        if ok.empty:
            family = [untested(c, fid, ds, "no ok records") for c in DATA_CLAIMS]
        else:
            s = Slice(fid, ds, m, selection.designs(ok, m, param_tol), opts)
            family = adjust_family([v for test in TESTS for v in test(s)])
        out += [dataclasses.replace(v, training_code=code.describe(), left_out=code.n_left_out)
                for v in family]
    return out
