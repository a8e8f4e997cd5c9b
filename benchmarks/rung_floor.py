"""The time budget's floor: how many SGD steps a rung must train for the 0.65M nets to leave
chance, and what the hour plans with that floor.

    python -m benchmarks.rung_floor --data-dir data --run-dir runs/budget-650k-1h \\
        --update-doc docs/studies.md plain8-c319-k1.g1 plain8-c446-k1.g2 \\
        plain8-c1280-k1.64 plain8-c992-k1.16.16.16.16.16 plain8-c3040-k1.16

(1) Each named design trained once (seed 0, one thread, CIFAR-10) at rung 1 of the `cpu`
fidelity's ladder (3,600 images x 1 epoch at 8x8: 57 SGD steps of 64), the cheapest rung
over the floor (``studies.halving.MIN_STEPS``); the rung below it (900 images, 15 steps)
left all 61 nets the hour trained at chance. (2) The plan the time budget makes for 1, 2
and 4 hours on 2 workers over the hour's 73 designs, from the cost model refitted to the
hour's records (``--run-dir``: as the driver refits after its probe). Minutes per design
(the widest about 8 CPU-minutes); resumable: designs already in ``--out`` are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from evaluators import evaluate, get_fidelity
from evaluators.cost_model import trial_shape
from evaluators.provenance import git_commit
from evaluators.record import utc_now, write_json_atomic
from studies import estimate as est
from studies import halving as hv
from studies.budget_plan import RUNG_OVERHEAD_S, plan_rungs, trial_seconds
from studies.rungs import ladder_fidelities, refit_calibration
from studies.store import RecordStore
from studies.time_budget import STATE_FILE

REPO = Path(__file__).resolve().parents[1]

HOURS = (1, 2, 4)
WORKERS = 2
TEST_IMAGES = 2000  # rung 1's test images (the cpu fidelity's)


def doc_block(result: dict) -> str:
    """The markdown docs/studies.md shows: each design's accuracies at rung 1 (the test
    accuracy with its 95% Clopper-Pearson interval), then the plans."""
    from scipy import stats

    import search_space as ss

    lines = ["| design | width | L | val | test [95% interval] | wall |",
             "| --- | --- | --- | --- | --- | --- |"]
    for t in result["trained"]:
        d = ss.parse(t["design"])
        ci = stats.binomtest(round(t["test_acc"] * TEST_IMAGES), TEST_IMAGES).proportion_ci(
            0.95, "exact")
        lines.append(f"| `{t['design']}` | {d.width:,} | {d.L} | {t['val_acc']:.3f} | "
                     f"{t['test_acc']:.3f} [{ci.low:.3f}, {ci.high:.3f}] | "
                     f"{est.fmt_seconds(t['wall_s'])} |")
    lines.append("")
    for p in result["plans"]:
        rungs = ", then ".join(
            f"{'a sample of ' if k == 0 and p['sampled'] else ''}{n} at rung {r}"
            if k == 0 else f"the best {n} at rung {r}"
            for k, (r, n) in enumerate(zip(p["rungs"], p["designs"], strict=True)))
        lines.append(f"- {p['hours']} h: {rungs} (predicted "
                     f"{est.fmt_seconds(p['predicted_s'])})")
    return "\n".join(lines)


def plans(run_dir: Path) -> list[dict]:
    """The plan for each of ``HOURS`` over the run's designs, from its refitted records."""
    state = json.loads((run_dir / STATE_FILE).read_text())
    designs = state["rungs"][0]["designs"]
    records = [r for r in RecordStore(run_dir).records() if r.get("status") == "ok"]
    ladder = ladder_fidelities(get_fidelity("cpu"), "cifar10")
    cal = refit_calibration(est.calibration(ladder[-1], threads=1), records)
    by_rung = [trial_seconds(designs, f, "cifar10", cal, 10) for f in ladder]
    costs = {d: [rung[i] for rung in by_rung] for i, d in enumerate(designs)}
    out = []
    for hours in HOURS:
        plan = plan_rungs(designs, costs, 1, WORKERS, hours * 3600.0, RUNG_OVERHEAD_S)
        out.append({"hours": hours, "rungs": list(plan.rungs), "designs": list(plan.designs),
                    "sampled": plan.sampled, "predicted_s": round(plan.predicted_s)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("designs", nargs="*")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "rung_floor_cpu.json")
    parser.add_argument("--update-doc", metavar="MD", help="rewrite its rung-floor block")
    args = parser.parse_args()
    result = json.loads(args.out.read_text()) if args.out.is_file() else {"trained": []}
    ladder = ladder_fidelities(get_fidelity("cpu"), "cifar10")
    rung = ladder[-1]
    done = {t["design"] for t in result["trained"]}
    for design in args.designs:
        if design in done:
            continue
        t0 = time.time()
        r = evaluate(design, rung, "cifar10", seed=0, data_dir=args.data_dir, threads=1)
        result["trained"].append({"design": design, "status": r.status, "val_acc": r.val_acc,
                                  "test_acc": r.test_acc, "wall_s": round(time.time() - t0, 1),
                                  "load_average": round(os.getloadavg()[0], 2)})
        shape = trial_shape(rung.to_dict(), "cifar10")
        result.update(rung=1, fidelity=rung.name,
                      steps=-(-shape.train_images // rung.batch_size) * shape.epochs,
                      min_steps=hv.MIN_STEPS, commit=git_commit(), created=utc_now())
        write_json_atomic(args.out, result)
        print(json.dumps(result["trained"][-1]), flush=True)
    result.update(plans=plans(args.run_dir), plans_from=str(args.run_dir))
    write_json_atomic(args.out, result)
    print(json.dumps(result["plans"]))
    if args.update_doc:
        from analysis.doc_blocks import update_doc

        update_doc(args.update_doc, {"rung-floor": doc_block(result)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
