"""How well the cost model (evaluators.cost_model) predicts recorded trial times.

    python -m benchmarks.cost_model --records /work/runs \
        --out benchmarks/results/cost_model_cpu.json

Reads the committed sweeps (docs/reproduction/*-cpu-cifar10.csv) and the records of every
run directory under each ``--records`` folder (RUN/records/*.json), ok CPU trials only;
calibrates this machine (evaluators.calibrate: the default block implementation, and the
reference one for records made before the fast path became the default, told apart by
their commit's ``search_space.build.DEFAULT_IMPL``); then predicts every record's
``wall_s``:

- ``raw``: the calibration as measured now (scale 1): meaningful for records made under
  the machine's present conditions (its load), not for last week's;
- ``design_out``: the scale refitted on the sweep's records of the *other* designs: how
  well the model ranks designs by time, the load level taken from the sweep itself;
- ``online``: in the order the sweep recorded them, each record predicted with the scale
  of the sweep's earlier records (what a running sweep's estimate sees);
- ``sweep_out``: the scale refitted on the other sweeps of the same implementation (fit
  on some sweeps, test on others; the machine's load differed between them);
- ``flops_design_out`` and ``flops_sweep_out``: the same refits of a FLOPs-proportional
  model (seconds = overhead + k x FLOPs x images), the baseline to beat.

Writes the median and 90th-percentile relative error |predicted - recorded| / recorded of
each, per sweep and per design, with the calibrations and the load average. Bad input: one
line, exit 2, no file.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from analysis.cli import ArgumentParser
from evaluators.record import KEY, write_json_atomic

REPO = Path(__file__).resolve().parents[1]

COMMITTED = ("fig3", "table2", "fig2")  # docs/reproduction/<name>-cpu-cifar10.csv


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m benchmarks.cost_model", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", nargs="*", default=[],
                   help="folders of run directories (RUN/records/*.json) to add")
    p.add_argument("--out", required=True, help="output JSON file")
    p.add_argument("--wide", action="store_true",
                   help="also time training steps of wide nets on both block paths "
                        "(8x8, batch 8; about 3 CPU-minutes)")
    p.add_argument("--update-doc", metavar="MD",
                   help="rewrite the <!-- cost-model --> block of this markdown file")
    args = p.parse_args(argv)
    for folder in args.records:
        if not Path(folder).is_dir():
            p.error(f"--records {folder!r} is not a directory")
    if not Path(args.out).parent.is_dir():
        p.error(f"--out {args.out!r}: directory {Path(args.out).parent} does not exist")
    return args


# --- records ------------------------------------------------------------------------------


def load_records(folders: list[str]) -> list[dict[str, Any]]:
    """Ok CPU training records with a wall time, each tagged with ``sweep`` and ``source``."""
    import pandas as pd

    records = []
    for name in COMMITTED:
        path = REPO / "docs" / "reproduction" / f"{name}-cpu-cifar10.csv"
        for row in pd.read_csv(path).to_dict("records"):
            row["fidelity_config"] = json.loads(row["fidelity_config"])
            records.append({**row, "sweep": f"{name} (committed)", "source": str(path)})
    # A committed sweep is the export of a run directory that may be among --records: read
    # each trial once (as committed), or the "all" rows would count it twice.
    committed = {_trial(r) for r in records}
    for folder in folders:
        for path in sorted(Path(folder).glob("*/records/*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being written right now: the next run reads it
            if _trial(rec) not in committed:
                records.append({**rec, "sweep": path.parent.parent.name, "source": str(path)})
    # A zero-cost record (studies.zero_cost, field zero_cost) scores a design without
    # training it: no epochs, nothing the training-time model predicts.
    return [r for r in records if r.get("status") == "ok" and r.get("device") == "cpu"
            and r.get("wall_s") and not r.get("zero_cost")]


def _trial(rec: dict[str, Any]) -> tuple[str, ...]:
    """What makes a record one trial: its key and when it was made."""
    return tuple(str(rec.get(k)) for k in (*KEY, "created"))


def implementation(commit: str, cache: dict[str, str]) -> str:
    """``DEFAULT_IMPL`` of search_space/build.py at ``commit`` ("unknown" if not here)."""
    if commit not in cache:
        done = subprocess.run(["git", "show", f"{commit}:search_space/build.py"], cwd=REPO,
                              capture_output=True, text=True, check=False)
        impl = "unknown"
        for line in done.stdout.splitlines():
            if line.startswith("DEFAULT_IMPL ="):
                impl = line.split("=", 1)[1].split("#")[0].strip().strip("\"'")
        cache[commit] = impl
    return cache[commit]


# --- models -------------------------------------------------------------------------------


def flops_work(rec: dict[str, Any]) -> float:
    """FLOPs x images of a trial: the baseline's compute (training counted 3x a forward)."""
    from evaluators.cost_model import trial_shape

    shape = trial_shape(rec["fidelity_config"], rec["dataset"])
    per_image = float(rec["flops"]) * (shape.resolution / rec["input_size"]) ** 2
    latency = float(rec["flops"]) * (shape.latency_resolution / rec["input_size"]) ** 2
    return per_image * (3 * shape.train_images * shape.epochs + shape.eval_images) \
        + latency * shape.latency_images


