"""Do the searches that can generalise beat random order with ASHA? The ``<TAG>-search``
block of docs/benchmark.md, from the replay.json of ``benchmarks/replay.py``.

    python -m benchmarks.replay releases/igcbench-1.0.json --strategies random tpe-struct \\
        zc-tpe-struct zc-order --scores docs/proxies/zc-t10k.csv --proxy synflow theory \\
        --schedulers asha --workers 1 4 --repeats 50 --out docs/benchmark/search-t10k
    python -m analysis.replay.search_report docs/benchmark/search-t10k/replay.json --tag t10k \\
        --update docs/benchmark.md

Each strategy is compared with random order under the same scheduler and worker count, over
the same repeats (a repeat's seed draws the same recorded seed per design for every
strategy: common random numbers), by the epochs all workers completed until the table's best
design completed its last epoch. A replay proposes every design of the table, so a repeat in
which the best design was never completed (ASHA stopped it) never reaches it: it counts as
:func:`never_epochs`, the epochs of training every design to its last epoch, more than any
search of the table spends (a penalised score, as PAR scores in algorithm configuration). So
a missed best costs every strategy the same, and two repeats that both miss it tie; counting
the epochs each search spent instead would call the one that stops more trials early "fewer"
when neither reached the best. The difference of the means is given with a 95% bootstrap
interval over repeats (paired); ``fewer`` when the interval lies below 0, ``more`` above,
``not distinguishable`` when it holds 0.

The one best is often a near-tie on these tables (its margin over the next design within
the seed noise), so the block compares a second target the same way (:func:`near_block`):
the epochs until the incumbent came within the table's seed noise of the best mean val_acc
(``epochs_to_near`` of replay.json).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import stats
from analysis.cli import ArgumentParser, fail
from analysis.table.report import replay_block

BASELINE = "random"
N_BOOT = 4000


def never_epochs(doc: dict[str, Any]) -> int:
    """What a repeat that never completed the best counts: every design of the table trained
    to its last epoch, an upper bound on any replay's epochs.

    >>> never_epochs({"designs": 68, "epochs": 2})
    136
    """
    return int(doc["designs"]) * int(doc["epochs"])


def epochs_frame(doc: dict[str, Any], metric: str = "epochs_to_best") -> pd.DataFrame:
    """One row per replay: strategy, scheduler, workers, seed, reached, and ``epochs``: its
    ``metric`` (epochs to the best, or ``epochs_to_near``: to within the table's seed noise
    of it), or where it never got there :func:`never_epochs`."""
    df = pd.DataFrame(doc["runs"])
    never = never_epochs(doc)
    if (df["total_epochs"] > never).any():
        raise ValueError(f"a replay spent more than {never} epochs, every design of the table "
                         "trained fully: this replay.json is not of one table")
    reached = df[metric].notna()
    return df.assign(reached=reached, epochs=df[metric].where(reached, never).astype(float))


def compare(doc: dict[str, Any], *, baseline: str = BASELINE, n_boot: int = N_BOOT,
            seed: int = 0, metric: str = "epochs_to_best") -> pd.DataFrame:
    """Every strategy against ``baseline`` at its scheduler and worker count: repeats, how
    often each reached the best (or, with ``metric="epochs_to_near"``, came near it), mean
    epochs (as :func:`epochs_frame`) of each, the mean paired difference (strategy minus
    baseline) with its interval, and the verdict."""
    df = epochs_frame(doc, metric)
    rows = []
    rng = np.random.default_rng(seed)
    for (sched, workers), group in df.groupby(["scheduler", "workers"], sort=False):
        base = group[group["strategy"].eq(baseline)].set_index("seed")
        if base.empty:
            continue
        for strategy, g in group.groupby("strategy", sort=False):
            if strategy == baseline:
                continue
            g = g.set_index("seed")
            common = base.index.intersection(g.index)
            d = (g.loc[common, "epochs"] - base.loc[common, "epochs"]).to_numpy()
            pick = rng.integers(0, len(d), size=(n_boot, len(d)))
            lo, hi = stats.percentile_interval(d[pick].mean(axis=1))
            rank = rank_lo = rank_hi = base_rank = np.nan
            if "mean_rank_11_30" in g and g["mean_rank_11_30"].notna().all():
                r = (g.loc[common, "mean_rank_11_30"]
                     - base.loc[common, "mean_rank_11_30"]).to_numpy(float)
                rank, base_rank = (float(g.loc[common, "mean_rank_11_30"].mean()),
                                   float(base.loc[common, "mean_rank_11_30"].mean()))
                rank_lo, rank_hi = stats.percentile_interval(r[pick].mean(axis=1))
            rows.append({
                "strategy": strategy, "scheduler": sched, "workers": int(workers),
                "repeats": len(common), "reached": int(g.loc[common, "reached"].sum()),
                "baseline_reached": int(base.loc[common, "reached"].sum()),
                "epochs": float(g.loc[common, "epochs"].mean()),
                "baseline_epochs": float(base.loc[common, "epochs"].mean()),
                "difference": float(d.mean()), "lo": lo, "hi": hi,
                "verdict": "fewer" if hi < 0 else "more" if lo > 0 else "not distinguishable",
                "rank": rank, "baseline_rank": base_rank, "rank_lo": rank_lo,
                "rank_hi": rank_hi,
            })  # fmt: skip
    return pd.DataFrame(rows)


def search_block(replay_json: str | Path, *, baseline: str = BASELINE) -> str:
    """The replay's summary table, then each strategy against random order, then the plain
    answer for the structured searches."""
    doc = json.loads(Path(replay_json).read_text())
    cmp = compare(doc, baseline=baseline)
    lines = [replay_block(replay_json), "",
             f"Against `{baseline}` order with the same scheduler and workers, paired over "
             f"the same {doc['settings']['repeats']} repeats; epochs to the best design (a "
             f"repeat that never completed it counts {never_epochs(doc)}, every design trained "
             "fully: missing the best costs every strategy the same); difference = "
             "strategy minus random, 95% bootstrap interval:", "",
             "| strategy | scheduler | workers | reached (random) | epochs to best | random's "
             "| difference | verdict | rank of trials 11-30 (random's) |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    for r in cmp.itertuples(index=False):
        ranks = ("" if not np.isfinite(r.rank) else f"{r.rank:.1f} ({r.baseline_rank:.1f}); "
                 f"{r.rank - r.baseline_rank:+.1f} [{r.rank_lo:+.1f}, {r.rank_hi:+.1f}]")
        lines.append(
            f"| {r.strategy} | {r.scheduler} | {r.workers} | {r.reached} ({r.baseline_reached})"
            f" / {r.repeats} | {r.epochs:.1f} | {r.baseline_epochs:.1f} | {r.difference:+.1f} "
            f"[{r.lo:+.1f}, {r.hi:+.1f}] | {r.verdict} | {ranks} |")
    lines += ["", "Rank of trials 11-30: the mean rank in the table (0 = its best) of the "
              "designs a search trained 11th to 30th, once past TPE's startup; below "
              "random's (with the paired interval below 0) means it proposes better designs "
              "than chance, whether or not it reaches the one best sooner."]
    lines += ["", answer(cmp)]
    if doc.get("near_regret") is not None and all("epochs_to_near" in r for r in doc["runs"]):
        lines += ["", *near_block(doc, baseline)]
    return "\n".join(lines)


def near_block(doc: dict[str, Any], baseline: str = BASELINE) -> list[str]:
    """The same comparison for a design about as good as the best: the epochs until the
    incumbent's mean val_acc came within the table's seed noise of the best's."""
    near = compare(doc, baseline=baseline, metric="epochs_to_near")
    lines = [f"Near the best: the epochs until the incumbent came within {doc['near_regret']:.4f}"
             " of the best mean val_acc (the table's seed noise: the median over designs of "
             "the seeds' standard deviation), a design the table cannot tell from its best; "
             f"never counts {never_epochs(doc)} as above:", "",
             f"| strategy | scheduler | workers | got there ({baseline}) | epochs | "
             f"{baseline}'s | difference | verdict |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in near.itertuples(index=False):
        lines.append(
            f"| {r.strategy} | {r.scheduler} | {r.workers} | {r.reached} ({r.baseline_reached})"
            f" / {r.repeats} | {r.epochs:.1f} | {r.baseline_epochs:.1f} | {r.difference:+.1f} "
            f"[{r.lo:+.1f}, {r.hi:+.1f}] | {r.verdict} |")
    return [*lines, "", answer(near, question="come near the table's best", lead="",
                               verb="got there")]


def answer(cmp: pd.DataFrame, *, question: str = "reach the table's best",
           lead: str = "Mean epochs to the best: ", verb: str = "reached it") -> str:
    """The plain sentence: do the structured searches (with ASHA) ``question`` in fewer
    epochs than random order with ASHA?"""
    asha = cmp[cmp["scheduler"].eq("asha") & cmp["strategy"].str.contains("struct")]
    if asha.empty:
        return "No structured search was replayed with ASHA."
    parts = [f"{r.strategy} with {r.workers} worker{'s' if r.workers > 1 else ''}: "
             f"{_reached(r.epochs, r.reached, r.repeats, verb)} against "
             f"{_reached(r.baseline_epochs, r.baseline_reached, r.repeats, verb)} ({r.verdict})"
             for r in asha.itertuples(index=False)]
    fewer = asha["verdict"].eq("fewer")
    head = ("Yes" if fewer.all() else "No" if not fewer.any() else "Partly")
    return (f"**Does a structured search {question} in fewer epochs than random+ASHA? "
            f"{head}.** {lead}" + "; ".join(parts) + ".")


def _reached(epochs: float, reached: int, repeats: int, verb: str = "reached it") -> str:
    """'52.3 (36 of 50 reached it)', or 'never (0 of 50)' where no repeat got there."""
    if reached == 0:
        return f"never (0 of {repeats})"
    return f"{epochs:.1f} ({reached} of {repeats} {verb})"


def main(argv: Sequence[str] | None = None) -> int:
    from analysis.doc_blocks import update_doc

    p = ArgumentParser(prog="python -m analysis.replay.search_report",
                       description="The structured-search block of docs/benchmark.md.")
    p.add_argument("replay_json", help="benchmarks/replay.py's replay.json")
    p.add_argument("--tag", required=True, help="the block is <TAG>-search")
    p.add_argument("--update", help="rewrite the block of this markdown file")
    args = p.parse_args(argv)
    try:
        text = search_block(args.replay_json)
        if args.update:
            changed = update_doc(args.update, {f"{args.tag}-search": text})
            print(f"{args.update}: {'updated' if changed else 'unchanged'}")
        else:
            print(text)
    except (OSError, ValueError, KeyError) as exc:
        return fail(p.prog, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
