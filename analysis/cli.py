"""The command lines of the analysis: bad input is one line and exit status 2.

argparse prints its usage block and then the error; a CLI of this project prints one line
naming the bad value and what is accepted (the usage stays one ``--help`` away).

Example:
    >>> p = ArgumentParser(prog="python -m analysis.x")
    >>> _ = p.add_argument("--n", type=int)
    >>> try:
    ...     p.parse_args(["--n", "two"])
    ... except SystemExit as exc:
    ...     print("exit", exc.code)
    exit 2
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (``PROG: error: MESSAGE``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(prog: str, exc: BaseException) -> int:
    """Print ``exc`` as the one-line error of ``prog``; return the exit status 2."""
    print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
    return 2
