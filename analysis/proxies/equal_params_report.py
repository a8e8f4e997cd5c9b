"""The equal-parameter blocks of docs/proxies.md: every score judged within pairs of designs of
equal block weights (``analysis.proxies.equal_params``), and what NASWOT is in this space.

Two commands regenerate them from committed files::

    python -m analysis.proxies.equal_params_report table releases/igcbench-1.1.json \\
        docs/proxies/zc-t40k.csv --tag t40k --update docs/proxies.md
    python -m analysis.proxies.equal_params_report sweeps docs/reproduction/*.csv \\
        --tag sweeps --update docs/proxies.md

``table`` writes ``<TAG>-within`` (each score's within-pair tau, its partial correlation
beyond width and block weights, and its across-budget tau for reference) and ``<TAG>-axis``
(NASWOT, width and latency as one axis; NASWOT split into its ReLU-count term and the
rest; how much of each score is a fixed function of the design). ``sweeps`` writes
``<TAG>-within`` for the claim sweeps' exports: the paper's quantities (computed from the
design, no zero-cost run needed) within their pairs. ``tests/test_equal_params.py``
regenerates every block and compares. Bad input: one line, exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.cli import ArgumentParser, fail
from analysis.proxies import equal_params as ep
from analysis.proxies.report import METRIC, N_BOOT, REPO
from evaluators.scores import COSTS, PAPER, PROXIES

#: The paper's quantities judged in the sweeps (constant over seeds: computed per design).
PAPER_Q = ("theory", "width", "non_sparsity", "density", "balance_deviation", "bottleneck")
#: NASWOT's two parts: B ln N_ReLU (counts channels) and log det(K_H / N_ReLU).
NASWOT_PARTS = ("naswot_relu_term", "naswot_rest")
ONE_AXIS = ("naswot", "width", "latency_b1_ms", "latency_b64_ms")


@dataclass(frozen=True)
class Inputs:
    """One table's accuracy, the scores judged (per design and seed) and the designs."""

    source: str
    fidelity: str
    accuracy: pd.DataFrame  # design_id, seed, METRIC
    scores: pd.DataFrame  # design_id, seed, one column per score
    quantities: pd.DataFrame  # ep.design_quantities, indexed by design_id
    batch: int | None  # the zero-cost batch (NASWOT's B), None without zc scores


def _rel(path: str | Path) -> str:
    """A path as the doc names it: relative to the repository when inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(path)


def kind(name: str) -> str:
    return ("generic proxy" if name in PROXIES else "cost" if name in COSTS
            else "part of naswot" if name in NASWOT_PARTS
            else "retired (its optimum is not the paper's)" if name == "bottleneck"
            else "the paper's")


def table_inputs(table: str | Path, scores: str | Path) -> Inputs:
    """A release (its one accuracy fidelity) and a scores export: the stored ``theory``
    column is the retired bottleneck score (renamed); ``theory`` is recomputed
    (``search_space.theory_score``); NASWOT's parts added."""
    from analysis.proxies.ranks import read_scores
    from analysis.table.benchmark import Benchmark

    bench = Benchmark.load(table)
    fids = [f for f in bench.fidelities if not f.startswith("zc")]
    if len(fids) != 1:
        raise ValueError(f"{table} holds accuracy fidelities {fids}; expected one")
    f = bench.frame
    rows = f[f["fidelity"].eq(fids[0]) & f["status"].eq("ok")]
    accuracy = rows[["design_id", "seed", METRIC]].dropna().astype({"seed": int})
    sc = read_scores(scores).rename(columns={"theory": "bottleneck"})
    config = json.loads(pd.read_csv(scores, usecols=["config"])["config"].iloc[0])
    q = ep.design_quantities(sorted(sc["design_id"].unique()), config.get("resolution"))
    relu = np.log(sc["design_id"].map(q["n_relu"]).to_numpy(dtype=float))
    sc = sc.assign(theory=sc["design_id"].map(q["theory"]),
                   naswot_relu_term=config["batch_size"] * relu,
                   naswot_rest=sc["naswot"] - config["batch_size"] * relu)
    return Inputs(_rel(table), fids[0], accuracy, sc, q, int(config["batch_size"]))


def sweep_inputs(export: str | Path) -> Inputs:
    """A claim sweep's records export (docs/reproduction/*.csv): its accuracy and the
    paper's quantities of its designs (per design, as one row per seed)."""
    df = pd.read_csv(export)
    df = df[df["status"].eq("ok")]
    fids = sorted(df["fidelity"].unique())
    if len(fids) != 1:
        raise ValueError(f"{export} holds fidelities {fids}; expected one")
    accuracy = df[["design_id", "seed", METRIC]].dropna().astype({"seed": int})
    q = ep.design_quantities(sorted(accuracy["design_id"].unique()))
    sc = q[list(PAPER_Q)].reset_index().assign(seed=0)
    return Inputs(_rel(export), fids[0], accuracy, sc, q, None)


