"""The command lines' argument parser: bad input is one line and exit status 2.

>>> p = OneLineParser(prog="demo")
>>> _ = p.add_argument("--n", type=int)
>>> try:
...     p.parse_args(["--n", "x"])
... except SystemExit as exc:
...     exc.code
2
"""

from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error prints ``PROG: error: MESSAGE`` alone (not the usage block)."""

    def error(self, message: str) -> None:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)
