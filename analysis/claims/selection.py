"""Which records a claim test compares: ok rows, metric, equal-parameter groups, design picks.

"At about equal params" is made concrete here, once, for every claim: designs of the same net
and depth whose parameter counts lie within a factor (1 + param_tol) of the largest one in their
group (greedy, from the top: sweeps put their designs just under a budget).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.claims.code_groups import fidelity_base
from evaluators.fidelity import FIDELITIES

#: The fidelity ladder, cheapest first (for ordering pairs and figures): its one owner is
#: evaluators.fidelity (torch-free), whose registry lists the rungs in that order.
FIDELITY_ORDER = tuple(FIDELITIES)
DENSE_TOL = 1e-9
#: Designs compare only within one net template and depth (the equal-parameter groups).
GROUP_KEYS = ["net", "depth"]
#: describe()["family"] of the paper's recommended block, IGCV2 II: a channel-wise 3x3 then
#: group 1x1 convolutions (IGCV2*(Cx) of Table 1 is this family too).
IGCV2 = ("igcv2",)
#: The separated form at any L: IGCV2 II and its L = 2 member with a dense 1x1, Xception.
#: Figures 2 and 3 and the balance condition are about this form (Sec. 3.2, 4.2).
SEPARATED = (*IGCV2, "xception")


def fidelity_rank(name: str) -> tuple[int, str]:
    """Sort key placing the known fidelities in ladder order, unknown ones after, by name;
    a fidelity split by training code (``cpu [code x]``, analysis.claims.code_groups) at its own."""
    base = fidelity_base(name)
    return (FIDELITY_ORDER.index(base) if base in FIDELITY_ORDER else len(FIDELITY_ORDER), name)


def ok_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows that enter fits: status 'ok' and a finite metric. Failed records never do."""
    return df[df["status"].eq("ok") & np.isfinite(df[metric].astype(float))]


def pick_metric(df: pd.DataFrame, metric: str | None = None) -> str:
    """The accuracy column to test: the given one, else test_acc when every ok row has it.

    DESIGN.md reports on test and searches on validation; a fidelity that skips the test split
    (smoke) falls back to val_acc rather than mixing the two.
    """
    if metric is not None:
        return metric
    ok = df[df["status"].eq("ok")]
    return "test_acc" if len(ok) and ok["test_acc"].notna().all() else "val_acc"