def scale_fit(pairs: list[tuple[float, float]], overhead: float) -> float:
    """Median of (recorded - overhead) / compute: what cost_model.refit does."""
    return statistics.median((actual - overhead) / compute for compute, actual in pairs)


def errors(rows: list[dict[str, Any]], key: str) -> dict[str, float | int]:
    rel = sorted(abs(r[key] - r["wall_s"]) / r["wall_s"] for r in rows)
    return {"n": len(rel), "median": statistics.median(rel),
            "p90": rel[min(len(rel) - 1, int(0.9 * len(rel)))], "max": rel[-1]}


def evaluate(records: list[dict[str, Any]], calibrations: dict[str, Any]) -> dict[str, Any]:
    from evaluators.cost_model import DEFAULT_OVERHEAD_S, compute_seconds

    rows = []
    for rec in records:
        cal = calibrations[rec["calibration"]]
        compute = compute_seconds(rec["design_id"], rec["fidelity_config"], rec["dataset"],
                                  cal, num_classes=rec.get("num_classes"))
        rows.append({"sweep": rec["sweep"], "impl": rec["impl"], "design_id": rec["design_id"],
                     "seed": rec["seed"], "created": rec["created"],
                     "wall_s": float(rec["wall_s"]), "compute": compute,
                     "flops_work": flops_work(rec), "width": rec["width"], "L": rec["L"],
                     "flops": rec["flops"]})
    overhead = DEFAULT_OVERHEAD_S

    def predict(row: dict[str, Any], fit_on: list[dict[str, Any]], work: str) -> float:
        return overhead + scale_fit([(r[work], r["wall_s"]) for r in fit_on],
                                    overhead) * row[work]

    sweeps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        sweeps[row["sweep"]].append(row)
    for sweep, group in sweeps.items():
        group.sort(key=lambda r: r["created"])
        same_impl_others = [r for r in rows if r["impl"] == group[0]["impl"]
                            and r["sweep"] != sweep]
        for i, row in enumerate(group):
            row["raw"] = overhead + row["compute"]
            other_designs = [r for r in group if r["design_id"] != row["design_id"]]
            row["design_out"] = predict(row, other_designs, "compute")
            row["flops_design_out"] = predict(row, other_designs, "flops_work")
            # A sweep's estimate as records arrive: the scale of its earlier records (the
            # first record: the calibration as measured).
            row["online"] = predict(row, group[:i], "compute") if i else row["raw"]
            if same_impl_others:
                row["sweep_out"] = predict(row, same_impl_others, "compute")
                row["flops_sweep_out"] = predict(row, same_impl_others, "flops_work")
    return summarise(rows)


KEYS = ("raw", "design_out", "flops_design_out", "online", "sweep_out", "flops_sweep_out")


WIDE = ("plain8-c200-k1.g2.g2.g2.g2.g2", "plain8-c620-k1.g4", "plain8-c1504-k1.16.16.16")
WIDE_RESOLUTION, WIDE_BATCH = 8, 8  # small: a wide net's step stays affordable on either path