def _ci(v: float, lo: float, hi: float) -> str:
    return "" if not np.isfinite(v) else f"{v:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _pairs_text(inp: Inputs, tol: float) -> tuple[int, int]:
    q = inp.quantities.loc[sorted(set(inp.accuracy["design_id"]))]
    p = ep.close_pairs(q["q"].to_numpy(), list(zip(q["net"], q["depth"], strict=True)), tol)
    return int(p.sum()), int((p.any(axis=0) | p.any(axis=1)).sum())


def within_block(inp: Inputs, names: Sequence[str], *, n_boot: int = N_BOOT) -> str:
    """The ``<tag>-within`` block of a table: one row per score, by within-pair tau."""
    within = ep.within_pairs(inp.accuracy, inp.scores, names, inp.quantities, n_boot=n_boot)
    exact = ep.within_pairs(inp.accuracy, inp.scores, names, inp.quantities, tol=0.0,
                            n_boot=n_boot).set_index("score")
    beyond = ep.partial_beyond(
        inp.accuracy, inp.scores, [n for n in names if n != "width"],
        {"width": inp.quantities["width"], "block weights": inp.quantities["q"]},
        n_boot=n_boot).set_index("score")
    n = inp.accuracy["design_id"].nunique()
    pairs, in_pairs = _pairs_text(inp, ep.TOLERANCE)
    e_pairs, e_in = _pairs_text(inp, 0.0)
    lines = [
        f"`{inp.source}` (fidelity `{inp.fidelity}`, {METRIC}), {n} designs. Pairs: designs "
        f"whose block weights differ by at most {ep.TOLERANCE:.0%} of the larger, same net "
        f"and depth: {pairs} pairs among {in_pairs} designs (exactly equal weights: "
        f"{e_pairs} pairs among {e_in} designs). Within pairs: Kendall tau-b of design means "
        f"over those pairs; beyond width: partial Spearman correlation with {METRIC} given "
        "the ranks of width and block weights, over all designs; across budgets: Kendall "
        f"tau-b over all designs (mostly size; for reference). 95% intervals, {n_boot} "
        "bootstrap replicates (designs and seeds resampled; seed 0).", "",
        f"| score | kind | within pairs ({ep.TOLERANCE:.0%}) | exact pairs | beyond width | "
        "across budgets |",
        "| --- | --- | --- | --- | --- | ---: |"]
    means = inp.scores.groupby("design_id").mean(numeric_only=True)
    acc = inp.accuracy.groupby("design_id")[METRIC].mean()
    for row in within.sort_values("tau", ascending=False, kind="stable").itertuples():
        ex = exact.loc[row.score]
        b = beyond.loc[row.score] if row.score in beyond.index else None
        x, y = means[row.score].align(acc, join="inner")
        across = sps.kendalltau(x, y).statistic
        lines.append(
            f"| `{row.score}` | {kind(row.score)} | {_ci(row.tau, row.lo, row.hi)} | "
            f"{_ci(ex.tau, ex.lo, ex.hi)} | "
            + ("(controlled)" if b is None else _ci(b.partial, b.lo, b.hi)
               or "(ranks as width)")
            + f" | {across:+.2f} |")
    return "\n".join(lines)


