"""What benchmarks/engine_throughput.py makes of its measurements: the issue's targets, the
proxy_gpu.py flags chosen from them, and the docs/performance.md block."""

from __future__ import annotations

from typing import Any

from benchmarks.engine_measure import DEFAULT_LEVER, LEVERS
from studies.presets import get_preset

TARGET_IMG_S = 50_000  # fig3 aggregate training images/s (issue 13)
TARGET_PROXY_S = 600  # fig3 (and table2) at proxy15 on one GPU, seconds
PROXY = {"epochs": 15, "train": 45_000, "val": 5_000, "test": 10_000}  # the proxy15 rung


def targets(out: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets from what was measured (rates per design and side by side) in
    ``out``, the benchmark's JSON."""
    found: dict[str, Any] = {"assumptions": (
        f"proxy15 = {PROXY}; each design's seeds as one group, groups one after another "
        "(or side by side where measured); evaluation at the measured forward rate (3x the "
        "training rate where not measured); data loading and process start not counted")}
    for preset in out["config"]["presets"]:
        designs = list(get_preset(preset).design_ids)
        rates = {r["designs"][0]: r["img_s"] for r in out["engine"]
                 if r["lever"] == DEFAULT_LEVER and len(r["designs"]) == 1
                 and r["designs"][0] in designs}
        if len(rates) < len(designs):
            found[preset] = {"measured": False, "missing": sorted(set(designs) - set(rates))}
            continue
        evals = {r["design"]: r["img_s"] for r in out["eval"]}
        n = out["config"]["seeds"]
        train_images = n * PROXY["epochs"] * PROXY["train"]
        eval_images = n * (PROXY["epochs"] * PROXY["val"] + PROXY["test"])
        sequential = sum(train_images / rates[d] + eval_images / evals.get(d, 3 * rates[d])
                         for d in designs)
        aggregate = len(designs) * n / sum(n / rates[d] for d in designs)
        together = next((r["img_s"] for r in out["together"]
                         if r["designs"] == designs), None)
        entry = {"measured": True, "aggregate_img_s_one_design_at_a_time": round(aggregate),
                 "aggregate_img_s_side_by_side": together,
                 "proxy15_projected_s_one_design_at_a_time": round(sequential)}
        if together:
            entry["proxy15_projected_s_side_by_side"] = round(
                len(designs) * train_images / together
                + sum(eval_images / evals.get(d, 3 * rates[d]) for d in designs))
        best_rate = max(aggregate, together or 0)
        best_s = min(sequential, entry.get("proxy15_projected_s_side_by_side", sequential))
        entry["proxy15_within_600_s"] = best_s <= TARGET_PROXY_S
        entry["proxy15_best_projected_s"] = round(best_s)
        if preset == "fig3":
            entry["aggregate_at_least_50000"] = best_rate >= TARGET_IMG_S
            entry["aggregate_over_target"] = round(best_rate / TARGET_IMG_S, 3)
        entry["slowest_design"] = min(rates, key=rates.get)
        found[preset] = entry
    return found


def choose(out: dict[str, Any], preset: str, within_s: float) -> list[str]:
    """``benchmarks/proxy_gpu.py`` flags for ``preset``: the group 1x1 layout and CUDA graphs
    of the lever with the best aggregate over the first preset's designs (fig3), and all of
    ``preset``'s designs side by side when that measured faster and its projection fits in
    ``within_s``. The engine's defaults when nothing comparable was measured.
    """
    first = out["config"]["presets"][0]
    designs = set(get_preset(first).design_ids)
    rates: dict[str, dict[str, float]] = {}
    for r in out["engine"]:
        if len(r["designs"]) == 1 and r["designs"][0] in designs:
            rates.setdefault(r["lever"], {})[r["designs"][0]] = r["img_s"]
    plain = [lv for lv in LEVERS if set(LEVERS[lv]) <= {"conv1x1", "cuda_graph"}]
    aggregate = {lv: len(designs) / sum(1 / v for v in rates[lv].values())
                 for lv in plain if len(rates.get(lv, {})) == len(designs)}
    best = max(aggregate, key=aggregate.get, default=DEFAULT_LEVER)
    flags = ["--conv1x1", LEVERS[best]["conv1x1"]]
    if not LEVERS[best]["cuda_graph"]:
        flags.append("--no-cuda-graph")
    entry = out.get("targets", {}).get(preset, {})
    side = entry.get("proxy15_projected_s_side_by_side")
    alone = entry.get("proxy15_projected_s_one_design_at_a_time")
    if best == DEFAULT_LEVER and side and alone and side < 0.9 * alone and side < within_s:
        flags += ["--designs-per-batch", str(len(get_preset(preset).design_ids))]
    return flags


def markdown(out: dict[str, Any]) -> str:
    """The doc block of a benchmark JSON (docs/performance.md): images/s per design and
    lever with the ratio to the one-model path, side by side, vmap, and the targets."""
    cfg = out["config"]
    levers = list(dict.fromkeys(r["lever"] for r in out["engine"] if len(r["designs"]) == 1))
    lines = [
        f"{out['label']}: {out['device']}, torch {out['torch']}, commit {out['commit'][:8]}, "
        f"{out['created']}. {cfg['seeds']} models per design, {cfg['batch']} images per model "
        f"and step at {cfg['resolution']}x{cfg['resolution']}, {cfg['steps']} steps an epoch, "
        f"the median epoch after the first; images/s of all models, (x) = over the one-model "
        f"path.", "",
        "| design | one model | one model, non-det. | " + " | ".join(levers) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in levers) + " |"]
    base = {b["design"]: b["img_s"] for b in out["baseline"]}
    nondet = {b["design"]: b["img_s"] for b in out.get("baseline_nondeterministic", [])}
    designs = list(dict.fromkeys(d for r in out["engine"] for d in r["designs"]))
    for d in designs:
        cells = []
        for lever in levers:
            row = next((r for r in out["engine"] if r["designs"] == [d] and r["lever"] == lever),
                       None)
            cells.append("" if row is None else f"{row['img_s']:,.0f}" + (
                f" ({row['over_baseline']:.2f}x)" if "over_baseline" in row else ""))
        one = f"{base[d]:,.0f}" if d in base else ""
        two = f"{nondet[d]:,.0f}" if d in nondet else ""
        lines.append(f"| `{d}` | {one} | {two} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in out["together"]:
        lines.append(f"- {len(r['designs'])} designs side by side ({r['models']} models, "
                     f"{r['lever']}): {r['img_s']:,.0f} img/s.")
    for r in out["vmap"]:
        lines.append(f"- vmap over {r['models']} reference nets of `{r['design']}`: "
                     f"{r['img_s']['vmap']:,.0f} img/s against the folded net's "
                     f"{r['img_s']['folded']:,.0f} ({r['vmap_over_folded']:.2f}x), "
                     "forward-backward-SGD on fixed batches.")
    for preset, t in out["targets"].items():
        if isinstance(t, dict) and t.get("measured"):
            agg = (f"aggregate {t['aggregate_img_s_one_design_at_a_time']:,} img/s one design "
                   "at a time")
            if t.get("aggregate_at_least_50000") is not None:
                agg += f" ({t['aggregate_over_target']:.3f} of the 50,000 target)"
            lines.append(f"- {preset} at proxy15, projected: "
                         f"{t['proxy15_best_projected_s']:,} s (target 600 s); {agg}.")
    if out["skipped"] or out["errors"]:
        lines.append(f"- Not measured (budget): {len(out['skipped'])}; errors: "
                     f"{len(out['errors'])} (the JSON lists them).")
    return "\n".join(lines)
