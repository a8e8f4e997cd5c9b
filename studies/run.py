"""``python studies/run.py --budget 0.65M``: search the IGCV2 design space under a budget.

``--dry-run`` lists what would be evaluated, with exact costs (``--format json``: one
``search_space.describe()`` object per line). Bad input prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search_space as ss  # noqa: E402
from studies.budget import parse_budget  # noqa: E402
from studies.dry_run import write_dry_run  # noqa: E402

DATASET_CLASSES = {"synthetic": 10, "cifar10": 10, "cifar100": 100, "tinyimagenet": 200}


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="studies/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", required=True,
                   help="maximum parameters of the whole network: 650000, 650k or 0.65M")
    p.add_argument("--net", default="plain8",
                   help="network template: plain8 (default), res20, or resD for D = 3B+2")
    p.add_argument("--dataset", default="cifar10", help=", ".join(DATASET_CLASSES))
    p.add_argument("--dry-run", action="store_true",
                   help="list the designs that would be evaluated, with exact costs, and exit")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="dry-run output: aligned table (default) or one JSON object per line")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        budget = parse_budget(args.budget)
        if args.dataset not in DATASET_CLASSES:
            raise UsageError(
                f"unknown dataset {args.dataset!r}; accepted: {', '.join(DATASET_CLASSES)}"
            )
        num_classes = DATASET_CLASSES[args.dataset]
        designs = ss.enumerate_designs(budget, args.net, num_classes=num_classes)
    except ValueError as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        n = write_dry_run(designs, sys.stdout, args.format, num_classes)
        if args.format == "table":
            print(f"{n} designs of {args.net} within {budget:,} parameters "
                  f"({num_classes} classes)")
        return 0
    print("run.py: error: only --dry-run is implemented so far", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        sys.stderr.close()
        sys.exit(0)