def slices(df: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(fidelity, dataset, rows) for every combination present, in ladder order, except
    those that measure no accuracy (:func:`measures_accuracy`): a ``zc`` slice of zero-cost
    scores has nothing for a claim, a front or a figure to test."""
    combos = df[["fidelity", "dataset"]].drop_duplicates().itertuples(index=False)
    for fid, ds in sorted(combos, key=lambda c: (fidelity_rank(str(c[0])), str(c[1]))):
        rows = df[df["fidelity"].eq(fid) & df["dataset"].eq(ds)]
        if measures_accuracy(rows):
            yield str(fid), str(ds), rows


def measures_accuracy(rows: pd.DataFrame) -> bool:
    """False for records that finished ("ok") without any accuracy: zero-cost records
    (evaluators.zero_cost), scores at initialisation. A slice whose trainings all failed
    still measures accuracy (its claims are 'inconclusive', n = 0)."""
    ok = rows[rows["status"].eq("ok")]
    cols = [c for c in ("val_acc", "test_acc") if c in ok.columns]
    if ok.empty or not cols:
        return True
    acc = ok[cols].apply(pd.to_numeric, errors="coerce")
    return bool(np.isfinite(acc.to_numpy(float)).any())


def params_column(df: pd.DataFrame, tol: float = 0.25) -> str:
    """The parameter count 'equal params' refers to: of ``paper_params`` (all blocks, the
    paper's Tables 3, 4, 6), ``block_params`` (one block, Tables 2, 5) and ``params`` (the
    whole network: what ``--budget`` and the presets' FIG_BUDGET hold equal) that every row
    has, the one that splits the designs into the fewest equal-parameter groups (ties in that
    order). The paper holds block weights equal; a sweep designed at equal whole-net params
    is then not split by its block counts, which on small plain8 nets differ by half as
    BatchNorm, stem and classifier take an L-dependent share of the budget."""
    designs = df.drop_duplicates("design_id") if "design_id" in df else df
    best, fewest = "params", None
    for col in ("paper_params", "block_params", "params"):
        if col in designs and len(designs) and designs[col].notna().all():
            n = int(param_bins(designs[col].astype(float), tol).max()) + 1
            if fewest is None or n < fewest:
                best, fewest = col, n
    return best


def param_bins(values: pd.Series, tol: float) -> pd.Series:
    """Label groups of about equal parameter count: each within (1 + tol) of its largest."""
    labels = pd.Series(-1, index=values.index, dtype=int)
    top, label = None, -1
    for idx, v in values.sort_values(ascending=False).items():
        if top is None or v * (1.0 + tol) < top:
            top, label = v, label + 1
        labels[idx] = label
    return labels


def designs(rows: pd.DataFrame, metric: str, param_tol: float) -> pd.DataFrame:
    """One row per design of a (fidelity, dataset) slice, with its seed values and mean.

    Adds ``values`` (np.ndarray of the metric per seed), ``seed_ids`` (their seeds, when
    the rows have a ``seed`` column), ``mean``, ``n_seeds``, ``pcol``
    (the parameter count used for grouping; its column name in ``pcol_name``) and ``bin``
    (equal-parameter group within the design's net and depth).
    """
    pcol = params_column(rows, param_tol)
    g = rows.groupby("design_id", sort=True)
    out = g.first()
    out["values"] = g[metric].apply(lambda s: s.to_numpy(dtype=float))
    if "seed" in rows:  # aligned with values: contrasts pair seeds by index on these
        out["seed_ids"] = g["seed"].apply(lambda s: s.to_numpy())
    out["mean"] = out["values"].apply(np.mean)
    out["n_seeds"] = out["values"].apply(len)
    out["pcol"] = out[pcol].astype(float)
    out["pcol_name"] = pcol
    out["bin"] = -1
    for _, grp in out.groupby(GROUP_KEYS, dropna=False):
        out.loc[grp.index, "bin"] = param_bins(grp["pcol"], param_tol)
    return out.reset_index()


def family_matches(family: pd.Series, *patterns: str) -> pd.Series:
    """Case-insensitive glob of the family column against any of the patterns."""
    pats = [p.lower() for p in patterns]
    names = family.fillna("").astype(str).str.lower()
    return names.map(lambda f: any(fnmatch.fnmatchcase(f, p) for p in pats)).astype(bool)


def first_stage(K: object) -> list[int]:
    """The first stage's branch sizes from describe()["K"] (one list per stage; a flat list
    is taken as one stage). Entries that are not integers are dropped."""
    k = list(K) if isinstance(K, list | tuple) else []
    if k and isinstance(k[0], list | tuple):
        k = list(k[0])
    return [int(e) for e in k if isinstance(e, int | np.integer)]


def is_dense(d: pd.DataFrame) -> pd.Series:
    """The composed kernel connects every (output, input) pair."""
    return d["density"].astype(float) >= 1.0 - DENSE_TOL


def preference(d: pd.DataFrame, *, fill_budget: bool = False) -> pd.DataFrame:
    """Designs ordered as the paper picks them for Figure 3 and Tables 2-4: a dense composed
    kernel first, then the balance condition (eq. 11), then the fewest paths per pair (nearly
    complementary), then the widest. Uses design properties only, never outcomes, so the pick
    carries no winner's curse.

    Args:
        d: designs.
        fill_budget: rank the larger parameter count right after balance (Figure 3 keeps
            #params the same: at each L the widest balanced block the budget admits).
    """
    key = pd.DataFrame(
        {
            "sparse": ~is_dense(d),
            "balance": d["balance_deviation"].astype(float).fillna(np.inf),
            "budget": -d["pcol"].astype(float) if fill_budget else 0.0,
            "paths": d["max_paths"].astype(float).fillna(np.inf),
            "narrow": -d["width"].astype(float),
        },
        index=d.index,
    )
    return d.loc[key.sort_values(list(key.columns), kind="stable").index]


@dataclass(frozen=True)
class Options:
    """Knobs shared by every claim test (see claims.check_claims)."""

    metric: str | None = None
    param_tol: float = 0.25
    balanced_max: float = 1.25
    n_boot: int = 4000
    seed: int = 0

    def rng(self) -> np.random.Generator:
        """A fresh generator per test, so a verdict does not depend on which ran before it."""
        return np.random.default_rng(self.seed)


@dataclass(frozen=True)
class Slice:
    """The designs of one (fidelity, dataset), ready for the claim tests: one row per design
    (see :func:`designs`; never empty: a slice without ok records is not tested), and the
    options."""

    fidelity: str
    dataset: str
    metric: str
    designs: pd.DataFrame
    opts: Options
