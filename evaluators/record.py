"""The result record, one per (design, fidelity, dataset, seed): its one owner.

Everything that makes (:func:`make_result`, the one place a ``Result`` is built), keys,
writes, reads or lists the columns of a record imports this module: the evaluators (a
trained record), the studies (the store, a stopped trial's record), the analysis (the
DataFrame) and the benchmarks. It imports no torch (a test checks), so the driver of a sweep
and the analysis can use it without the training stack; the schema is
described in docs/internals.md.

A record is ``Result.to_dict()``: the ``search_space.describe()`` keys of the net that was
trained, then the record's own keys (:data:`RECORD_KEYS`). Its file is
``records/<record_key>.json``, written by :func:`write_json_atomic`.

Example:
    >>> info = describe_info("plain8-c144-k1.12.12", num_classes=10)
    >>> r = make_result(info, fidelity="cpu", fidelity_config={"epochs": 2},
    ...     dataset="cifar10", seed=0, val_acc=0.41, test_acc=0.40, wall_s=160.0,
    ...     device="cpu", torch_version="2.13.0")
    >>> record = r.to_dict()
    >>> record_key(record), record["params"], Result.from_dict(record) == r
    ('5dbc94b10bebd11e', 39322, True)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import search_space as ss
from evaluators.provenance import Provenance, provenance

KEY = ("design_id", "fidelity", "dataset", "seed")  # what makes a record one of a kind
STATUSES = ("ok", "failed")
STOPPED = "stopped:"  # the reason of a failed record that ASHA stopped early begins so
CURVE_KEYS = ("epoch", "train_loss", "train_acc", "val_acc", "seconds")  # one row per epoch


#: The batch sizes whose forward latency a record holds (``latency_b1_ms``, ``latency_b64_ms``).
LATENCY_BATCHES = (1, 64)


@dataclass(frozen=True)
class Result:
    """What one evaluation produced. ``to_dict()`` flattens ``design`` into the top level."""

    design_id: str  # same as design["id"]
    fidelity: str  # the fidelity's name
    fidelity_config: dict[str, Any]  # Fidelity.to_dict() of the config that ran
    dataset: str  # synthetic, cifar10, cifar100, tinyimagenet
    seed: int
    status: str  # "ok" or "failed"
    reason: str | None  # for "failed": "diverged: ...", "out of memory: ...", "error: ...",
    #                     "stopped: ..." (ASHA stopped it early)
    curve: tuple[dict[str, Any], ...]  # per epoch: CURVE_KEYS
    val_acc: float | None  # final, in [0, 1]
    test_acc: float | None  # final, in [0, 1]
    wall_s: float  # the whole evaluation, data loading included
    latency_b1_ms: float | None  # median forward latency on `device`, batch 1
    latency_b64_ms: float | None  # batch 64
    device: str  # "cpu", "cuda:NVIDIA H100 80GB HBM3", ...
    torch_version: str
    commit: str  # git commit of the code; "unknown" outside a git checkout
    created: str  # ISO-8601 UTC
    # True when the code (provenance.CODE_PATHS) differed from `commit`; None: unknown (no git, or a
    # record written before the flag existed).
    commit_dirty: bool | None = None
    # Zero-cost scores at initialisation (evaluators.zero_cost, a ``zc`` fidelity):
    # {"scores": {name: float | None}, "seconds": {...}, "errors": {name: message}}.
    # None, and then absent from to_dict(), in every training record.
    zero_cost: dict[str, Any] | None = None
    design: dict[str, Any] = field(default_factory=dict)  # search_space.describe() of the net

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r}; expected one of {STATUSES}")
        if (self.status == "failed") != (self.reason is not None):
            raise ValueError(f"status={self.status!r} with reason={self.reason!r}: a reason "
                             "is given exactly when the status is 'failed'")

    @property
    def ok(self) -> bool:
        """True when training finished."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the describe() keys, then the record's own keys (``zero_cost``
        only when there are scores)."""
        own = {name: getattr(self, name) for name in RECORD_KEYS}
        if own["zero_cost"] is None:  # a training record: its file is what it always was
            del own["zero_cost"]
        clash = own.keys() & self.design.keys()
        if clash:
            raise ValueError(f"describe() keys {sorted(clash)} clash with record keys")
        own["curve"] = list(self.curve)
        return copy.deepcopy({**self.design, **own})

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Result:
        """Inverse of :meth:`to_dict`: keys not of the record itself are describe() keys.
        A record written before an optional key existed (:data:`OPTIONAL_KEYS`) loads."""
        missing = set(RECORD_KEYS) - set(OPTIONAL_KEYS) - record.keys()
        if missing:
            raise ValueError(f"record lacks keys {sorted(missing)}")
        own = {k: copy.deepcopy(v) for k, v in record.items() if k in RECORD_KEYS}
        own["curve"] = tuple(own["curve"])
        design = {k: copy.deepcopy(v) for k, v in record.items() if k not in RECORD_KEYS}
        return cls(**own, design=design)


#: The record's own keys, in field order (the describe() keys come before them).
RECORD_KEYS = tuple(f.name for f in dataclasses.fields(Result) if f.name != "design")
#: Own keys that records written by older code lack; everything else is always there.
OPTIONAL_KEYS = tuple(f.name for f in dataclasses.fields(Result)
                      if f.name != "design" and f.default is not dataclasses.MISSING)
#: Own keys holding a number measured once per record (final accuracies, seconds, latencies),
#: read off the schema's types: the per-record numbers of a frame and of a table.
MEASURES = tuple(f.name for f in dataclasses.fields(Result) if f.type in ("float", "float | None"))
#: Every column of a record.
COLUMNS = (*ss.DESCRIBE_KEYS, *RECORD_KEYS)


def trial_key(design_id: str, fidelity: str, dataset: str, seed: int) -> str:
    """sha1("design_id|fidelity|dataset|seed")[:16]: the file name of a record."""
    text = f"{design_id}|{fidelity}|{dataset}|{int(seed)}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def record_key(record: Mapping[str, Any]) -> str:
    """The key of a record (:func:`trial_key` of its KEY fields)."""
    return trial_key(*(record[k] for k in KEY))


def is_stopped(record: Mapping[str, Any]) -> bool:
    """True for the failed record of a trial that ASHA stopped early."""
    return str(record.get("reason") or "").startswith(STOPPED)


def describe_info(design: ss.Design | str, num_classes: int | None = None,
                  input_size: int | None = None) -> dict[str, Any]:
    """``search_space.describe()`` of the net built for ``num_classes`` and ``input_size``,
    as JSON types (a record holds what its file holds: lists, not tuples)."""
    design = ss.parse(design) if isinstance(design, str) else design
    return json.loads(json.dumps(ss.describe(design, num_classes, input_size)))


def utc_now() -> str:
    """A record's ``created``: ISO-8601 UTC to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def make_result(design: Mapping[str, Any], *, fidelity: str,
                fidelity_config: Mapping[str, Any], dataset: str, seed: int, wall_s: float,
                device: str, torch_version: str, reason: str | None = None,
                curve: Sequence[Mapping[str, Any]] = (), val_acc: float | None = None,
                test_acc: float | None = None, latency: Mapping[int, float | None] | None = None,
                zero_cost: dict[str, Any] | None = None, made: Provenance | None = None,
                created: str | None = None) -> Result:
    """The one factory of a :class:`Result`: every record, trained, stopped or scored, is
    built here, so a new field is added in one place.

    Args:
        design: describe_info() of the net (its ``id`` is the record's ``design_id``).
        reason: None for an "ok" record; the reason of a "failed" one.
        latency: batch size -> median forward milliseconds (1 and 64 are recorded).
        made: which code made it; this checkout's :func:`provenance` when None.
        created: ISO-8601 UTC; now (:func:`utc_now`) when None.
    """
    latency = latency or {}
    made = made or provenance()
    return Result(
        design_id=design["id"], fidelity=fidelity, fidelity_config=dict(fidelity_config),
        dataset=dataset, seed=seed, status="ok" if reason is None else "failed",
        reason=reason, curve=tuple(curve), val_acc=val_acc, test_acc=test_acc,
        wall_s=wall_s, latency_b1_ms=latency.get(1), latency_b64_ms=latency.get(64),
        device=device, torch_version=torch_version, commit=made.commit,
        commit_dirty=made.dirty, created=created or utc_now(), zero_cost=zero_cost,
        design=dict(design))


