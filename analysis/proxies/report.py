"""The correlation report of docs/proxies.md: every zero-cost score against a table's accuracy.

One command regenerates it from two committed files, a table (a release, ``Benchmark.load``)
and a scores export (``analysis.proxies.ranks.write_scores`` of a ``zc`` run directory)::

    python -m analysis.proxies.report releases/igcbench-1.0.json docs/proxies/zc-t10k.csv \\
        --tag t10k --update docs/proxies.md --figures docs/proxies

Given a zc run directory and ``--export CSV``, it first writes the export and then reports
from it (so the doc is what the committed files give). It rewrites the blocks
``<TAG>-source``, ``<TAG>-ranks``, ``<TAG>-matrix`` and ``<TAG>-answer`` between their
markers (analysis.doc_blocks) and draws ``<TAG>.png``/``.svg`` (Kendall tau with intervals
beside the proxy-vs-proxy heat map). ``tests/test_proxy_report.py`` regenerates every block
from the files the source block names and compares. Bad input: one line, exit 2.

The plain question, answered in the ``answer`` block by a paired bootstrap
(:func:`analysis.proxies.ranks.paired_differences`): does the paper's theory score rank the
designs better than parameter count, FLOPs and each generic proxy?
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.cli import ArgumentParser, fail
from analysis.proxies.ranks import (
    exported,
    paired_differences,
    proxy_matrix,
    rank_correlations,
    read_scores,
)
from evaluators.scores import COSTS, PAPER, PROXIES

REPO = Path(__file__).resolve().parents[2]
N_BOOT = 2000  # bootstrap replicates of every interval in the doc
METRIC = "test_acc"  # the doc reports on test, as docs/reproduction.md
BLOCKS = ("source", "ranks", "matrix", "answer", "surrogate")
SURROGATE_FOLDS = 10  # cross-validation folds, held out by design
#: A doc's blocks for a table still to come begin so (the source block says what to run).
PENDING = "Not computed yet"
PENDING_BLOCK = "Not computed yet."
_TAG = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True)
class Report:
    """Everything the doc's blocks and figure show, from one table and one scores file."""

    table: str
    scores_path: str
    fidelity: str
    dataset: str
    accuracy: pd.DataFrame  # design_id, seed, METRIC (ok rows)
    scores: pd.DataFrame  # design_id, seed, one column per score
    ranks: pd.DataFrame  # rank_correlations, sorted by Kendall tau
    matrix: pd.DataFrame  # proxy_matrix with the accuracy first
    answer: pd.DataFrame  # paired_differences of theory against costs and proxies
    manifest: dict[str, Any] | None


def build(table: str | Path, scores: str | Path, *, fidelity: str | None = None,
          n_boot: int = N_BOOT, seed: int = 0) -> Report:
    """The report of ``scores`` against ``table``'s accuracy at ``fidelity`` (its only one
    when None). Raises ValueError naming what is missing."""
    from analysis.table.benchmark import Benchmark

    bench = Benchmark.load(table)
    acc_fids = [f for f in bench.fidelities if not f.startswith("zc")]
    fidelity = fidelity or (acc_fids[0] if len(acc_fids) == 1 else None)
    if fidelity not in acc_fids:
        raise ValueError(f"--fidelity {fidelity!r}: the table has {acc_fids}")
    fidelity, dataset = bench.resolve(fidelity, None)
    rows = bench.frame[bench.frame["fidelity"].eq(fidelity) & bench.frame["dataset"].eq(dataset)
                       & bench.frame["status"].eq("ok")]
    accuracy = rows[["design_id", "seed", METRIC]].dropna().astype({"seed": int})
    sc = read_scores(scores, dataset=dataset)
    names = [c for c in (*PROXIES, *COSTS, *PAPER) if c in sc.columns]
    names += [c for c in sc.columns if c not in names and c not in ("design_id", "seed")]
    missing = sorted(set(accuracy["design_id"]) - set(sc["design_id"]))
    if missing:
        raise ValueError(f"{scores} lacks scores of {len(missing)} of the table's designs "
                         f"({', '.join(missing[:3])}...); compute them first")
    ranks = rank_correlations(accuracy, sc, metric=METRIC, proxies=names, n_boot=n_boot,
                              seed=seed)
    ranks = ranks.sort_values("kendall", ascending=False, kind="stable", na_position="last")
    varying = [n for n in names if sc.groupby("design_id")[n].mean().nunique() > 1]
    matrix = proxy_matrix(sc, varying, accuracy=accuracy, metric=METRIC)
    others = [n for n in ("params", "flops", *PROXIES) if n in varying and n != "theory"]
    answer = (paired_differences(accuracy, sc, "theory", others, metric=METRIC,
                                 n_boot=n_boot, seed=seed)
              if "theory" in varying else pd.DataFrame())
    return Report(table=repo_relative(table), scores_path=repo_relative(scores), fidelity=fidelity,
                  dataset=dataset, accuracy=accuracy, scores=sc,
                  ranks=ranks.reset_index(drop=True), matrix=matrix, answer=answer,
                  manifest=dict(bench.manifest) if bench.manifest is not None else None)


