"""The answer of a time-budgeted sweep: designs per rung, rank agreement between rungs,
the best design with a 95% Clopper-Pearson interval of its test accuracy, and every design
of the space as a :class:`SpaceModel` measures or predicts it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from evaluators.catalog import DATASETS
from evaluators.cost_model import trial_shape
from studies import halving as hv
from studies.estimate import fmt_seconds
from studies.plan import Plan
from studies.rungs import Rung, n_designs, rung_records, rung_words
from studies.store import RecordStore

CONFIDENCE = 0.95


@dataclass(frozen=True)
class SpaceModel:
    """How the time-budgeted sweep predicts the designs it did not train. Studies import no
    analysis (data flows one way), so the command line (``studies/run.py``) builds it from
    ``analysis.table.space_answer``: the surrogate over committed zero-cost scores."""

    #: (design ids, dataset) -> (their committed zero-cost scores or None, the file's name)
    scores: Callable[..., tuple[Any, str | None]]
    #: (ok records at one fidelity, dataset, scores) -> (a fitted model or None, ...)
    fit: Callable[..., tuple[Any, ...]]
    #: (candidates, n, records, *, dataset, scores, seed) -> the design ids to train next
    pick: Callable[..., list[str]]
    #: (candidates, records, *, dataset, scores, scores_source, seed) -> the space's answer
    answer: Callable[..., dict[str, Any]]



def summarise(rungs: list[Rung], store: RecordStore, plan: Plan,
              skipped: dict[str, float]) -> dict[str, Any]:
    """What the sweep found: per rung the designs planned, trained (ok, failed, missing),
    its rank agreement with the rung below; the best design of the highest rung with an ok
    record, its test accuracy and interval; the runners-up."""
    from scipy import stats

    per_rung, below = [], None
    best = None
    for rung in rungs:
        records = rung_records(store, rung, plan)
        ranked = hv.rank_designs(records)
        row: dict[str, Any] = {
            "ladder": rung.ladder, "fidelity": rung.fidelity.name,
            "words": rung_words(rung.fidelity), "decided": rung.decided,
            "designs": len(rung.designs), "trials": len(rung.designs) * len(plan.seeds),
            "ok": sum(r.get("status") == "ok" for r in records),
            "failed": sum(r.get("status") != "ok" for r in records),
            "wall_s": sum(float(r.get("wall_s") or 0) for r in records),
        }
        row["missing"] = row["trials"] - row["ok"] - row["failed"]
        if below is not None:
            common = [d for d, _, _ in ranked if d in below]
            if len(common) >= 3:
                rho = stats.spearmanr([below[d] for d in common],
                                      [dict((d, v) for d, v, _ in ranked)[d] for d in common])
                row["spearman_vs_below"] = {"n": len(common), "rho": float(rho.statistic)}
        below = {d: v for d, v, _ in ranked}
        per_rung.append(row)
        if ranked:
            best = (rung, records, ranked)
    answer: dict[str, Any] = {"rungs": per_rung, "skipped_memory": skipped,
                              "candidates": len(plan.design_ids),
                              "chance": 1 / DATASETS[plan.dataset].classes}
    if best is not None:
        rung, records, ranked = best
        answer["best"] = _entry(ranked[0], rung, records, stats)
        answer["runners_up"] = [_entry(r, rung, records, stats) for r in ranked[1:3]]
    return answer

def _entry(ranked: tuple[str, float, int], rung: Rung, records: list[dict[str, Any]],
           stats: Any) -> dict[str, Any]:
    """A design's val and test accuracy at a rung, with the test's binomial interval."""
    design, val, seeds = ranked
    oks = [r for r in records if r["design_id"] == design and r.get("status") == "ok"]
    n_test = int(rung.fidelity.test_size or DATASETS[oks[0]["dataset"]].test_size)
    tests = [float(r["test_acc"]) for r in oks if r.get("test_acc") is not None]
    entry: dict[str, Any] = {"design_id": design, "rung": rung.ladder,
                             "fidelity": rung.fidelity.name, "val_acc": val, "seeds": seeds,
                             "val_images": trial_shape(rung.fidelity.to_dict(),
                                                       oks[0]["dataset"]).val_images,
                             "params": oks[0].get("params")}
    if tests:
        # Seeds share the test images: the interval is of the test sample (Clopper-Pearson
        # on the pooled counts), not of seed-to-seed spread.
        k = sum(round(t * n_test) for t in tests)
        ci = stats.binomtest(k, n_test * len(tests)).proportion_ci(CONFIDENCE, "exact")
        entry.update(test_acc=sum(tests) / len(tests), test_images=n_test,
                     test_ci=[float(ci.low), float(ci.high)])
    return entry

def write_report(answer: dict[str, Any], out: TextIO) -> None:
    """The summary: designs per rung, the best design with its interval."""
    skipped = answer.get("skipped_memory") or {}
    out.write(f"time budget {fmt_seconds(answer['time_budget_s'])}, used "
              f"{fmt_seconds(answer['seconds'])}: {answer['candidates']} candidate designs"
              + (f", {len(skipped)} skipped for memory ("
                 + ", ".join(f"{d} {b / 2**30:.1f} GB" for d, b in skipped.items()) + ")"
                 if skipped else "") + "\n")
    for r in answer["rungs"]:
        agree = r.get("spearman_vs_below")
        out.write(f"  rung {r['ladder']} ({r['words']}): {n_designs(r['designs'])} "
                  f"({r['decided']})"
                  f": {r['ok']} ok, {r['failed']} failed, {r['missing']} not finished"
                  + (f"; rank agreement with the rung below: Spearman {agree['rho']:.2f} over "
                     f"{agree['n']} designs" if agree else "") + "\n")
    too_long = answer.get("too_long") or []
    if too_long:
        out.write(f"  not trained: {n_designs(len(too_long))} predicted over "
                  f"{fmt_seconds(answer['max_trial_s'])} a trial (a quarter of the budget)\n")
    best = answer.get("best")
    if best is None:
        out.write("no design trained in the time: the answer is predicted only (below)\n")
        write_space(answer.get("space"), out)
        return
    out.write(f"best: {_entry_line(best)}\n")
    for r in answer.get("runners_up", []):
        out.write(f"  then: {_entry_line(r)}\n")
    out.write(f"  (chosen by validation accuracy on {best['val_images']:,} images; the test "
              f"accuracy, not used to choose, with its {CONFIDENCE:.0%} Clopper-Pearson "
              "interval over the test images)\n")
    chance = answer.get("chance")
    if chance is not None and "test_ci" in best and best["test_ci"][0] <= chance:
        # A ranking of nets that learned nothing is noise: say so rather than name a winner.
        out.write(f"  at chance: the best design's test interval reaches {chance:.0%}, the "
                  "accuracy of guessing; its rungs trained too little to rank these designs "
                  "(give more time, a smaller --budget, or fewer designs)\n")
    write_space(answer.get("space"), out)


def write_space(space: dict[str, Any] | None, out: TextIO) -> None:
    """Every candidate design, best first: measured (rung fidelity, seeds, 95% interval of
    val_acc) or predicted (marked so, with its interval, or a zero-cost rank)."""
    if not space:
        return
    out.write(f"the whole space, {space['candidates']} designs at "
              f"{space.get('reference_words') or space['reference'] or 'no rung'}: "
              f"{space['measured']} measured, "
              f"{space['predicted']} predicted"
              + (f" ({space['method']})" if space.get("method") else "") + "\n")
    held = space.get("heldout")
    if held:
        covered = (f"{held['covered']} of {held['designs']} measured designs" if
                   held.get("covered") is not None else "not computed")
        tau = f"{held['kendall']:+.2f}" if held.get("kendall") is not None else "undefined"
        out.write(f"  held out ({held['folds']} folds): the surrogate's 95% interval covered "
                  f"{covered}; Kendall tau {tau}\n")
    for row in space["designs"]:
        out.write(f"  {row['rank']:>3}. {_space_line(row)}\n")


def _space_line(row: dict[str, Any]) -> str:
    if row["val_acc"] is None:
        zc = ", ".join(f"{k} {v:g}" for k, v in (row.get("zc") or {}).items())
        return f"{row['design_id']}  predicted: not trained" + (f", by {zc}" if zc else "")
    lo_hi = (f" [{row['interval'][0]:.3f}, {row['interval'][1]:.3f}]" if row.get("interval")
             else "")
    if row["kind"] == "measured":
        seeds = len(row["seeds"])
        return (f"{row['design_id']}  measured: val {row['val_acc']:.3f}{lo_hi}, "
                f"{seeds} seed{'s' * (seeds > 1)}")
    return f"{row['design_id']}  predicted: val {row['val_acc']:.3f}{lo_hi}"

def _entry_line(e: dict[str, Any]) -> str:
    test = ""
    if "test_acc" in e:
        lo, hi = e["test_ci"]
        test = (f", test {e['test_acc']:.3f} [{lo:.3f}, {hi:.3f}] on {e['test_images']:,} "
                "images")
    seeds = f", {e['seeds']} seeds" if e["seeds"] > 1 else ""
    return f"{e['design_id']} at rung {e['rung']}: val {e['val_acc']:.3f}{test}{seeds}"


def whole_space(answer: dict[str, Any], plan: Plan, ladder: list[Any], store: RecordStore,
                err: TextIO, space: SpaceModel) -> None:
    """``answer["space"]``: every candidate design measured or predicted by ``space``. The
    sweep's answer stands without it if it fails."""
    import numpy as np

    from studies.data_check import one_line

    names = {f.name for f in ladder}
    records = [r for r in store.records() if r.get("fidelity") in names]
    ids = list(plan.design_ids)
    try:
        scores, source = space.scores(ids, plan.dataset)
        whole = space.answer(ids, records, dataset=plan.dataset, scores=scores,
                             scores_source=source, seed=plan.sampler_seed)
    except (ValueError, KeyError, np.linalg.LinAlgError) as e:
        err.write(f"the whole space: no predictions ({one_line(e)[:200]})\n")
        return
    at = next((i for i, f in enumerate(ladder) if f.name == whole["reference"]), None)
    whole["reference_words"] = (f"rung {at} ({rung_words(ladder[at])})" if at is not None
                                else "no rung")
    answer["space"] = whole
