"""python -m analysis report RUN_DIR | dashboard RUN_DIR (see docs/analysis.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analysis.cli import ArgumentParser, fail


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("report", help="write one self-contained HTML report of a run")
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("--out", metavar="FILE.html", help="default: RUN_DIR/report.html")
    r.add_argument("--storage", metavar="URL", help="also join trials of this Optuna storage")
    r.add_argument(
        "--metric",
        choices=("test_acc", "val_acc"),
        help="default: test_acc where every ok record has it, else val_acc",
    )
    r.add_argument(
        "--param-tol",
        type=float,
        default=0.25,
        metavar="F",
        help="'about equal params' means within a factor 1+F (default 0.25)",
    )
    r.add_argument("--n-boot", type=int, default=4000, metavar="B", help="bootstrap replicates")
    r.add_argument("--seed", type=int, default=0, help="bootstrap RNG seed (default 0)")

    d = sub.add_parser("dashboard", help="serve optuna-dashboard on the run's study")
    d.add_argument("run_dir", metavar="RUN_DIR")
    d.add_argument("--storage", metavar="URL", help="default: sqlite:///RUN_DIR/optuna.db")
    d.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    d.add_argument("--port", type=int, default=0, help="default: a free port")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for bad input, with a one-line error)."""
    args = _parser().parse_args(argv)
    if args.command == "report":
        from analysis.report.html import ReportInputError, write_report

        try:
            out = write_report(
                args.run_dir,
                args.out,
                storage=args.storage,
                metric=args.metric,
                param_tol=args.param_tol,
                n_boot=args.n_boot,
                seed=args.seed,
            )
        except ReportInputError as exc:
            return fail("python -m analysis report", exc)
        print(out)
        return 0
    from analysis.report.dashboard import DashboardInputError, serve_dashboard, storage_url

    try:
        url = storage_url(args.run_dir, args.storage)
        serve_dashboard(
            url,
            host=args.host,
            port=args.port,
            announce=lambda u: print(f"optuna-dashboard: {u}", flush=True),
        )
    except DashboardInputError as exc:
        return fail("python -m analysis dashboard", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