def wide_steps(calibrations: dict[str, Any]) -> list[dict[str, Any]]:
    """Seconds of one training step of 0.65M-budget nets with each block implementation as
    trials build it (the fast one picks a path per block: ``search_space.work.choose_path``),
    measured (after one untimed step) and predicted by that implementation's calibration."""
    import torch

    import search_space as ss
    from evaluators.cost_model import image_seconds

    out = []
    torch.set_num_threads(1)
    for design in WIDE:
        for impl in ("fast", "reference"):
            # this resolution's calibration where there is one, else the implementation's
            keys = sorted(k for k in calibrations if k.startswith(impl + "|"))
            cal = calibrations[next((k for k in keys if k.startswith(
                f"{impl}|{WIDE_RESOLUTION}px|")), keys[0])]
            torch.manual_seed(0)
            model = ss.build(ss.parse(design), num_classes=10, impl=impl)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            x = torch.randn(WIDE_BATCH, 3, WIDE_RESOLUTION, WIDE_RESOLUTION)
            y = torch.randint(0, 10, (WIDE_BATCH,))
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                times.append(time.perf_counter() - t0)
            train, _ = image_seconds(design, cal, resolution=WIDE_RESOLUTION,
                                     batch_size=WIDE_BATCH)
            out.append({"design_id": design, "impl": impl, "paths": list(cal.paths),
                        "measured_s": times[-1], "first_step_s": times[0],
                        "predicted_s": WIDE_BATCH * train})
            print(design, impl, f"{times[-1]:.2f} s, predicted {out[-1]['predicted_s']:.2f}",
                  flush=True)
    return out


