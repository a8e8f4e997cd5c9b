"""FastBlock's path per block on the CPU: fused vs reference vs the rule ("auto"), by width.

    python -m benchmarks.path_choice --out benchmarks/results/path_choice_cpu.json \\
        --update-doc docs/performance.md

One block of each design (its first; for res nets one block per stage), one thread, NCHW
float32 as trials run on the CPU, a training step (forward, backward) at batch 64 and an
evaluation forward at batch 500, at 8x8 and 16x16 (the time budget's and the cpu
fidelity's resolutions). The three paths are interleaved (reference, auto, fused, then
in reverse) and the fastest of their repetitions kept (contention only adds time), so a busy
machine slows all alike. An evaluation forward follows a parameter change, as the first
one after a training epoch does (the fused path then composes its matrices again).
The fused path is not run where ``search_space.work`` predicts a step over
``--max-fused-s`` (the widest nets: minutes a step, and gigabytes of float64 C x C
matrices): its ratio is then the prediction's (scaled by the measured reference), marked
as such. ``regret`` is the chosen path's time over the faster path's (1.0: the rule picked
the faster); ``auto`` is timed too, to show that it runs the path it chose.

About 3 CPU-minutes; the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import search_space as ss
from evaluators.provenance import git_commit
from evaluators.record import write_json_atomic
from search_space.fast import FastBlock
from search_space.work import choose_path, path_seconds

REPO = Path(__file__).resolve().parents[1]

#: Widths 64 to 5,038: the 40k-parameter presets' nets, then the 0.65M plain8 space from its
#: narrowest (many wide branches) to its widest (K = 2), and a res20 net's three stages.
DESIGNS = (
    "plain8-c64-k1.64", "plain8-c144-k1.12.12", "plain8-c200-k1.g2.g2.g2.g2.g2",
    "plain8-c256-k1.64.64.64.64.64", "plain8-c319-k1.g1", "plain8-c432-k1.g4.g4",
    "plain8-c620-k1.g4", "plain8-c704-k1.64.64", "plain8-c1024-k1.4.4.4.4.4",
    "plain8-c1504-k1.16.16.16", "plain8-c3040-k1.16", "plain8-c5038-k1.2",
    "res20-c216-k1.8.8.8-stem64",
)
TRAIN_BATCH, EVAL_BATCH = 64, 500  # the fidelities' batch_size and eval_batch_size
SIDES = (8, 16)
EVAL_SIDES = (8,)
MIN_TIMED_S = 0.5  # timed seconds per path and direction, at least (noise on a busy machine)


def blocks(design: str) -> list[tuple[str, Any]]:
    """(label, block plan) of the design's distinct blocks: per stage, its first (the
    stride-2 one that widens) and a regular one; /N is the block's down-sampling."""
    plan = ss.net_plan(ss.parse(design), 10)
    seen: dict[tuple, Any] = {}
    for b in plan.blocks:
        seen.setdefault((b.cin, b.cout, b.convs[0].hw_in), b)
    out = list(seen.values())
    if len(out) == 1:
        return [(design, out[0])]
    return [(f"{design} [{b.cin}->{b.cout}, /{32 // b.convs[-1].hw_out}]", b) for b in out]


def time_block(block: Any, path: str, training: bool, x: torch.Tensor) -> list[float]:
    """Seconds of training steps (or evaluation forwards) of a fresh block on ``path``:
    after one untimed, as many as fit ``MIN_TIMED_S`` (at least 2, at most 8)."""
    torch.manual_seed(0)
    module = FastBlock(block, path=path).train(training)
    params = list(module.parameters())

    def step() -> None:
        if training:
            xi = x.detach().requires_grad_()
            module(xi).sum().backward()
        else:
            # As after a training epoch: the parameters changed, so the fused path composes
            # its matrices again (once per evaluation phase in a trial; here per forward,
            # as the rule counts it).
            with torch.no_grad():
                torch._foreach_add_(params, 0.0)
            with torch.inference_mode():
                module(x)

    step()  # untimed: allocator, caches
    times: list[float] = []
    while len(times) < 2 or (sum(times) < MIN_TIMED_S and len(times) < 8):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def measure(block: Any, training: bool, batch: int, side: int,
            max_fused_s: float) -> dict[str, Any]:
    # The block runs at ``side`` pixels: a res20 stage-3 block sees a quarter of the image.
    hw = max(1, round(block.convs[0].hw_in * side / 32))
    scale = (hw / block.convs[0].hw_in) ** 2
    predicted = {p: batch * path_seconds(block, p, training=training, batch=batch, scale=scale)
                 for p in ("fused", "reference")}
    chosen = choose_path(block, training=training, batch=batch, scale=scale)
    x = torch.randn(batch, block.cin, hw, hw, generator=torch.Generator().manual_seed(0))
    paths = ["reference", "auto"] + (["fused"] if predicted["fused"] <= max_fused_s else [])
    samples: dict[str, list[float]] = {p: [] for p in paths}
    for order in (paths, paths[::-1]):
        for p in order:
            samples[p] += time_block(block, p, training, x)
    seconds = {p: min(v) for p, v in samples.items()}  # contention only adds time
    measured = "fused" in seconds
    fused = seconds["fused"] if measured else (
        predicted["fused"] * seconds["reference"] / predicted["reference"])
    best = min(fused, seconds["reference"])
    return {
        "mode": "train" if training else "eval", "batch": batch, "side": hw,
        "width": block.cout, "chosen": chosen, "seconds": seconds, "predicted_s": predicted,
        "samples": {p: len(v) for p, v in samples.items()}, "fused_measured": measured,
        "fused_over_reference": fused / seconds["reference"],
        "auto_over_reference": seconds["auto"] / seconds["reference"],
        # The chosen path's measured time over the faster path's (auto's own samples show
        # that it runs the chosen path: auto_over_reference).
        "regret": (fused if chosen == "fused" else seconds["reference"]) / best,
    }