# --- the blocks ----------------------------------------------------------------------------


def blocks(report: Report, tag: str, *, surrogate: bool = True) -> dict[str, str]:
    """The markdown of each block, keyed ``<tag>-<block>`` (the surrogate's, the slow one,
    only with ``surrogate``)."""
    out = {f"{tag}-source": source_block(report), f"{tag}-ranks": ranks_block(report),
           f"{tag}-matrix": matrix_block(report), f"{tag}-answer": answer_block(report)}
    if surrogate:
        out[f"{tag}-surrogate"] = surrogate_block(report)
    return out


def plural(n: int, noun: str) -> str:
    """``3 seeds``, ``1 seed``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def source_block(r: Report) -> str:
    n_designs = r.accuracy["design_id"].nunique()
    seeds = sorted(r.accuracy["seed"].unique())
    sc_seeds = sorted(r.scores["seed"].unique())
    sha = (r.manifest or {}).get("parquet", {}).get("sha256", "")
    return (
        f"Table `{r.table}`" + (f" (parquet sha256 `{sha[:16]}...`)" if sha else "")
        + f": {n_designs} designs x {plural(len(seeds), 'seed')} at fidelity `{r.fidelity}`, "
        f"dataset {r.dataset}, accuracy `{METRIC}`. Scores `{r.scores_path}`: "
        f"{r.scores['design_id'].nunique()} designs x "
        f"{plural(len(sc_seeds), 'initialisation seed')}. "
        f"Intervals: 95%, {N_BOOT} bootstrap replicates over designs and seeds (seed 0); "
        f"top-10% precision: the share of the k = {int(r.ranks['top_k'].max())} best designs "
        "by mean score that are among the k best by mean accuracy (chance: k/n)."
    )


def ranks_block(r: Report) -> str:
    lines = ["| score | kind | Kendall tau | Spearman | top-10% precision |",
             "| --- | --- | --- | --- | --- |"]
    for row in r.ranks.itertuples(index=False):
        if not np.isfinite(row.kendall):
            lines.append(f"| `{row.proxy}` | {kind_of(row.proxy)} | constant over these "
                         "designs | | |")
            continue
        lines.append(
            f"| `{row.proxy}` | {kind_of(row.proxy)} | "
            f"{_ci(row.kendall, row.kendall_lo, row.kendall_hi)} | "
            f"{_ci(row.spearman, row.spearman_lo, row.spearman_hi)} | "
            f"{_ci(row.top_precision, row.top_lo, row.top_hi, digits=2)} |")
    return "\n".join(lines)


def matrix_block(r: Report) -> str:
    names = list(r.matrix.columns)
    head = "| | " + " | ".join(_short(n) for n in names) + " |"
    lines = [head, "| --- |" + " ---: |" * len(names)]
    for a in names:
        cells = " | ".join("" if not np.isfinite(v) else f"{v:.2f}" for v in r.matrix.loc[a])
        lines.append(f"| `{_short(a)}` | {cells} |")
    return "\n".join(lines)


def answer_block(r: Report) -> str:
    if r.answer.empty:
        return "The theory score is constant over these designs: it ranks nothing."
    theory = r.ranks.set_index("proxy").loc["theory"]
    best = r.ranks.iloc[0]
    groups = {v: [f"`{o}`" for o, vv in zip(r.answer["other"], r.answer["verdict"],
                                            strict=True) if vv == v]
              for v in ("better", "worse", "not distinguishable")}
    # "Better than parameter count, FLOPs and the generic proxies": Yes when better than
    # every one; No when not better than the cost baselines (the least a ranking at no
    # cost must beat); Partly when it beats the costs but not every proxy.
    cost = r.answer[r.answer["other"].isin(["params", "flops"])]
    beats_costs = bool(len(cost)) and (cost["verdict"] == "better").all()
    beats_all = (r.answer["verdict"] == "better").all()
    short = "Yes" if beats_all else "Partly" if beats_costs else "No"
    text = [
        f"**{short}.** The theory score's Kendall tau with {METRIC} is "
        f"{_ci(theory.kendall, theory.kendall_lo, theory.kendall_hi)} over "
        f"{int(theory.n_designs)} designs; the best ranker here is `{best.proxy}` "
        f"({_ci(best.kendall, best.kendall_lo, best.kendall_hi)}). Against each other "
        "score, the difference of Kendall taus (theory minus the other; paired bootstrap, "
        "95%) says the theory ranks these designs "
        + "; ".join(f"{v} than {', '.join(names)}" if v != "not distinguishable"
                    else f"not distinguishably from {', '.join(names)}"
                    for v, names in groups.items() if names) + ".",
        "",
        "| theory against | its tau | theory's tau | difference | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in r.answer.itertuples(index=False):
        text.append(f"| `{row.other}` | {row.tau_other:+.3f} | {row.tau_reference:+.3f} | "
                    f"{_ci(row.difference, row.lo, row.hi)} | {row.verdict} |")
    return "\n".join(text)


def surrogate_block(r: Report) -> str:
    """Cross-validation of the surrogate (analysis.table.surrogate) held out by design: GP and
    gradient boosting, on describe() features alone and with the zero-cost scores."""
    from analysis.table.benchmark import Benchmark
    from analysis.table.surrogate import cross_validate

    bench = Benchmark.load(REPO / r.table if not Path(r.table).is_absolute() else r.table)
    lines = [f"Held out by design ({SURROGATE_FOLDS} folds over "
             f"{r.accuracy['design_id'].nunique()} designs), predicting each held-out "
             "design's mean `val_acc`; 95% intervals over a bootstrap of the designs. "
             "Coverage: the share of held-out designs inside the prediction's 95% interval "
             "(GP only; boosting gives no uncertainty).", "",
             "| model | features | Kendall tau | Spearman | RMSE | coverage |",
             "| --- | --- | --- | --- | --- | --- |"]
    params_tau = None
    for model in ("gp", "gbr"):
        for scores in (None, r.scores):
            cv = cross_validate(bench, scores=scores, fidelity=r.fidelity, dataset=r.dataset,
                                model=model, folds=SURROGATE_FOLDS, n_boot=N_BOOT)
            params_tau = cv["params_kendall"]
            cover = "" if not np.isfinite(cv["coverage"]) else f"{cv['coverage']:.2f}"
            lines.append(
                f"| {model} | {cv['features']} | "
                f"{_ci(cv['kendall'], cv['kendall_lo'], cv['kendall_hi'])} | "
                f"{_ci(cv['spearman'], cv['spearman_lo'], cv['spearman_hi'])} | "
                f"{cv['rmse']:.4f} [{cv['rmse_lo']:.4f}, {cv['rmse_hi']:.4f}] | {cover} |")
    lines += ["", f"For comparison, the parameter count alone ranks the same designs' mean "
              f"`val_acc` with Kendall tau {params_tau:+.3f}."]
    return "\n".join(lines)


COSTS_JSON = REPO / "benchmarks" / "results" / "zero_cost_cpu.json"


def costs_block(path: str | Path = COSTS_JSON) -> str:
    """The ``costs`` block: each zero-cost computation's command, settings, what was
    measured of it and the estimate made from that (benchmarks/results/zero_cost_cpu.json).
    """
    import json

    doc = json.loads(Path(path).read_text())
    lines = ["| computation | settings | records | measured (CPU seconds) | estimate | "
             "peak memory |", "| --- | --- | ---: | --- | --- | ---: |"]
    for c in doc["computations"]:
        m = c["measured"]
        if "designs" in m:
            seen = "; ".join(f"`{d['design']}` {d['cpu_s']:g} s" for d in m["designs"])
        else:
            seen = f"the whole run: {m['cpu_s']:g} s ({m['wall_s'] / 60:.0f} min wall)"
        lo, hi = c["estimate_cpu_min"]
        est = f"{lo} CPU-min" if lo == hi else f"{lo}-{hi} CPU-min"
        lines.append(f"| {c['name']} | {c['settings']} | {c['records']} | {seen} | {est} | "
                     f"{c['peak_rss_mb'] / 1024:.1f} GB |")
    lines += ["", doc["what"] + " Wall time is about twice the CPU time beside a sweep. "
              "How each was measured:", ""]
    lines += [f"- {c['name']}: {c['measured']['how']}." for c in doc["computations"]]
    lines += ["", "```"] + [c["command"] for c in doc["computations"]] + ["```"]
    return "\n".join(lines)


def _ci(v: float, lo: float, hi: float, digits: int = 3) -> str:
    sign = "+" if digits == 3 else ""
    return f"{v:{sign}.{digits}f} [{lo:{sign}.{digits}f}, {hi:{sign}.{digits}f}]"


def kind_of(name: str) -> str:
    """The kind a score is reported as: generic proxy, cost, the paper's, other."""
    return ("generic proxy" if name in PROXIES else "cost" if name in COSTS
            else "the paper's" if name in PAPER else "other")


