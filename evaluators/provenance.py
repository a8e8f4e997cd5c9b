"""Which code made a record: the git commit of the checkout, whether the code differed from
it, and which training code a commit holds (so records of one training code pool across
commits that changed only docs or analysis). Torch-free, like the record that uses it.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The code a record depends on: a change here (tracked or new, not ignored) makes a record
# "commit_dirty". Docs, tests, releases and run directories do not change a result.
CODE_PATHS = ("search_space", "evaluators", "studies", "analysis", "benchmarks",
              "pyproject.toml")
# The code that trains a record (the net, the data, the loop): two records whose commits
# hold the same trees here were trained by the same code, whatever else changed between.
TRAINING_CODE = ("search_space", "evaluators")
UNKNOWN_CODE = "unknown"  # training_code of a record whose commit git does not know


@dataclass(frozen=True)
class Provenance:
    """Which code made a record: the git commit and whether the code differed from it."""

    commit: str  # "unknown" outside a git checkout
    dirty: bool | None  # None when git cannot tell


@functools.lru_cache(maxsize=1)
def provenance() -> Provenance:
    """Of the checkout holding this package, taken once per process (at its first record):
    a process runs the code it imported, so an edit made while it runs is not its code."""
    return checkout_provenance(REPO)


def checkout_provenance(root: Path) -> Provenance:
    """The commit checked out at ``root`` and whether the code differs from it: tracked
    changes, staged or not, and new files git does not ignore, under CODE_PATHS only."""
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--", *CODE_PATHS) if commit else None
    return Provenance(commit or "unknown", None if status is None else bool(status))


@functools.lru_cache(maxsize=256)
def training_code(commit: str | None, root: Path = REPO) -> str:
    """Which training code a commit holds: the git tree ids of :data:`TRAINING_CODE` at
    ``commit``, 10 hex digits each (``"7abe1403be/6715f5b67f"``), computable for any record
    from history (``git rev-parse COMMIT:search_space COMMIT:evaluators``);
    :data:`UNKNOWN_CODE` when git does not know the commit (or there is no git)."""
    if not commit or commit == "unknown":
        return UNKNOWN_CODE
    out = _git(root, "rev-parse", *(f"{commit}:{path}" for path in TRAINING_CODE))
    trees = out.split() if out else []
    if len(trees) != len(TRAINING_CODE):
        return UNKNOWN_CODE
    return "/".join(t[:10] for t in trees)


def record_training_code(record: Mapping[str, Any], root: Path = REPO) -> str:
    """:func:`training_code` of a record's commit, with ``+dirty`` when the record says its
    code differed from the commit (``commit_dirty`` true): then no commit holds its code."""
    code = training_code(record.get("commit"), root)
    dirty = record.get("commit_dirty")
    return f"{code}+dirty" if dirty in (True, 1) else code  # NaN, None: not known dirty


def checkout_training_code(root: Path = REPO) -> str:
    """:func:`training_code` of the checkout at ``root`` as it is: its HEAD's, with
    ``+dirty`` when the training code there differs from HEAD (tracked or new files)."""
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--", *TRAINING_CODE)
    return training_code(commit, root) + ("+dirty" if status else "")


def git_commit() -> str:
    """``git rev-parse HEAD`` of the checkout holding this package; "unknown" otherwise."""
    return provenance().commit


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