def stopped_result(design: Mapping[str, Any], *, fidelity: str,
                   fidelity_config: Mapping[str, Any], dataset: str, seed: int,
                   curve: Sequence[Mapping[str, Any]], epoch: int, wall_s: float, device: str,
                   torch_version: str) -> Result:
    """The record of a trial ASHA stopped after ``epoch``: its curve so far, no accuracy.

    Args:
        design: describe_info() of the net the trial trained.
        fidelity, fidelity_config: the fidelity's name and config (its ``epochs`` is the
            length of a full training).
        curve: the epochs the trial reported (CURVE_KEYS each).
        wall_s: seconds from the trial's start to its stop.
        device, torch_version: of the worker that ran it.
    """
    val = curve[-1].get("val_acc") if curve else None
    return make_result(
        design, fidelity=fidelity, fidelity_config=fidelity_config, dataset=dataset,
        seed=seed, reason=f"{STOPPED} ASHA stopped the trial after epoch {epoch} of "
                          f"{fidelity_config['epochs']} (val_acc {val})",
        curve=[dict(row) for row in curve], wall_s=wall_s, device=device,
        torch_version=torch_version)


# --- files ----------------------------------------------------------------------------------


def write_atomic(path: Path | str, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` whole or not at all: ``write(binary_file)`` fills a temporary file
    beside it (``os.replace`` is atomic within one file system), which is fsync'ed and then
    renamed, so a reader sees the old file or the new one and a crash cannot leave an empty
    file under the final name. The file gets the mode any new file gets (0666 less the
    umask): records, releases and docs are for reading. Temporary names start with a dot,
    which readers of a directory skip."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path | str, obj: Any, *, sort_keys: bool = True) -> None:
    """:func:`write_atomic` of ``obj`` as indented JSON with a final newline (NaN allowed,
    as Python's json writes it); ``sort_keys=False`` keeps the order of a hand-made doc."""
    text = json.dumps(obj, indent=1, sort_keys=sort_keys, allow_nan=True) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))


@contextlib.contextmanager
def staged_dir(parent: Path | str, name: str) -> Iterator[Path]:
    """A temporary directory in ``parent`` (``.name-XXXX``: a dot name, which readers of a
    directory skip) to build files or a directory in before :func:`publish` moves them
    into place; removed on leaving, with whatever was not moved out."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(built: Path, dest: Path | str) -> None:
    """Move a finished file or directory, built in a :func:`staged_dir` beside ``dest``, to
    ``dest`` whole (``os.replace``: atomic within one file system); a file there is
    replaced, a non-empty directory is not (OSError)."""
    os.replace(built, dest)


def replace_dir(out_dir: Path | str, fill: Callable[[Path], object], *,
                overwrite: bool = False) -> Path:
    """Make directory ``out_dir`` whole or not at all: ``fill(tmp)`` fills a
    :func:`staged_dir` beside it, renamed into place (with the mode any new directory
    gets); on any error ``out_dir`` is as it was. A non-empty one is replaced only with
    ``overwrite``."""
    out = Path(out_dir)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"no directory {out.parent} to write {out.name} in")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (overwrite it with --overwrite)")
    with staged_dir(out.parent, out.name) as tmp:
        old = out.with_name(f"{tmp.name}-old")
        try:
            fill(tmp)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's is 0700
            if out.exists():
                publish(out, old)
            try:
                publish(tmp, out)
            except BaseException:
                if old.exists():
                    publish(old, out)
                raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    return out


def records_dir(run_dir: Path | str) -> Path:
    """Where a run directory keeps its records: ``RUN_DIR/records/<record_key>.json``."""
    return Path(run_dir) / "records"


def read_record(path: Path | str) -> dict[str, Any]:
    """The record in ``path``. A record older than ``design_id`` gets it from ``id``.

    Raises:
        OSError: the file cannot be read (FileNotFoundError when there is none).
        ValueError: naming the file: not JSON, not an object, or a KEY field missing.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:  # also a file that is not UTF-8
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a JSON object")
    record.setdefault("design_id", record.get("id"))
    missing = [k for k in KEY if record.get(k) is None]
    if missing:
        raise ValueError(f"{path}: record lacks {', '.join(missing)}")
    return record


def read_records(records_dir: Path | str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every record under ``records_dir`` with its file, in file-name (key) order. Writers'
    temporary files are skipped; a file that is not a record is skipped with a warning
    naming it (one bad file does not hide a whole run)."""
    for path in sorted(Path(records_dir).glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            yield path, read_record(path)
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipping a file that is not a record: {exc}", stacklevel=2)