def _short(name: str) -> str:
    return {"latency_b1_ms": "lat_b1", "latency_b64_ms": "lat_b64", "non_sparsity": "non_sp",
            "balance_deviation": "balance", "test_acc": "ACC", "val_acc": "ACC"}.get(name, name)


def repo_relative(path: str | Path) -> str:
    """A path as a doc names it: relative to the repository when inside it."""
    p = Path(path).resolve()
    try:
        return os.path.relpath(p, REPO) if p.is_relative_to(REPO) else str(path)
    except ValueError:
        return str(path)


# --- the figure ----------------------------------------------------------------------------


def plot(r: Report, out_dir: str | Path, tag: str) -> tuple[Path, Path]:
    """Kendall tau with its interval per score (bars coloured by kind) and the Kendall tau
    heat map of every score against every other and the accuracy: ``<tag>.png``/``.svg``."""
    import seaborn as sns

    from analysis.report.style import new_figure, save_png_svg, style

    ranks = r.ranks[np.isfinite(r.ranks["kendall"])]
    with style():
        fig, axes = new_figure(11.0, 4.6, n_cols=2)
        ax = axes[0, 0]
        colours = dict(zip(("generic proxy", "cost", "the paper's", "other"),
                           sns.color_palette("deep", 4), strict=True))
        y = np.arange(len(ranks))
        ax.barh(y, ranks["kendall"], color=[colours[kind_of(p)] for p in ranks["proxy"]])
        ax.errorbar(ranks["kendall"], y, fmt="none", ecolor="black", elinewidth=1, capsize=2,
                    xerr=[ranks["kendall"] - ranks["kendall_lo"],
                          ranks["kendall_hi"] - ranks["kendall"]])
        ax.set_yticks(y, ranks["proxy"])
        ax.invert_yaxis()
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel(f"Kendall tau with {METRIC} (95% bootstrap interval)")
        ax.set_title(f"{r.accuracy['design_id'].nunique()} designs, {Path(r.table).name}")
        for kind, c in colours.items():
            if any(kind_of(p) == kind for p in ranks["proxy"]):
                ax.barh([np.nan], [np.nan], color=c, label=kind)
        ax.legend(loc="lower right", fontsize=7)
        m = r.matrix.rename(index=_short, columns=_short)
        sns.heatmap(m, ax=axes[0, 1], vmin=-1, vmax=1, cmap="vlag", annot=True, fmt=".1f",
                    annot_kws={"fontsize": 6}, cbar_kws={"label": "Kendall tau"}, square=True)
        axes[0, 1].set_title("score against score (design means)")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return save_png_svg(fig, out / tag)