def axis_block(inp: Inputs) -> str:
    """The ``<tag>-axis`` block: NASWOT, width and latency as one axis; NASWOT's parts;
    each score's share of variance between designs."""
    means = inp.scores.groupby("design_id").mean(numeric_only=True)
    acc = inp.accuracy.groupby("design_id")[METRIC].mean()

    def tau(a: str, b: pd.Series | str) -> float:
        other = means[b] if isinstance(b, str) else b
        x, y = means[a].align(other, join="inner")
        return float(sps.kendalltau(x, y).statistic)

    names = [n for n in ONE_AXIS if n in means]
    lines = ["| | " + " | ".join(f"`{n}`" for n in names) + " |",
             "| --- |" + " ---: |" * len(names)]
    lines += [f"| `{a}` | " + " | ".join(f"{tau(a, b):+.2f}" for b in names) + " |"
              for a in names]
    parts = ep.within_pairs(inp.accuracy, inp.scores, ["naswot", *NASWOT_PARTS],
                            inp.quantities, n_boot=200).set_index("score")["tau"]
    share = ep.fixed_share(inp.scores, [c for c in inp.scores.columns
                                        if c not in ("design_id", "seed")])
    varying = share[share.index.isin([*PROXIES, *COSTS])].sort_values()
    lines += [
        "", f"NASWOT = {inp.batch} ln N_ReLU + log det(K_H / N_ReLU) (batch {inp.batch}; "
        "N_ReLU, the ReLU units of one image, counted from the design's plan): "
        f"the ReLU term alone ranks {METRIC} at Kendall tau {tau('naswot_relu_term', acc):+.2f} "
        f"(within pairs {parts['naswot_relu_term']:+.2f}) and has tau "
        f"{tau('naswot_relu_term', 'width'):+.2f} with width; the rest ranks it at "
        f"{tau('naswot_rest', acc):+.2f} (within pairs {parts['naswot_rest']:+.2f}); "
        f"NASWOT itself {tau('naswot', acc):+.2f} ({parts['naswot']:+.2f}). Standard "
        f"deviations over designs: the ReLU term {means['naswot_relu_term'].std():.1f}, the "
        f"rest {means['naswot_rest'].std():.1f}, NASWOT {means['naswot'].std():.1f}.", "",
        "Share of each score's variance over (design, initialisation seed) that lies "
        "between designs (1: a fixed function of the design, i.e. of C, K and L): "
        + ", ".join(f"`{n}` {v:.4f}" for n, v in varying.items()) + "."]
    return "\n".join(lines)


def sweeps_block(inputs: Sequence[Inputs], *, n_boot: int = N_BOOT) -> str:
    """The sweeps' ``-within`` block: the paper's quantities within each export's pairs."""
    head = ["| export | fidelity | designs | pairs | "
            + " | ".join(f"`{n}`" for n in PAPER_Q) + " |",
            "| --- | --- | ---: | ---: |" + " --- |" * len(PAPER_Q)]
    for inp in inputs:
        pairs, in_pairs = _pairs_text(inp, ep.TOLERANCE)
        n = inp.accuracy["design_id"].nunique()
        if pairs == 0:
            head.append(f"| `{inp.source}` | `{inp.fidelity}` | {n} | 0 |"
                        + " no pair |" * len(PAPER_Q))
            continue
        w = ep.within_pairs(inp.accuracy, inp.scores, PAPER_Q, inp.quantities,
                            n_boot=n_boot).set_index("score")
        cells = " | ".join(_ci(w.loc[s, "tau"], w.loc[s, "lo"], w.loc[s, "hi"]) or "tied"
                           for s in PAPER_Q)
        head.append(f"| `{inp.source}` | `{inp.fidelity}` | {n} | {pairs} ({in_pairs} "
                    f"designs) | {cells} |")
    return "\n".join(head)


def table_names(inp: Inputs) -> list[str]:
    """The scores a table's block judges: the generic proxies, costs, the paper's
    quantities, the retired bottleneck score and NASWOT's parts (those present)."""
    wanted = (*PROXIES, *COSTS, *PAPER, "bottleneck", *NASWOT_PARTS)
    return [n for n in wanted if n in inp.scores.columns
            and inp.scores.groupby("design_id")[n].mean().nunique() > 1]


def main(argv: Sequence[str] | None = None) -> int:
    from analysis.doc_blocks import update_doc

    p = ArgumentParser(prog="python -m analysis.proxies.equal_params_report",
                       description="Scores judged within pairs of equal block weights.")
    p.add_argument("mode", choices=("table", "sweeps"))
    p.add_argument("paths", nargs="+", help="table: RELEASE SCORES_CSV; sweeps: EXPORT...")
    p.add_argument("--tag", required=True, help="block prefix in the doc: t40k, sweeps")
    p.add_argument("--update", help="rewrite the blocks of this markdown file")
    args = p.parse_args(argv)
    try:
        if args.mode == "table":
            if len(args.paths) != 2:
                raise ValueError(f"table takes RELEASE SCORES_CSV; got {len(args.paths)} "
                                 "paths")
            inp = table_inputs(*args.paths)
            new = {f"{args.tag}-within": within_block(inp, table_names(inp)),
                   f"{args.tag}-axis": axis_block(inp)}
        else:
            new = {f"{args.tag}-within": sweeps_block([sweep_inputs(x) for x in args.paths])}
        if args.update:
            changed = update_doc(args.update, new)
            print(f"{args.update}: {'updated' if changed else 'unchanged'}")
        else:
            print("\n\n".join(new.values()))
    except (OSError, ValueError, KeyError) as exc:
        return fail(p.prog, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
