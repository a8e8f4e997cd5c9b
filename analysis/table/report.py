"""What a released table says, as the markdown docs/benchmark.md carries between its markers.

    python -m analysis.table.report releases/igcbench-1.0.json docs/benchmark/replay.json
    python -m analysis.table.report releases/igcbench-1.0.json docs/benchmark/replay.json \\
        --update docs/benchmark.md

Four blocks, each regenerated from the committed release (and the replay's JSON) alone, so
a test can compare them with the document: ``table`` (what the release holds), ``best``
(the best design under each parameter budget), ``pareto`` (val_acc against params) and
``replay`` (the replayed searches' time and epochs to the best design).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis.cli import ArgumentParser, fail
from analysis.doc_blocks import block_in_doc, markers, update_doc  # noqa: F401 (re-exported)

BLOCKS = ("table", "best", "pareto", "replay")


def _pm(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None:
        return ""
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def table_block(release: str | Path) -> str:
    """One paragraph: the release file, fidelity, dataset, size, commit, checksum."""
    from analysis.table.release import read_release

    m = read_release(release).manifest
    fid = next(iter(m["fidelities"]))
    cfg = m["fidelities"][fid]
    return (
        f"Release `{Path(release).name}` (version {m['version']}): {m['records']} records "
        f"({m['ok_records']} ok) of {m['designs']} designs x {len(m['seeds'])} seeds, fidelity "
        f"`{fid}` ({cfg['train_size']:,} images, {cfg['val_fraction']:.0%} for validation, "
        f"{cfg['resolution']}x{cfg['resolution']} pixels, "
        f"{cfg['epochs']} epochs), dataset {', '.join(m['datasets'])}, commit "
        f"`{(m['commit'] or 'several')[:12]}`, parquet sha256 `{m['parquet']['sha256'][:16]}...`."
    )


def _row(e: Any) -> str:
    return (
        f"`{e.design_id}` | {_pm(e.val_acc, e.val_acc_std)} | {_pm(e.test_acc, e.test_acc_std)} "
        f"| {int(e.params):,} | {e.flops / 1e6:.1f}M | {e.info.get('L')} | {e.info.get('family')}"
    )


def best_block(bench: Any, budgets: Sequence[int]) -> str:
    """``Benchmark.best("val_acc", budget=b)`` for each budget."""
    lines = ["| params budget | best design (by mean val_acc) | val_acc | test_acc | params | "
             "multiply-adds | L | family |",
             "| ---: | --- | --- | --- | ---: | ---: | ---: | --- |"]
    for b in budgets:
        try:
            e = bench.best("val_acc", budget=b)
        except ValueError:
            lines.append(f"| {b:,} | (no design fits) | | | | | | |")
            continue
        lines.append(f"| {b:,} | {_row(e)} |")
    return "\n".join(lines)


def pareto_block(bench: Any) -> str:
    """``Benchmark.pareto([("val_acc", "max"), ("params", "min")])``."""
    lines = ["| design | val_acc | test_acc | params | multiply-adds | L | family |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    lines += [f"| {_row(e)} |" for e in bench.pareto([("val_acc", "max"), ("params", "min")])]
    return "\n".join(lines)


def replay_block(replay_json: str | Path) -> str:
    """Per strategy, scheduler and workers: how often the best was reached, and at what cost."""
    doc = json.loads(Path(replay_json).read_text())

    def ms(row: dict, col: str, digits: int) -> str:
        mean, std = row.get(f"{col}_mean"), row.get(f"{col}_std")
        if mean is None or (isinstance(mean, float) and math.isnan(mean)):
            return "-"
        spread = "" if std is None or math.isnan(std) else f" ± {std:.{digits}f}"
        return f"{mean:.{digits}f}{spread}"

    lines = [
        f"Best design `{doc['best_design']}` (mean val_acc {doc['best_mean_val_acc']:.3f}); "
        f"{doc['designs']} designs x {doc['epochs']} epochs; {doc['settings']['repeats']} "
        f"repeats per row, seed mode `{doc['settings']['seed_mode']}`, ASHA reduction factor "
        f"{doc['settings']['reduction_factor']:g}, grace period "
        f"{doc['settings']['grace_period']}.",
        "",
        "| strategy | scheduler | workers | reached / repeats | time to best (s) | "
        "epochs to best | total epochs | final regret |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in doc["summary"]:
        lines.append(
            f"| {r['strategy']} | {r['scheduler']} | {r['workers']} | {r['reached']} / "
            f"{r['repeats']} | {ms(r, 'time_to_best', 0)} | {ms(r, 'epochs_to_best', 1)} | "
            f"{r['total_epochs_mean']:.1f} | {r['final_regret_mean']:.4f} |"
        )
    return "\n".join(lines)


def blocks(release: str | Path, replay_json: str | Path,
           budgets: Sequence[int] | None = None) -> dict[str, str]:
    """Every block's markdown, by name."""
    from analysis.table.benchmark import Benchmark

    bench = Benchmark.load(release)
    if budgets is None:  # every 1,000 params from the smallest design's up to the largest's
        params = [bench.query(d).params for d in bench.designs()]
        budgets = range(math.ceil(min(params) / 1000) * 1000, math.ceil(max(params) / 1000)
                        * 1000 + 1, 1000)
    return {"table": table_block(release), "best": best_block(bench, budgets),
            "pareto": pareto_block(bench), "replay": replay_block(replay_json)}


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m analysis.table.report",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("release", help="the release manifest (releases/igcbench-V.json)")
    p.add_argument("replay_json", help="benchmarks/replay.py's replay.json for that release")
    p.add_argument("--update", metavar="DOC", help="rewrite the blocks in DOC instead of printing")
    args = p.parse_args(argv)
    try:
        new = blocks(args.release, args.replay_json)
        if args.update:
            changed = update_doc(args.update, new)
            print(f"{args.update}: blocks {'updated' if changed else 'already current'}")
            return 0
    except (OSError, ValueError, KeyError) as exc:
        return fail("analysis.table.report", exc)
    for block in BLOCKS:
        print(f"{markers(block)[0]}\n{new[block]}\n{markers(block)[1]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
