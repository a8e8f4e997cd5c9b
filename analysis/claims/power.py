"""Power before compute: how many seeds per design resolve each claim, and what they cost.

For a claim tested over seeds, the measured standard error of its effect at the seeds it
has (``Estimate.se``, ``dof``, ``seeds``) scales as 1 / sqrt(n) with n seeds per design
(and its Welch degrees of freedom as n - 1; from contrasts.PAIR_MIN_SEEDS shared seeds on,
paired by index: the variance less the seed index's share, contrasts.SEED_SHARE, at n - 1
dof). A claim *resolves* at n when, with probability POWER,

- a true effect of the smallest size of interest (verdicts.SESOI, in the claim's units) is
  decided: (t_{1 - alpha/(2m)} + t_{POWER}) * se(n) <= SESOI, at the Bonferroni level over
  the family's m tested verdicts (Holm's first step: any later step is at least as lenient);
- a true effect of zero is called 'equivalent': (t_{1 - alpha/m} + t_{(1 + POWER)/2}) * se(n)
  <= SESOI (TOST at alpha / m per side, as verdicts.adjust_family decides it).

An intersection-union claim (every group must pass) asks each of its k groups for power
POWER^(1/k), at the largest group standard error. For the arg-max claim (margin +-0.5 in L)
"decided" means a true gap of one L step found, "within" a gap of zero found within the margin.

Sequential seeds. The number of seeds is fixed in advance, from this analysis (the largest n
over a sweep's claims, capped): the sweep runs those seeds and the verdicts are computed
once, at the end. One look at the data, so the family's error rates are those of a single
test; running seeds "until the verdict resolves" and testing after each would inflate them
(a group-sequential design would need alpha spending and a bootstrap recomputed at each
look, for a saving of perhaps a fifth of the seeds). ``studies/run.py --preset P
--seeds-for-power`` plans the fixed n (``--dry-run`` shows it with its time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.claims.contrasts import PAIR_MIN_SEEDS, SEED_SHARE
from analysis.claims.verdicts import SEEDS, Verdict

POWER = 0.8
ALPHA = 0.05
CAP = 64  # seeds per design beyond which --seeds-for-power leaves a claim out (the plan's cap)
SEARCH = 1000  # the most seeds per design the analysis computes (beyond: "> 1000")


@dataclass(frozen=True)
class Need:
    """Seeds per design that resolve one claim of one sweep."""

    claim: str
    sweep: str
    m: int  # tested verdicts in the family
    effect: float
    se: float  # at ``seeds``
    seeds: int
    decide: int  # seeds per design to decide a true effect of the SESOI (SEARCH + 1: more)
    within: int  # seeds per design to call a true zero effect equivalent
    decide_at: float  # the true effect to decide (the SESOI; one L step for the arg-max)
    source: str  # where the variance comes from

    @property
    def resolve(self) -> int:
        """Seeds per design for both (SEARCH + 1 when beyond the search)."""
        return max(self.decide, self.within)


def se_at(se: float, dof: float, seeds: int, n: int) -> tuple[float, float]:
    """The standard error and dof at n seeds per design, paired by index when n allows."""
    s = se * math.sqrt(seeds / n)
    d = max(1.0, dof * (n - 1) / max(1, seeds - 1)) if math.isfinite(dof) else math.inf
    if n >= PAIR_MIN_SEEDS:
        return s * math.sqrt(1.0 - SEED_SHARE), float(n - 1)
    return s, d


def seeds_needed(se: float, dof: float, seeds: int, *, decide_at: float, within: float,
                 m: int, groups: int = 1, two_sided_within: bool = False,
                 power: float = POWER, alpha: float = ALPHA, cap: int = SEARCH) -> tuple[
                     int, int]:
    """(seeds to decide a true effect of ``decide_at``, seeds to find a zero effect within
    +-``within``), each the smallest n >= 2 that does so with probability ``power`` (per
    group: power^(1/groups)); cap + 1 when none up to ``cap`` does.

    ``two_sided_within``: the no-effect verdict is a two-sided interval at alpha / m inside
    the margin (the arg-max claim), not a TOST at alpha / m per side.

    >>> seeds_needed(0.01, 4.0, 3, decide_at=0.01, within=0.01, m=1)
    (21, 23)
    """
    from scipy import stats as st

    if not (math.isfinite(se) and se > 0 and seeds >= 2):
        return cap + 1, cap + 1
    p = power ** (1.0 / max(1, groups))
    a_dec = 1.0 - alpha / (2 * m)
    a_in = 1.0 - (alpha / (2 * m) if two_sided_within else alpha / m)

    ns = np.arange(2, cap + 1)
    sd = np.array([se_at(se, dof, seeds, int(n)) for n in ns])  # (se, dof) per n

    def first(size: float, q: float, beta: float) -> int:
        ok = (st.t.ppf(q, sd[:, 1]) + st.t.ppf(beta, sd[:, 1])) * sd[:, 0] <= size
        return int(ns[np.argmax(ok)]) if ok.any() else cap + 1

    return first(decide_at, a_dec, p), first(within, a_in, 0.5 + p / 2.0)


def needs(sweep: str, verdicts: list[Verdict], *, source: str = "") -> list[Need]:
    """The seeds each seed-unit verdict of one family needs (others: more designs, not more
    seeds, and not listed)."""
    fam = [v for v in verdicts if v.tested and math.isfinite(v.p_value)]
    m = len(fam)
    out = []
    for v in fam:
        e = v.estimate
        if e is None or e.unit != SEEDS:
            continue
        if math.isfinite(v.sesoi):
            decide_at, within, two = v.sesoi, v.sesoi, False
        elif math.isfinite(v.margin):  # the arg-max: one L step away, or within the margin
            decide_at, within, two = 2.0 * v.margin, v.margin, True
        else:
            continue
        dec, win = seeds_needed(e.se, e.dof, e.seeds, decide_at=decide_at, within=within, m=m,
                                groups=e.groups, two_sided_within=two)
        out.append(Need(v.claim, sweep, m, v.effect, e.se, e.seeds, dec, win, decide_at,
                        source or f"{sweep}'s {e.seeds} seeds"))
    return out


def hours(design_ids: list[str], fidelity_config: dict, records: pd.DataFrame | None,
          extra_seeds: int, *, slots: int = 2) -> tuple[float, float]:
    """(trial-hours, wall hours on ``slots`` parallel slots) of ``extra_seeds`` more seeds of
    every design, from the cost model (evaluators.cost_model) with the committed calibration
    of this machine (benchmarks/results/cost_model_cpu.json) rescaled to ``records`` (the
    measured trials of the rung), as studies.estimate rescales a running sweep's."""
    from evaluators.cost_model import predict_seconds, refit
    from studies.estimate import makespan

    if extra_seeds <= 0:
        return 0.0, 0.0
    cal = calibration(fidelity_config)
    if records is not None and len(records):
        cal = refit(cal, records.to_dict("records"))
    per = [predict_seconds(d, fidelity_config, "cifar10", cal) for d in design_ids]
    trials = per * extra_seeds  # seed-major, as a grid sweep runs them
    return sum(trials) / 3600.0, makespan(trials, slots) / 3600.0


def calibration(fidelity_config: dict):
    """The committed calibration of the fast path at the fidelity's resolution."""
    import json
    from pathlib import Path

    from evaluators.cost_model import Calibration

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / \
        "cost_model_cpu.json"
    cals = json.loads(path.read_text())["calibrations"]
    key = (f"fast|{fidelity_config.get('resolution') or 32}px|batch "
           f"{fidelity_config.get('batch_size', 64)}|{fidelity_config.get('threads') or 1} "
           "threads")
    if key not in cals:
        raise ValueError(f"no committed calibration {key!r} in {path.name}; have {list(cals)}")
    return Calibration.from_dict(cals[key])
