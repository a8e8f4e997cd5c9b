"""FastBlock's path rule on whole nets at the rungs' own settings: each path forced on every
block against the rule (``auto``), and the rule's regret.

    python -m benchmarks.path_nets        # ~10 min -> benchmarks/results/path_nets_cpu.json
    python -m benchmarks.path_nets --quick --out /tmp/p.json   # seconds: one tiny design
    python -m benchmarks.path_nets --markdown benchmarks/results/path_nets_cpu.json

``benchmarks.path_costs`` fits the rule's costs on one block at a time; a block inside a
net runs differently (the fused path hands the next block channels-last tensors, six
blocks' saved activations do not stay in cache), so the rule is judged here, where trials
run: whole training steps (forward, loss, backward, SGD), one thread, batch 64, 16x16, under
the trials' allocator policy, of the presets' designs (fig3, fig3q, table2, table 1.1, table5,
and res20 nets of table3 and table6). Per design the net is built once per path with every
block forced onto it (``fused``, ``reference``, ``grouped``) and once as trials build it
(``auto``), the four interleaved, CPU-second medians of ``--reps`` steps.
``regret`` is the fastest forced path's rate over the rate of the path the rule picked
(forced onto every block: the same work as ``auto``, without the noise of a second
measurement); where the rule mixes paths across a res net's stages, over ``auto``'s own.
1.00: the rule found the fastest path.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import roofline
from benchmarks.roofline import BATCH, checked, interleaved, make_step, parser, publish
from evaluators.provenance import git_commit
from search_space import allocator
from search_space.fast import FastBlock

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "path_nets_cpu.json"
PATHS = ("fused", "reference", "grouped", "auto")
SIDE = 16
DESIGNS = (
    # fig3 (L = 2..7) and fig3q (equal block weights)
    "plain8-c72-k1.g1", "plain8-c144-k1.12.12", "plain8-c156-k1.6.6.6",
    "plain8-c160-k1.4.4.4.4", "plain8-c156-k1.3.3.3.3.3", "plain8-c138-k1.3.3.3.3.3.3",
    "plain8-c174-k1.6.6.6", "plain8-c188-k1.4.4.4.4", "plain8-c198-k1.3.3.3.3.3",
    # table2
    "plain8-c64-k1.64", "plain8-c96-k1.96", "plain8-c128-k1.128", "plain8-c256-k1.16.16",
    "plain8-c361-k1.19.19",
    # table 1.1
    "plain8-c96-k1.g2", "plain8-c310-k1.2", "plain8-c64-k1.g8.g8", "plain8-c144-k1.4.3.3.2.2",
    "plain8-c200-k1.g2.g2.g2.g2.g2",
    # table5 (IGCV1, IGCV2 I with a grouped 3x3, IGCV2 II) and an IGCV3-style block
    "plain8-c64-k2.g2", "plain8-c96-k2.g2", "plain8-c128-k2.g2", "plain8-c98-k2.7.7",
    "plain8-c162-k2.9.9", "plain8-c242-k2.11.11", "plain8-c100-k1.10.10",
    "plain8-c24-kg2.1.g2-s2-t6-relu",
    # res20: table3 and table6
    "res20-c96-k2.g2", "res20-c216-k1.8.8.8-stem64", "res20-c48-k2.g2",
    "res20-c80-k1.10.10/1.16.16/1.20.20",
)


def build(design: str, path: str) -> torch.nn.Module:
    """The net of ``design`` with FastBlocks, each forced onto ``path`` (``auto``: the rule)."""
    net = roofline.build(design, "fast", SIDE)
    for m in net.modules():
        if isinstance(m, FastBlock):
            m.path = path
    return net


def picks(net: torch.nn.Module) -> list[str]:
    """The training path the rule takes for each distinct block of ``net`` at ``SIDE``."""
    return sorted({m.chosen_path(BATCH, max(1, m.block_plan.convs[0].hw_in * SIDE // 32))
                   for m in net.modules() if isinstance(m, FastBlock)})


def time_design(design: str, side: int, reps: int) -> dict[str, Any]:
    nets = {p: build(design, p) for p in PATHS}
    samples, med = interleaved({p: make_step(net, side)[0] for p, net in nets.items()}, reps)
    rate = {p: BATCH / s for p, s in med.items()}
    forced = {p: rate[p] for p in PATHS if p != "auto"}
    return {"design": design, "side": side, "img_per_s": rate,
            "fastest": max(forced, key=forced.get), "auto_picks": picks(nets["auto"]),
            "spread": max((max(v) - min(v)) / statistics.median(v) for v in samples.values())}


def regret(row: dict[str, Any]) -> float:
    """The fastest forced path's rate over the rule's pick's (see the module docstring)."""
    rate = row["img_per_s"]
    fastest = max(rate[p] for p in PATHS if p != "auto")
    (pick,) = row["auto_picks"] if len(row["auto_picks"]) == 1 else ("auto",)
    return fastest / rate[pick]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    worst = max(rows, key=regret)
    return {"median_regret": statistics.median(regret(r) for r in rows),
            "worst_regret": regret(worst), "worst": worst["design"],
            "over_1_05": sum(regret(r) > 1.05 for r in rows),
            "picked_fastest": sum(r["auto_picks"] == [r["fastest"]] for r in rows)}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Run {result['created']}, commit {result['commit']}, one thread, batch "
             f"{BATCH}, {result['rows'][0]['side']}x{result['rows'][0]['side']}, allocator "
             f"{result['allocator']}; 1-minute load average {result['load_average_1m'][0]:.1f} "
             f"before, {result['load_average_1m'][1]:.1f} after; {result['wall_s']:.0f} s "
             f"(`{result['command']}`).", "",
             "| design | fused img/s | reference | grouped | auto | fastest forced | auto "
             "picks | regret |", "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
    for r in result["rows"]:
        ips = r["img_per_s"]
        lines.append(f"| `{r['design']}` | " + " | ".join(f"{ips[p]:.0f}" for p in PATHS)
                     + f" | {r['fastest']} | {', '.join(r['auto_picks'])} | "
                     f"{regret(r):.2f} |")
    s, n = summary(result["rows"]), len(result["rows"])
    lines += ["", f"The rule picked the fastest forced path for {s['picked_fastest']} of {n} "
              f"designs. Regret: median {s['median_regret']:.2f}, worst "
              f"{s['worst_regret']:.2f} (`{s['worst']}`); {s['over_1_05']} of {n} above 1.05."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser("path_nets", __doc__, OUT, 5, "one tiny design, 2 repetitions: a check")
    args = checked(p, argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    t0, load0, commit = time.monotonic(), os.getloadavg()[0], git_commit()  # the code timed
    torch.set_num_threads(1)
    heap = allocator.for_trial()  # the path rule assumes the trials' allocator policy
    designs, reps = (("plain8-c16-k1.4.4",), 2) if args.quick else (DESIGNS, args.reps)
    rows = []
    for design in designs:
        row = time_design(design, SIDE, reps)
        rows.append(row)
        print(f"{design:36s} " + " ".join(f"{k} {v:6.1f}" for k, v in row["img_per_s"].items())
              + f"  regret {regret(row):.2f}", flush=True)
    result = {
        "command": "python -m benchmarks.path_nets " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit, "torch": torch.__version__, "allocator": heap,
        "load_average_1m": [load0, os.getloadavg()[0]], "wall_s": time.monotonic() - t0,
        "rows": rows, "summary": summary(rows),
    }
    publish(args, result, "path-nets", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
