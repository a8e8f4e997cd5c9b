"""Which design each zero-cost score picks in a space no table trained (docs/proxies.md).

Nothing has trained every design under 0.65M parameters, yet a user still asks what the
scores say there: which design would synflow pick, and does the paper's theory agree? This
block answers from a scores export alone (``analysis.proxies.ranks.write_scores``)::

    python -m analysis.proxies.picks runs/zc-plain8-650k --export docs/proxies/zc-p650k.csv \\
        --tag p650k --mark plain8-c432-k1.g4.g4 --update docs/proxies.md

(``--export`` first writes the zc run directory's export, then reports from it, so the doc
is what the committed file gives.)

For each score: its best k designs by the mean over initialisation seeds (the highest;
the lowest for balance deviation, whose optimum, eq. 11's balance, is its minimum), Kendall
tau-b of its design means against the theory score's over every design, and the rank of
each ``--mark``\\ ed design (e.g. what a sweep measured best). A pick is a prediction, not a
result: the block says so. Latency is left out (a cost of running a design, not a claim
about its accuracy). Bad input: one line, exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import scipy.stats as sps

from analysis.cli import ArgumentParser, fail
from analysis.proxies.ranks import exported, read_scores
from analysis.proxies.report import kind_of, plural, repo_relative
from evaluators.scores import PAPER, PROXIES

#: The scores a pick is shown for, in the report's order (latency left out: see above).
PICKED = (*PROXIES, "params", "flops", *PAPER)
LOWER_IS_BETTER = frozenset({"balance_deviation"})
TOP_K = 3


def picks(scores: pd.DataFrame, *, k: int = TOP_K,
          marks: Sequence[str] = ()) -> pd.DataFrame:
    """One row per score that varies over the designs: ``score``, ``picks`` (its best k
    design ids, best first; ties in id order), ``tied`` (designs sharing the best value),
    ``tau_theory`` (Kendall tau-b of the design means against theory's), and
    ``rank:<design>`` for each mark (1 = the score's best; None where the score failed).

    >>> s = pd.DataFrame({"design_id": ["a", "b", "c"], "seed": 0,
    ...                   "synflow": [1.0, 3.0, 2.0], "theory": [0.1, 0.3, 0.2]})
    >>> row = picks(s, k=2, marks=["c"]).to_dict("records")[0]
    >>> row["picks"], row["tau_theory"], row["rank:c"]
    (['b', 'c'], 1.0, 2)
    """
    means = scores.groupby("design_id").mean(numeric_only=True).drop(columns="seed",
                                                                      errors="ignore")
    missing = [m for m in marks if m not in means.index]
    if missing:
        raise ValueError(f"--mark {missing[0]}: not among the {len(means)} scored designs")
    rows = []
    for name in [n for n in PICKED if n in means.columns]:
        col = means[name].dropna()
        if col.nunique() < 2:
            continue
        ascending = name in LOWER_IS_BETTER
        order = col.sort_values(ascending=ascending, kind="stable")
        rank = order.rank(ascending=ascending, method="min")
        row = {"score": name, "picks": list(order.index[:k]),
               "tied": int(col.eq(order.iloc[0]).sum())}
        if "theory" in means.columns and name != "theory":
            x, y = col.align(means["theory"].dropna(), join="inner")
            row["tau_theory"] = float(sps.kendalltau(x, y).statistic)
        else:
            row["tau_theory"] = float("nan")
        for m in marks:
            row[f"rank:{m}"] = int(rank[m]) if m in rank.index else None
        rows.append(row)
    return pd.DataFrame(rows)


def picks_block(scores_path: str | Path, *, k: int = TOP_K, marks: Sequence[str] = ()) -> str:
    """The markdown of the block: what was scored, the table of picks, the caveat."""
    sc = read_scores(scores_path)
    table = picks(sc, k=k, marks=marks)
    n = sc["design_id"].nunique()
    n_seeds = sc["seed"].nunique()
    fid = ""
    if Path(scores_path).is_file():
        fids = pd.read_csv(scores_path, usecols=["fidelity"])["fidelity"].unique()
        fid = f" (fidelity `{fids[0]}`)" if len(fids) == 1 else ""
    head = ["score", "kind", f"best {k} by mean score", "tau with theory",
            *[f"rank of `{m}`" for m in marks]]
    lines = [
        f"Scores `{repo_relative(scores_path)}`{fid}: {n} designs x "
        f"{plural(n_seeds, 'initialisation seed')}. Each score's best {k} designs by its mean over "
        "the seeds (highest first; lowest for balance deviation), Kendall tau-b of its "
        f"design means against the theory score's over all {n} designs"
        + (", and the rank of each marked design (1 = the score's pick; of "
           f"{n})" if marks else "")
        + ". Predictions from scores at initialisation, not trained results.",
        "",
        "| " + " | ".join(head) + " |",
        "| --- | --- | --- | ---: |" + " ---: |" * len(marks),
    ]
    for r in table.to_dict("records"):
        tau = "" if pd.isna(r["tau_theory"]) else f"{r['tau_theory']:+.2f}"
        cells = [f"`{r['score']}`", kind_of(r["score"]),
                 ", ".join(f"`{d}`" for d in r["picks"])
                 + (f" ({r['tied']} tie at the best)" if r["tied"] > 1 else ""), tau,
                 *["-" if r[f"rank:{m}"] is None else str(r[f"rank:{m}"]) for m in marks]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from analysis.doc_blocks import update_doc

    p = ArgumentParser(prog="python -m analysis.proxies.picks",
                       description="Each zero-cost score's picks in a space without a table.")
    p.add_argument("scores", help="a scores export (CSV) or a zc run directory")
    p.add_argument("--tag", required=True, help="the block is <TAG>-picks, e.g. p650k")
    p.add_argument("--k", type=int, default=TOP_K, help=f"picks per score ({TOP_K})")
    p.add_argument("--mark", nargs="+", default=[], metavar="ID",
                   help="show the rank of these designs under every score")
    p.add_argument("--export", help="first export SCORES (a zc run directory) to this CSV")
    p.add_argument("--update", help="rewrite the block in this markdown file")
    args = p.parse_args(argv)
    if args.k < 1:
        return fail(p.prog, ValueError(f"--k {args.k}: give a positive number of picks"))
    try:
        scores = exported(args.scores, args.export)
        text = picks_block(scores, k=args.k, marks=args.mark)
        if args.update:
            changed = update_doc(args.update, {f"{args.tag}-picks": text})
            print(f"{args.update}: {'updated' if changed else 'unchanged'}")
        else:
            print(text)
    except (OSError, ValueError) as exc:
        return fail(p.prog, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