# --- the command line ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from analysis.doc_blocks import update_doc

    p = ArgumentParser(prog="python -m analysis.proxies.report",
                       description="The zero-cost correlation report of docs/proxies.md.")
    p.add_argument("table", help="the table: a release, records export or run directory")
    p.add_argument("scores", help="zc scores: a scores export (CSV) or a zc run directory")
    p.add_argument("--tag", required=True, help="block prefix in the doc, e.g. t10k, t40k")
    p.add_argument("--fidelity", help="the table's accuracy fidelity (when it has several)")
    p.add_argument("--export", help="first export SCORES (a zc run directory) to this CSV")
    p.add_argument("--update", help="rewrite the blocks of this markdown file")
    p.add_argument("--figures", help="draw <TAG>.png and .svg into this directory")
    args = p.parse_args(argv)
    if not _TAG.fullmatch(args.tag):
        return fail(p.prog, ValueError(f"--tag {args.tag!r}: use lower-case letters, "
                                       "digits and '-'"))
    try:
        scores = exported(args.scores, args.export)
        report = build(args.table, scores, fidelity=args.fidelity)
        new = blocks(report, args.tag)
        if args.update:
            if "<!-- costs:begin -->" in Path(args.update).read_text():  # docs/proxies.md
                new["costs"] = costs_block()
            changed = update_doc(args.update, new)
            print(f"{args.update}: {'updated' if changed else 'unchanged'}")
        else:
            print("\n\n".join(new.values()))
        if args.figures:
            print("wrote", *plot(report, args.figures, args.tag))
    except (OSError, ValueError) as exc:
        return fail(p.prog, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