def noise_floor(rows: list[dict[str, Any]]) -> float | None:
    """Median |wall_s / the design's median wall_s - 1| over designs with several seeds:
    how much the same trial's time varied in this sweep (what no model of the design can
    explain: the machine's load, what ran beside it)."""
    by_design: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        by_design[row["design_id"]].append(row["wall_s"])
    spread = [abs(t / statistics.median(ts) - 1) for ts in by_design.values() if len(ts) > 1
              for t in ts]
    return statistics.median(spread) if spread else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"by_impl": {}, "by_sweep": {}, "by_design": []}
    for impl in sorted({r["impl"] for r in rows}):
        group = [r for r in rows if r["impl"] == impl]
        out["by_impl"][impl] = {k: errors([r for r in group if k in r], k) for k in KEYS
                                if any(k in r for r in group)}
        out["by_impl"][impl]["sweeps"] = sorted({r["sweep"] for r in group})
    for sweep in sorted({r["sweep"] for r in rows}):
        group = [r for r in rows if r["sweep"] == sweep]
        out["by_sweep"][sweep] = {
            "impl": group[0]["impl"], "noise_floor": noise_floor(group),
            "scale": scale_fit([(r["compute"], r["wall_s"]) for r in group],
                               group[0]["raw"] - group[0]["compute"]),
            **{k: errors(group, k) for k in KEYS if k in group[0]}}
    designs: dict[tuple[str, str, str], list] = defaultdict(list)
    for row in rows:
        designs[(row["sweep"], row["impl"], row["design_id"])].append(row)
    for (sweep, impl, design), group in sorted(designs.items()):
        out["by_design"].append({
            "sweep": sweep, "impl": impl, "design_id": design, "width": group[0]["width"],
            "L": group[0]["L"], "flops": group[0]["flops"], "n": len(group),
            "recorded_s": statistics.median(r["wall_s"] for r in group),
            "design_out_s": statistics.median(r["design_out"] for r in group),
            "flops_design_out_s": statistics.median(r["flops_design_out"] for r in group),
            "design_out_error": statistics.median(
                abs(r["design_out"] - r["wall_s"]) / r["wall_s"] for r in group)})
    out["records"] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    import evaluators as ev
    from evaluators.calibrate import measure

    load_before = os.getloadavg()
    records = load_records(args.records)
    impls: dict[str, str] = {}
    for rec in records:
        rec["impl"] = implementation(str(rec.get("commit", "")), impls)
    records = [r for r in records if r["impl"] in ("fast", "reference")]
    calibrations, seconds = {}, {}
    for rec in records:
        config = rec["fidelity_config"]
        shape = (rec["impl"], config.get("resolution") or 32, config["batch_size"],
                 config.get("threads") or 1)
        rec["calibration"] = key = "{}|{}px|batch {}|{} threads".format(*shape)
        if key not in calibrations:  # one per implementation and fidelity shape
            fidelity = dataclasses.replace(ev.get_fidelity("cpu"), resolution=shape[1],
                                           batch_size=shape[2])
            t0 = time.perf_counter()
            calibrations[key] = measure(fidelity, device=torch.device("cpu"),
                                        threads=shape[3], impl=shape[0])
            seconds[key] = time.perf_counter() - t0
    result = evaluate(records, calibrations)
    if args.wide:
        result["wide"] = wide_steps(calibrations)
    out = {
        "command": "python -m benchmarks.cost_model " + " ".join(sys.argv[1:] if argv is None
                                                                 else argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_1m": [load_before[0], os.getloadavg()[0]],
        "calibrations": {k: {**v.to_dict(), "measure_s": seconds[k]}
                         for k, v in calibrations.items()},
        "commits": impls,
        **result,
    }
    write_json_atomic(args.out, out)
    if args.update_doc:
        from analysis.doc_blocks import update_doc

        update_doc(args.update_doc, {"cost-model": doc_block(out)})
    for impl, stats in out["by_impl"].items():
        line = ", ".join(f"{k} {v['median']:.1%}" for k, v in stats.items() if k != "sweeps")
        print(f"{impl}: {stats['raw']['n']} records, median relative error {line}")
    return 0


ERROR_KINDS = (("raw", "calibration only"), ("design_out", "scale from the sweep's other designs"),
           ("online", "scale from the sweep's earlier records"),
           ("sweep_out", "scale from the other sweeps"),
           ("flops_design_out", "FLOPs model, other designs"),
           ("flops_sweep_out", "FLOPs model, other sweeps"))
IMPL_NAMES = {"fast": "fast (the default since 2026-11-26)", "reference": "reference"}


def doc_block(result: dict[str, Any]) -> str:
    """The markdown docs/studies.md shows: median (90th percentile) relative errors."""
    def cell(stats: dict[str, Any] | None) -> str:
        return "" if stats is None else f"{stats['median']:.0%} ({stats['p90']:.0%})"

    head = "| records | block implementation | n | " + " | ".join(n for _, n in ERROR_KINDS) + " |"
    lines = [head, "|" + " --- |" * (3 + len(ERROR_KINDS))]
    for impl, stats in result["by_impl"].items():
        lines.append(f"| all | {IMPL_NAMES.get(impl, impl)} | {stats['raw']['n']} | "
                     + " | ".join(cell(stats.get(k)) for k, _ in ERROR_KINDS) + " |")
    for sweep, stats in result["by_sweep"].items():
        lines.append(f"| {sweep} | {stats['impl']} | {stats['raw']['n']} | "
                     + " | ".join(cell(stats.get(k)) for k, _ in ERROR_KINDS) + " |")
    cal = result["calibrations"]
    lines += ["", "Median (90th percentile) of |predicted - recorded| / recorded `wall_s`. "
              f"Run {result['created']} (`{result['command']}`), 1-minute load average "
              f"{result['load_average_1m'][0]:.1f} at the start; the calibrations took "
              + ", ".join(f"{v['measure_s']:.1f} s ({k.split('|')[0]})" for k, v in
                          sorted(cal.items())) + ". Seed-to-seed spread of one design's time "
              "within a sweep (median |wall_s / the design's median - 1|): "
              + ", ".join(f"{s} {v['noise_floor']:.1%}" for s, v in
                          result["by_sweep"].items() if v["noise_floor"] is not None) + "."]
    if result.get("wide"):
        lines += ["", f"One training step of 0.65M-budget nets ({WIDE_RESOLUTION}x"
                  f"{WIDE_RESOLUTION}, batch {WIDE_BATCH}, 1 thread; `--wide`), seconds:", "",
                  "| design | fast: measured | fast: predicted | reference: measured | "
                  "reference: predicted |", "| --- | --- | --- | --- | --- |"]
        for design in dict.fromkeys(r["design_id"] for r in result["wide"]):
            by = {r["impl"]: r for r in result["wide"] if r["design_id"] == design}
            lines.append(f"| `{design}` | " + " | ".join(
                f"{by[i]['measured_s']:.2f} | {by[i]['predicted_s']:.2f}"
                for i in ("fast", "reference")) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
