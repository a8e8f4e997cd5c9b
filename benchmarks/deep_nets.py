"""Why the 20-layer nets diverged at the `cpu` rung, and whether the v2 rungs train them.

At `cpu`, Table 4's res20/res26 nets ended their first epoch at a mean training loss of
3.5-5.2 (above ln 10 = 2.30, the loss of a uniform guess), and res20 IGCV2 scored 0.24 where
res8 scored 0.42. This measures, per SGD step of the first epoch: the loss, the gradient
norm (all parameters, before the update) and the learning rate, for the paper's recipe and
for two repairs: a linear lr warm-up (``Fidelity.warmup_steps``) and gamma = 0 in the last
BatchNorm of each residual branch (``Fidelity.zero_init_residual``, what the v2 rungs use).
Then whole trials of res20 and res8 IGCV2 at `cpu-v2` (test accuracy on all 10,000 images).

    nice python -m benchmarks.deep_nets      # -> benchmarks/results/deep_nets_cpu.json

One job at a time, one thread; the JSON is rewritten after each job and a re-run skips the
jobs it holds (they are slow on a shared 2-core machine: about 1 min per res20 epoch at
`cpu-v2`, 4-5 min at `cpu2-v2`). docs/fidelities.md ("Deep nets at the CPU rungs") quotes
the JSON (tests/test_fidelity_docs.py checks it).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from analysis.cli import ArgumentParser
from evaluators.fidelity import Fidelity, get_fidelity, with_changes
from evaluators.provenance import git_commit
from evaluators.record import write_json_atomic

OUT = Path(__file__).resolve().parent / "results" / "deep_nets_cpu.json"
RES20 = "res20-c64-k1.8.8/1.16.16/1.32.32"  # Table 4's IGCV2 C64 (K 8/16/32 per stage)
RES26 = "res26-c64-k1.8.8/1.16.16/1.32.32"
RES8 = "res8-c64-k1.8.8/1.16.16/1.32.32"
XCEPTION20 = "res20-c35-k1.g1"  # Table 4's Xception C35
XCEPTION26 = "res26-c35-k1.g1"
PAPER = {"zero_init_residual": False}  # the v2 rung's data with the paper's start
WARMUP = {"zero_init_residual": False, "warmup_steps": 20}
WARMUP50 = {"zero_init_residual": False, "warmup_steps": 50}
WARMUP_EPOCH = {"zero_init_residual": False, "warmup_steps": 113}  # cpu-v2's first epoch
ACCURACY_SEEDS = (0, 1, 2)


def jobs() -> list[dict[str, Any]]:
    """Every measurement, most informative first (a run cut short keeps the first)."""
    def first(design: str, changes: dict[str, Any], rung: str = "cpu-v2") -> dict[str, Any]:
        return {"kind": "first_epoch", "design": design, "rung": rung, "changes": changes,
                "seed": 0}

    out = [first(d, c) for d in (RES20, RES26) for c in (PAPER, {})]
    out.append(first(RES20, {}, "cpu2-v2"))
    out += [{"kind": "trial", "design": d, "rung": "cpu-v2", "changes": {}, "seed": s}
            for s in ACCURACY_SEEDS for d in (RES20, RES8)]
    # what zero-init costs where nothing diverged: res8 (and res20) from the paper's start
    out += [{"kind": "trial", "design": d, "rung": "cpu-v2", "changes": PAPER, "seed": 0}
            for d in (RES8, RES20)]
    out += [first(RES20, WARMUP), first(RES20, WARMUP50)]
    out += [first(d, c) for d in (XCEPTION20, XCEPTION26) for c in (PAPER, {})]
    out.append(first(RES20, PAPER, "cpu2-v2"))
    # a warm-up over the whole lr-0.1 epoch, the paper's start: does it spare res8?
    out.append(first(RES20, WARMUP_EPOCH))
    out += [{"kind": "trial", "design": d, "rung": "cpu-v2", "changes": WARMUP_EPOCH,
             "seed": 0} for d in (RES8, RES20)]
    # the first epoch of Table 4's three IGCV2 depths at `cpu2-v2` too (res20's is above):
    # "at every CPU rung" (issue 23); whole cpu2-v2 trials cost 6-21 min each here
    out += [first(d, {}, "cpu2-v2") for d in (RES8, RES26)]
    return out


def job_name(job: dict[str, Any]) -> str:
    """``first_epoch res20-... cpu-v2+zero_init_residual=False seed 0``."""
    return f"{job['kind']} {job['design']} {fidelity_of(job).name} seed {job['seed']}"


def fidelity_of(job: dict[str, Any]) -> Fidelity:
    return with_changes(get_fidelity(job["rung"]), **job["changes"])


def first_epoch(design: str, fidelity: Fidelity, seed: int) -> dict[str, Any]:
    """The first epoch as evaluate() trains it, with a probe on every step."""
    import torch

    import search_space as ss
    from evaluators.data import load_dataset
    from evaluators.splits import make_splits
    from evaluators.train import train_epochs, zero_init_residuals

    torch.set_num_threads(1)
    device = torch.device("cpu")
    splits = make_splits(load_dataset("cifar10", os.environ.get("IGCBENCH_DATA", "data")),
                         fidelity, device)
    torch.manual_seed(seed)  # as evaluate()'s trial: seed, build, then train
    model = ss.build(ss.parse(design), num_classes=10, input_size=32)
    if fidelity.zero_init_residual:
        zero_init_residuals(model)
    steps: list[dict[str, float]] = []

    def probe(net: torch.nn.Module, optimizer: torch.optim.Optimizer,
              loss: torch.Tensor) -> None:
        norms = [p.grad.detach().pow(2).sum() for p in net.parameters() if p.grad is not None]
        steps.append({"loss": loss.item(), "grad_norm": torch.stack(norms).sum().sqrt().item(),
                      "lr": optimizer.param_groups[0]["lr"]})

    epoch = next(train_epochs(model, splits, fidelity, seed=seed, device=device,
                              on_step=probe))
    return {"epoch": epoch, **summary(steps), "steps": steps}


def summary(steps: list[dict[str, float]]) -> dict[str, Any]:
    """What the doc quotes of a first epoch's steps."""
    losses = [s["loss"] for s in steps]
    below = next((i + 1 for i, x in enumerate(losses) if x < math.log(10)), None)
    peak = max(range(len(losses)), key=losses.__getitem__)
    return {"first_grad_norm": steps[0]["grad_norm"],
            "max_grad_norm": max(s["grad_norm"] for s in steps),
            "max_loss": losses[peak], "max_loss_step": peak + 1,
            "first_step_below_ln10": below}