def doc_block(result: dict[str, Any]) -> str:
    lines = ["| block | mode | px | fused / reference | auto / reference | auto picked | "
             "regret |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        fused = f"{r['fused_over_reference']:.2f}" + ("" if r["fused_measured"]
                                                      else " (predicted)")
        lines.append(f"| `{r['block']}` | {r['mode']} | {r['side']} | {fused} | "
                     f"{r['auto_over_reference']:.2f} | {r['chosen']} | {r['regret']:.2f} |")
    s = result["summary"]
    lines += ["", "Regret (the chosen path's time over the faster path's): median "
              f"{s['median_regret']:.2f}, worst {s['worst_regret']:.2f} (`{s['worst']}`); "
              "the fused path alone was up to "
              f"{s['max_fused_over_reference']:.0f}x the reference, the reference alone up to "
              f"{s['max_reference_over_fused']:.1f}x the fused. Run {result['created']} "
              f"(`{result['command']}`), 1-minute load average {result['load_average_1m'][0]:.1f} "
              f"before, {result['load_average_1m'][1]:.1f} after; {result['wall_s']:.0f} s."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.path_choice",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--designs", nargs="+", default=list(DESIGNS))
    p.add_argument("--max-fused-s", type=float, default=6.0,
                   help="skip the fused path where a step is predicted longer (default 6)")
    p.add_argument("--update-doc", metavar="MD",
                   help="rewrite the <!-- path-choice --> block of this markdown file")
    args = p.parse_args(argv)
    if not Path(args.out).parent.is_dir():
        p.error(f"--out {args.out!r}: directory {Path(args.out).parent} does not exist")
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    rows = []
    for design in args.designs:
        for label, block in blocks(design):
            cases = [(True, TRAIN_BATCH, s) for s in SIDES] + [(False, EVAL_BATCH, s)
                                                               for s in EVAL_SIDES]
            for training, batch, side in cases:
                row = {"block": label, **measure(block, training, batch, side,
                                                 args.max_fused_s)}
                rows.append(row)
                print(f"{label:40s} {row['mode']:5s} {row['side']:2d}px  fused/ref "
                      f"{row['fused_over_reference']:7.2f}  auto/ref "
                      f"{row['auto_over_reference']:5.2f}  {row['chosen']:9s} regret "
                      f"{row['regret']:.2f}", flush=True)
    regrets = [r["regret"] for r in rows]
    worst = max(rows, key=lambda r: r["regret"])
    result = {
        "command": "python -m benchmarks.path_choice " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "torch": torch.__version__, "threads": 1,
        "load_average_1m": [load_before, os.getloadavg()[0]],
        "wall_s": time.monotonic() - t0,
        "rows": rows,
        "summary": {
            "median_regret": statistics.median(regrets), "worst_regret": worst["regret"],
            "worst": f"{worst['block']} {worst['mode']} {worst['side']}px",
            "max_fused_over_reference": max(r["fused_over_reference"] for r in rows),
            "max_reference_over_fused": max(1 / r["fused_over_reference"] for r in rows),
        },
    }
    write_json_atomic(args.out, result)
    if args.update_doc:
        from analysis.doc_blocks import update_doc

        update_doc(args.update_doc, {"path-choice": doc_block(result)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
