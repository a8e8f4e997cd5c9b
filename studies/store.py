"""The result store of a run directory: one JSON record per (design, fidelity, dataset, seed).

Layout (docs/internals.md)::

    RUN_DIR/run.json            the command's configuration, written once
    RUN_DIR/records/<key>.json  one result record each, key = trial_key(...)

Every write goes to a temporary file in the same directory and is then ``os.replace()``d,
so a reader (``analysis.load_results``, a second driver, a re-run after ``kill -9``) never
sees half a record, and a second write of the same key replaces the first instead of adding
a duplicate. The store is the source of truth of a sweep: the Optuna study is reconciled
from it, never the other way round.

Example:
    >>> import tempfile
    >>> store = RecordStore(tempfile.mkdtemp())
    >>> k = trial_key("plain8-c64-k1.64", "smoke", "synthetic", 0)
    >>> k
    '9284867030e29939'
    >>> store.has(k)
    False
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def trial_key(design_id: str, fidelity: str, dataset: str, seed: int) -> str:
    """sha1("design_id|fidelity|dataset|seed")[:16]: the name of a record in ``records/``."""
    text = f"{design_id}|{fidelity}|{dataset}|{int(seed)}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def record_key(record: dict[str, Any]) -> str:
    """The key of a result record (``evaluators.Result.to_dict()``)."""
    return trial_key(record["design_id"], record["fidelity"], record["dataset"], record["seed"])


def write_json_atomic(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` so that readers see the old file or the new, whole.

    The temporary file lives beside the target (``os.replace`` is atomic only within one
    file system) and is fsync'ed first, so a crash right after the rename cannot leave an
    empty file under the final name.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True, allow_nan=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class RecordStore:
    """``RUN_DIR/records/``: read and write result records by key.

    Creating a store creates nothing on disk; the first :meth:`write` makes ``records/``.
    """

    def __init__(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "records"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock of the run directory (``RUN_DIR/.lock``, flock) for a
        check-then-write that two drivers on one run directory must not interleave, such
        as "no COMPLETE trial for this key yet, so tell this one COMPLETE"."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / ".lock", "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def path(self, key: str) -> Path:
        """Where the record of ``key`` lives (whether or not it exists)."""
        return self.dir / f"{key}.json"

    def has(self, key: str) -> bool:
        """True when a record of ``key`` is stored (ok or failed)."""
        return self.path(key).is_file()

    def read(self, key: str) -> dict[str, Any] | None:
        """The record of ``key``, or None when there is none."""
        try:
            return json.loads(self.path(key).read_text())
        except FileNotFoundError:
            return None

    def write(self, record: dict[str, Any]) -> str:
        """Store ``record`` atomically under its key; return the key."""
        key = record_key(record)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path(key), record)
        return key

    def keys(self) -> set[str]:
        """Keys of every stored record (temporary files of interrupted writes excluded)."""
        if not self.dir.is_dir():
            return set()
        return {p.stem for p in self.dir.glob("*.json") if not p.name.startswith(".")}

    def records(self) -> Iterator[dict[str, Any]]:
        """Every stored record, in key order."""
        for key in sorted(self.keys()):
            record = self.read(key)
            if record is not None:
                yield record