def trial(design: str, fidelity: Fidelity, seed: int) -> dict[str, Any]:
    import evaluators as ev

    r = ev.evaluate(design, fidelity, "cifar10",
                    seed, os.environ.get("IGCBENCH_DATA", "data"), device="cpu")
    return {"status": r.status, "val_acc": r.val_acc, "test_acc": r.test_acc,
            "curve": list(r.curve), "wall_s": r.wall_s}


def run(out: Path, only: str | None) -> dict[str, Any]:
    doc = json.loads(out.read_text()) if out.exists() else {"results": {}}
    for job in jobs():
        name = job_name(job)
        if name in doc["results"] or (only and job["kind"] != only):
            continue
        start = time.perf_counter()
        measure = first_epoch if job["kind"] == "first_epoch" else trial
        result = measure(job["design"], fidelity_of(job), job["seed"])
        doc["results"][name] = {**job, "fidelity": fidelity_of(job).name, **result,
                                "job_s": time.perf_counter() - start,
                                "load_1min": os.getloadavg()[0]}
        doc.update(commit=git_commit(), machine=platform.node(),
                   command="nice python -m benchmarks.deep_nets", ln10=math.log(10))
        write_json_atomic(out, doc)
        print(f"{name}: {doc['results'][name].get('epoch') or result.get('test_acc')}",
              flush=True)
    return doc


def _start(fidelity: str) -> str:
    """How a run's fidelity name reads in the table: the rung and what differs from it."""
    rung, _, changes = fidelity.partition("+")
    def word(change: str) -> str:
        field, _, value = change.partition("=")
        return "paper's init" if change == "zero_init_residual=False" else (
            f"warm-up {value} steps" if field == "warmup_steps" else change)

    said = [word(c) for c in changes.split("+") if c] if changes else ["zero-init (v2)"]
    return f"`{rung}`, {', '.join(said)}"


def markdown(doc: dict[str, Any]) -> str:
    """The two tables docs/fidelities.md carries: first epochs, then whole trials."""
    lines = ["| design | rung, start | epoch-1 mean loss | loss: step 1, peak (step) | "
             "grad norm: step 1, max | steps with loss > ln 10 | val after epoch 1 |",
             "| --- | --- | ---: | --- | --- | ---: | ---: |"]
    runs = [r for r in doc["results"].values() if r["kind"] == "first_epoch"]
    for r in sorted(runs, key=lambda r: (r["rung"], r["design"], r["fidelity"])):
        lines.append(
            f"| `{r['design']}` | {_start(r['fidelity'])} | {r['epoch']['train_loss']:.2f} | "
            f"{r['steps'][0]['loss']:.2f}, {r['max_loss']:.2f} ({r['max_loss_step']}) | "
            f"{r['first_grad_norm']:.2f}, {r['max_grad_norm']:.2f} | "
            f"{sum(x['loss'] > math.log(10) for x in r['steps'])} of {len(r['steps'])} | "
            f"{r['epoch']['val_acc']:.3f} |")
    lines += ["", "| design | rung | seed | val acc | test acc (10,000 images) |",
              "| --- | --- | ---: | ---: | ---: |"]
    trials = [r for r in doc["results"].values() if r["kind"] == "trial"]
    for r in sorted(trials, key=lambda r: (r["design"], r["fidelity"], r["seed"])):
        lines.append(f"| `{r['design']}` | `{r['fidelity']}` | {r['seed']} | "
                     f"{r['val_acc']:.4f} | {r['test_acc']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.deep_nets",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--only", choices=("first_epoch", "trial"), default=None,
                   help="run one kind of job only")
    p.add_argument("--markdown", action="store_true",
                   help="print the doc's tables from --out and run nothing")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return 0
    run(args.out, args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
