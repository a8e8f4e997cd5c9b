"""What a claim test yields: an effect with intervals at any level, and the verdict made of it.

A test returns a :class:`Verdict` whose ``estimate`` can give the interval at any confidence
level. :func:`adjust_family` then treats the verdicts of one sweep as one family: it turns
each estimate into a two-sided p-value (by inverting its intervals), applies Holm's step-down
procedure, and records both decisions: ``raw_verdict`` (the 95% interval alone) and
``verdict`` (Holm-adjusted; the one to read). Deterministic verdicts (a property of the
designs, no seed noise: unit ``exact``) are outside the family.

A claim Holm does not decide is ``equivalent`` when its equivalence interval lies within
(-SESOI, +SESOI) of its smallest effect of interest: two one-sided tests (TOST), each at
0.05 / m for the family's m tested verdicts (Bonferroni, so the family's false
"equivalent" verdicts are at most 5% under any dependence), i.e. the two-sided
1 - 2 * 0.05 / m interval.

Example:
    >>> est = Estimate(0.02, lambda level: (0.02 - 0.01 * level, 0.02 + 0.01 * level), 6,
    ...                SEEDS)
    >>> v = make_verdict("width_effect", est, "cpu", "cifar10", "demo")
    >>> v.raw_verdict, (round(v.ci_low, 4), round(v.ci_high, 4))
    ('supported', (0.0105, 0.0295))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from analysis import stats
from analysis.claims.texts import CLAIMS

Interval = Callable[[float], tuple[float, float]]

#: Units of inference, named in every verdict's detail. The groups a claim compares in
#: (budgets of Table 2, depths of Table 4, pairs of Figure 2's bars ...) are named as such.
SEEDS = "seeds within designs"
DESIGNS = "designs"
GROUPS = "equal-parameter groups"
BUDGETS, WIDTHS, DEPTHS, BAR_PAIRS = "budgets", "widths", "depths", "bar pairs"
EXACT = "exact"
UNITS = (SEEDS, DESIGNS, GROUPS, BUDGETS, WIDTHS, DEPTHS, BAR_PAIRS, EXACT)
NAN = float("nan")
EQUIVALENT = "equivalent"
VERDICTS = (stats.SUPPORTED, stats.NOT_SUPPORTED, EQUIVALENT, stats.INCONCLUSIVE)
#: The smallest effect of interest in accuracy: one point (0.01). Why this size: the paper's
#: own differences between its designs (Tables 2-6, each IGCV2 row minus the best other row
#: of its group, every dataset) are 0.1-2.9 points, median 0.7, with seed sds of 0.05-0.8;
#: the differences at stake at the `cpu` rung are 0.5-2 points. Half a point would need four
#: times the seeds of one point, which for Figure 3, Table 2 and Table 5 at `cpu` is already
#: 19-57 per design (docs/reproduction.md, power). So 'equivalent' reads "no effect of a
#: point or more here": it does not contradict the paper's smaller CIFAR-10 differences
#: (Table 2: 0.3-0.4).
#: Effects in other units derive theirs from it (a curvature, a regression coefficient:
#: see the claim tests).
SESOI = 0.01


@dataclass(frozen=True)
class Estimate:
    """An effect and its interval at any confidence level.

    Attributes:
        effect: the point estimate.
        interval: level -> (low, high), two-sided.
        n: observations behind it (seed records, designs or groups: see ``unit``).
        unit: the unit of inference (SEEDS, DESIGNS, GROUPS).
        se: its standard error (NaN when unknown); with ``dof`` and ``seeds`` what the power
            analysis (analysis.claims.power) scales to other numbers of seeds.
        dof: the degrees of freedom of its interval (Welch's for seed contrasts).
        seeds: seeds per design behind it (the fewest of its designs; 0 when not seeds).
        paired: the interval pairs seeds by index across designs (contrasts.PAIR_MIN_SEEDS).
        groups: groups that must each pass (an intersection-union test), else 1.
    """

    effect: float
    interval: Interval
    n: int
    unit: str
    se: float = NAN
    dof: float = NAN
    seeds: int = 0
    paired: bool = False
    groups: int = 1


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim test at one fidelity and dataset.

    Attributes:
        claim: key of claim_texts.CLAIMS.
        verdict: the decision to read: 'supported', 'not supported' or 'inconclusive',
            Holm-adjusted within the sweep's family (equal to ``raw_verdict`` when exact).
        effect: the point estimate (units in docs/analysis.md).
        ci_low, ci_high: the raw 95% interval (the range of the values when exact).
        n: observations behind it, counted in ``unit``.
        fidelity, dataset: where it was measured ('cpu vs cpu2' for two fidelities).
        detail: what was compared, with the numbers; the reason when nothing was tested.
        unit: unit of inference: seeds within designs, designs, equal-parameter groups, or
            exact (a property of the designs).
        raw_verdict: the decision of the raw 95% interval alone.
        p_value, p_adjusted: two-sided p-value of "no effect", raw and Holm-adjusted.
        adj_level: the confidence level Holm tests this claim at within its family.
        adj_low, adj_high: the interval at ``adj_level``.
        sign: +1 / -1 when the paper claims a positive / negative effect, 0 when it claims
            only that the effect is not zero.
        margin: for two-sided claims, 'not supported' when the interval lies within
            (-margin, margin); for eq. 14, the tolerance "within one"; NaN otherwise.
        sesoi: the smallest effect of interest in the effect's units (SESOI for accuracy
            differences); 'equivalent' when Holm does not decide and the TOST interval
            (``eq_level``: 1 - 2 * 0.05 / m) lies within (-sesoi, sesoi). NaN: no
            equivalence test (exact verdicts, two-sided claims with a margin).
        eq_level, eq_low, eq_high: the TOST interval (NaN when not computed).
        training_code: the training code of the records behind it and how many there were
            (analysis.claims.code_groups.CodeChoice.describe); '' when not set.
        left_out: records of the slice left out for another training code.
    """

    claim: str
    verdict: str
    effect: float
    ci_low: float
    ci_high: float
    n: int
    fidelity: str
    dataset: str
    detail: str
    unit: str = EXACT
    raw_verdict: str = stats.INCONCLUSIVE
    p_value: float = NAN
    p_adjusted: float = NAN
    adj_level: float = NAN
    adj_low: float = NAN
    adj_high: float = NAN
    sign: int = 1
    margin: float = NAN
    sesoi: float = NAN
    eq_level: float = NAN
    eq_low: float = NAN
    eq_high: float = NAN
    training_code: str = ""
    left_out: int = 0
    estimate: Estimate | None = field(default=None, repr=False, compare=False)

    @property
    def statement(self) -> str:
        """The claim in words."""
        return CLAIMS[self.claim].statement if self.claim in CLAIMS else self.claim

    @property
    def tested(self) -> bool:
        """False when the records held nothing to test the claim on."""
        return self.n > 0


def decide(lo: float, hi: float, sign: int, margin: float = NAN) -> str:
    """The verdict of one interval: it must exclude zero (on the claimed side when sign != 0);
    'not supported' when it lies wholly on the other side, or, for a two-sided claim with a
    margin, wholly within (-margin, margin)."""
    if sign:
        return stats.verdict_rule(lo, hi, sign=sign)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return stats.INCONCLUSIVE
    if lo > 0 or hi < 0:
        return stats.SUPPORTED
    if math.isfinite(margin) and -margin < lo and hi < margin:
        return stats.NOT_SUPPORTED
    return stats.INCONCLUSIVE


def make_verdict(claim: str, est: Estimate, fidelity: str, dataset: str, detail: str, *,
                 sign: int = 1, margin: float = NAN, sesoi: float = NAN) -> Verdict:
    """A statistical verdict from an estimate (adjusted fields are filled by adjust_family).

    ``sesoi``: the smallest effect of interest in the effect's units (NaN: none, so never
    'equivalent'); the raw verdict is 'equivalent' when the 90% interval (TOST at 5%) lies
    within it and the 95% interval does not decide."""
    lo, hi = est.interval(stats.CONFIDENCE)
    raw = decide(lo, hi, sign, margin)
    if raw == stats.INCONCLUSIVE and _within(est, 1 - 2 * (1 - stats.CONFIDENCE), sesoi):
        raw = EQUIVALENT
    paired = "; seeds paired by index" if est.paired else ""
    return Verdict(claim, raw, float(est.effect), float(lo), float(hi), int(est.n), fidelity,
                   dataset, f"{detail}; unit: {est.unit}{paired}", unit=est.unit,
                   raw_verdict=raw, sign=sign, margin=margin, sesoi=sesoi, estimate=est)


def _within(est: Estimate, level: float, sesoi: float) -> bool:
    if not (math.isfinite(sesoi) and sesoi > 0):
        return False
    lo, hi = est.interval(level)
    return bool(math.isfinite(lo) and math.isfinite(hi) and -sesoi < lo and hi < sesoi)


def exact_verdict(claim: str, verdict: str, effect: float, lo: float, hi: float, n: int,
                  fidelity: str, dataset: str, detail: str, *, margin: float = NAN) -> Verdict:
    """A deterministic verdict: a property of the designs, with no seed noise to adjust."""
    return Verdict(claim, verdict, float(effect), float(lo), float(hi), int(n), fidelity,
                   dataset, f"{detail}; unit: exact (design properties, no seed noise)",
                   unit=EXACT, raw_verdict=verdict, adj_low=float(lo), adj_high=float(hi),
                   margin=margin)


def untested(claim: str, fidelity: str, dataset: str, reason: str) -> Verdict:
    """An 'inconclusive' verdict saying why the records held nothing to test."""
    return Verdict(claim, stats.INCONCLUSIVE, NAN, NAN, NAN, 0, fidelity, dataset, reason)


def adjust_family(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Holm-adjust one family (one sweep's verdicts): p-values, levels, intervals, decisions.

    The adjusted interval of a claim is its interval at the level Holm tests it at
    (1 - 0.05 / (m - rank + 1)); the adjusted decision is Holm's step-down, which also needs
    every claim with a smaller p-value to be rejected first. A rejected claim is 'supported'
    when its estimate lies on the claimed side (any side for a two-sided claim), else 'not
    supported'; a claim with a margin is 'not supported' when its adjusted interval lies
    within the margin. A claim Holm does not reject is 'equivalent' when its TOST interval
    at 1 - 2 * 0.05 / m (m: the family's tested verdicts) lies within (-sesoi, sesoi).
    """
    p = [stats.p_from_interval(v.estimate.interval) if v.estimate else NAN for v in verdicts]
    adj, rejected, level = stats.holm(p)
    m = sum(math.isfinite(x) for x in p)
    eq_level = 1.0 - 2.0 * (1.0 - stats.CONFIDENCE) / max(m, 1)
    out = []
    for v, pv, pa, rej, lev in zip(verdicts, p, adj, rejected, level, strict=True):
        if v.estimate is None:
            out.append(v)
            continue
        lo, hi = v.estimate.interval(float(lev))
        if rej:
            side = v.sign == 0 or v.sign * v.effect > 0
            verdict = stats.SUPPORTED if side else stats.NOT_SUPPORTED
        else:
            verdict = decide(lo, hi, 0, v.margin) if v.sign == 0 else stats.INCONCLUSIVE
            verdict = verdict if verdict == stats.NOT_SUPPORTED else stats.INCONCLUSIVE
        eq: dict = dict(eq_level=NAN, eq_low=NAN, eq_high=NAN)
        if math.isfinite(v.sesoi) and math.isfinite(pv):
            e_lo, e_hi = v.estimate.interval(eq_level)
            eq = dict(eq_level=eq_level, eq_low=float(e_lo), eq_high=float(e_hi),
                      detail=f"{v.detail}; TOST: [{e_lo:.3g}, {e_hi:.3g}] at {eq_level:.1%} "
                             f"against +-{v.sesoi:.3g} (SESOI)")
            if verdict == stats.INCONCLUSIVE and _within(v.estimate, eq_level, v.sesoi):
                verdict = EQUIVALENT
        out.append(dataclasses.replace(
            v, verdict=verdict, p_value=float(pv), p_adjusted=float(pa), adj_level=float(lev),
            adj_low=float(lo), adj_high=float(hi), **eq))
    return out
