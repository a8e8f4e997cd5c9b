"""The result store of a run directory: one JSON record per (design, fidelity, dataset, seed).

Layout (docs/internals.md)::

    RUN_DIR/run.json            the command's configuration, written once
    RUN_DIR/records/<key>.json  one result record each, key = evaluators.record.record_key

Every write is :func:`evaluators.record.write_json_atomic` (a temporary file, then
``os.replace()``), so a reader (``analysis.load_results``, a second driver, a re-run after
``kill -9``) never sees half a record, and a second write of the same key replaces the first
instead of adding a duplicate. The store is the source of truth of a sweep: the Optuna study
is reconciled from it, never the other way round.

Example:
    >>> import tempfile
    >>> from evaluators.record import trial_key
    >>> store = RecordStore(tempfile.mkdtemp())
    >>> store.has(trial_key("plain8-c64-k1.64", "smoke", "synthetic", 0)), store.keys()
    (False, set())
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evaluators.record import read_record, read_records, record_key, records_dir, write_json_atomic


class RecordStore:
    """``RUN_DIR/records/``: read and write result records by key.

    Creating a store creates nothing on disk; the first :meth:`write` makes ``records/``.
    """

    def __init__(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)
        self.dir = records_dir(self.run_dir)

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
            return read_record(self.path(key))
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
        for _, record in read_records(self.dir):
            yield record
