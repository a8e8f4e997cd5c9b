"""A versioned, checksummed release of a table: a parquet of the records and a JSON manifest.

Files, for ``--version 1.0`` in OUT_DIR::

    igcbench-1.0.parquet   one row per (design_id, fidelity, dataset, seed), sorted by that key;
                           list- and dict-valued columns (curve, K, fidelity_config) as JSON text
    igcbench-1.0.json      the manifest: format, version, fidelity configs, datasets, commit,
                           record count, and the parquet's file name, size and sha256

Both are written to a temporary file in OUT_DIR and os.replace()d, parquet first: a manifest
exists only once its parquet does. :func:`read_release` refuses a parquet whose sha256 is not
the manifest's (:class:`ChecksumError`).

CLI::

    python -m analysis.table.release RUN_DIR [RUN_DIR ...] OUT_DIR --version 1.0 [--name igcbench]
        [--overwrite]

RUN_DIR may also be a records export (.parquet, .csv). Several sources make one table (the
sweeps of several fidelities of the same designs, say); a key they share is refused. Bad
input prints one line and exits 2. The CLI prints the records per seed and, when some
(design, fidelity, dataset) lacks a seed others have, how many keys are missing: a sweep
stopped part-way through a seed shows there (see :func:`seed_coverage`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.cli import ArgumentParser, fail
from analysis.load import frame_from_records, load_results
from evaluators.record import KEY, write_atomic

FORMAT = "igcbench-table"  # the manifest's "format"; a JSON without it is not a manifest
FORMAT_VERSION = 1  # of this layout; a reader refuses a newer one
EXPORT_SUFFIXES = (".parquet", ".csv")
JSON_COLUMNS = ("curve", "K", "fidelity_config")  # always JSON text, so their type is stable
_LOCAL_COLUMNS = ("record_file", "optuna_study", "optuna_trial", "optuna_state")  # not portable
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]*")


class ChecksumError(ValueError):
    """A release's parquet is not the file its manifest describes (corrupt or replaced)."""

    def __init__(self, path: Path, expected: str, actual: str):
        self.path, self.expected, self.actual = path, expected, actual
        super().__init__(
            f"checksum mismatch for {path}: the manifest expects sha256 {expected}, "
            f"the file has {actual}; refusing a corrupt or replaced table"
        )


@dataclass(frozen=True)
class Release:
    """A verified release: its manifest, its records (as load_results gives them), its path."""

    manifest: Mapping[str, Any]
    records: pd.DataFrame
    path: Path


def write_release(
    source: str | Path | pd.DataFrame | Sequence[str | Path | pd.DataFrame],
    out_dir: str | Path,
    version: str,
    *,
    name: str = "igcbench",
    overwrite: bool = False,
) -> Path:
    """Write ``<name>-<version>.parquet`` and its manifest ``<name>-<version>.json``.

    Args:
        source: a run directory, a records export (.parquet/.csv), a results DataFrame, or
            a list of them (one table; a (design, fidelity, dataset, seed) key in two of
            them is a ValueError).
        out_dir: created if missing.
        version: e.g. "1.0"; letters, digits and ``._+-``.
        name: the file stem before the version.
        overwrite: replace an existing release of this name and version.

    Returns:
        The manifest's path.

    Raises:
        ValueError: a bad version or name, no records, or a fidelity whose records ran with
            different configs (a table mixes runs).
        FileExistsError: the release exists and ``overwrite`` is False.
    """
    for what, text in (("version", version), ("name", name)):
        if not _VERSION.fullmatch(text):
            raise ValueError(f"{what} {text!r}: use letters, digits and ._+- (e.g. 1.0)")
    df = _sources_frame(source)
    if df.empty:
        where = "the frame" if isinstance(source, pd.DataFrame) else source
        raise ValueError(f"no records in {where}: nothing to release")
    out = Path(out_dir)
    parquet, manifest_path = out / f"{name}-{version}.parquet", out / f"{name}-{version}.json"
    if not overwrite and (parquet.exists() or manifest_path.exists()):
        raise FileExistsError(
            f"release {name} {version} exists in {out}; pass --overwrite "
            "(overwrite=True) or choose another version"
        )
    df = df.drop(columns=[c for c in _LOCAL_COLUMNS if c in df.columns])
    df = df.sort_values(list(KEY), kind="stable").reset_index(drop=True)
    out.mkdir(parents=True, exist_ok=True)
    _write_pair(df, _manifest(df, version, name), parquet, manifest_path)
    return manifest_path


def _write_pair(df: pd.DataFrame, manifest: dict[str, Any], parquet: Path,
                manifest_path: Path) -> None:
    """The parquet, then the manifest naming its size and sha256 (the manifest makes the
    release: if it cannot be written the parquet goes too)."""
    payload = _encode(df)
    write_atomic(parquet, lambda f: payload.to_parquet(f, index=False))
    try:
        manifest["parquet"] = {
            "file": parquet.name,
            "bytes": parquet.stat().st_size,
            "sha256": sha256_of(parquet),
        }
        write_atomic(
            manifest_path,
            lambda f: f.write(json.dumps(manifest, indent=2, sort_keys=True).encode()),
        )
    except BaseException:
        parquet.unlink(missing_ok=True)  # no manifest, no release: leave no half of one
        raise


def seed_coverage(df: pd.DataFrame) -> str:
    """Records per seed, and which designs lack a seed the table holds for others.

    A run directory does not know which seeds its sweep was asked for (run.json keeps the
    first command's), so a release of a sweep stopped between seeds is complete for the seeds
    it has; these counts are what show it.

    >>> df = pd.DataFrame({"design_id": ["a", "b", "a"], "fidelity": "cpu",
    ...                    "dataset": "cifar10", "seed": [0, 0, 1]})
    >>> print(seed_coverage(df))
    records per seed: 0: 2, 1: 1; ragged: 1 of 4 keys missing (e.g. b cpu cifar10 1)
    """
    seeds = sorted(int(s) for s in df["seed"].dropna().unique())
    per_seed = df["seed"].value_counts()
    line = "records per seed: " + ", ".join(f"{s}: {per_seed[s]}" for s in seeds)
    held = {tuple(map(str, k)) for k in df[list(KEY)].itertuples(index=False)}
    runs = df[["design_id", "fidelity", "dataset"]].drop_duplicates()
    full = {(*map(str, r), str(s)) for r in runs.itertuples(index=False) for s in seeds}
    missing = sorted(full - held)
    if missing:
        example = " ".join(missing[0])
        line += f"; ragged: {len(missing)} of {len(full)} keys missing (e.g. {example})"
    return line


def read_release(path: str | Path) -> Release:
    """Read a release from its manifest (or its directory, or its parquet), verifying sha256.

    Raises:
        ChecksumError: the parquet's sha256 is not the manifest's.
        FileNotFoundError: the manifest or its parquet is missing.
        ValueError: not a manifest, a newer format, or a record count that disagrees.
    """
    mpath = find_manifest(Path(path))
    if mpath is None:
        raise FileNotFoundError(f"no release manifest at {path}")
    manifest = _read_manifest(mpath)
    parquet = mpath.parent / manifest["parquet"]["file"]
    if not parquet.is_file():
        raise FileNotFoundError(f"{mpath} names {parquet.name}, which is not in {mpath.parent}")
    actual = sha256_of(parquet)
    if actual != manifest["parquet"]["sha256"]:
        raise ChecksumError(parquet, manifest["parquet"]["sha256"], actual)
    records = _decode(pd.read_parquet(parquet), manifest.get("json_columns", JSON_COLUMNS))
    if len(records) != manifest["records"]:
        raise ValueError(
            f"{parquet} has {len(records)} records; {mpath} says {manifest['records']}"
        )
    return Release(manifest=manifest, records=records, path=mpath)


def find_manifest(path: Path) -> Path | None:
    """The manifest of a release given as its manifest, directory or parquet; else None.

    Raises:
        ValueError: a directory holding several releases (naming them).
    """
    if path.is_file() and path.suffix.lower() == ".json":
        return path
    if path.is_dir():
        found = [p for p in sorted(path.glob("*.json")) if _is_manifest(p)]
        if len(found) > 1:
            raise ValueError(
                f"{path} holds {len(found)} releases "
                f"({', '.join(p.name for p in found)}); pass one manifest"
            )
        return found[0] if found else None
    if path.is_file() and path.suffix.lower() == ".parquet":
        return next(
            (p for p in sorted(path.parent.glob("*.json")) if _is_manifest(p, parquet=path.name)),
            None,
        )
    return None


def read_records(path: str | Path) -> pd.DataFrame:
    """A records export (.parquet or .csv, as write_records makes) as load_results gives it."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise ValueError(f"{p}: a records export is {' or '.join(EXPORT_SUFFIXES)}")
    raw = pd.read_parquet(p) if suffix == ".parquet" else pd.read_csv(p)
    missing = [k for k in KEY if k not in raw.columns]
    if missing:
        raise ValueError(f"{p} is not a records export: it lacks {', '.join(missing)}")
    return _decode(raw, JSON_COLUMNS)


def write_records(df: pd.DataFrame, path: str | Path) -> Path:
    """Export a results DataFrame as .parquet or .csv (atomically); JSON text for nested cells."""
    p = Path(path)
    if p.suffix.lower() not in EXPORT_SUFFIXES:
        raise ValueError(f"{p}: export to {' or '.join(EXPORT_SUFFIXES)}")
    payload = _encode(df.drop(columns=[c for c in _LOCAL_COLUMNS if c in df.columns]))
    if p.suffix.lower() == ".parquet":
        write_atomic(p, lambda f: payload.to_parquet(f, index=False))
    else:
        write_atomic(p, lambda f: f.write(payload.to_csv(index=False).encode()))
    return p


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- helpers -------------------------------------------------------------------------------


def _source_frame(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return frame_from_records(source.to_dict("records"))
    p = Path(source)
    if p.is_dir():
        return load_results(p)
    if p.is_file():
        return read_records(p)
    raise FileNotFoundError(f"no run directory or records export at {p}")


def _sources_frame(source: Any) -> pd.DataFrame:
    """One frame of one source or of several (refusing a key two sources share)."""
    if isinstance(source, str | Path | pd.DataFrame):
        return _source_frame(source)
    frames = [_source_frame(s) for s in source]
    keys = [set(map(tuple, f[list(KEY)].astype(str).to_numpy())) for f in frames]
    for i in range(len(frames)):
        for j in range(i):
            both = keys[i] & keys[j]
            if both:
                raise ValueError(
                    f"sources {j + 1} and {i + 1} both hold {len(both)} records of the same "
                    f"key (e.g. {' '.join(sorted(both)[0])}); a table has one record per key")
    rows = [r for f in frames for r in f.to_dict("records")]
    return frame_from_records(rows)


def _manifest(df: pd.DataFrame, version: str, name: str) -> dict[str, Any]:
    configs: dict[str, Any] = {}
    for fid, group in df.groupby("fidelity", sort=True):
        seen = {
            json.dumps(c, sort_keys=True)
            for c in group["fidelity_config"]
            if isinstance(c, Mapping)
        }
        if len(seen) > 1:
            raise ValueError(
                f"fidelity {fid!r} ran with {len(seen)} different configs in these "
                "records; release one run's records at a time"
            )
        configs[str(fid)] = json.loads(seen.pop()) if seen else None
    commits = sorted({str(c) for c in df["commit"].dropna()})
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "version": version,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "records": len(df), "designs": int(df["design_id"].nunique()),
        "ok_records": int(df["status"].eq("ok").sum()),
        "fidelities": configs, "datasets": sorted(map(str, df["dataset"].unique())),
        "seeds": sorted(int(s) for s in df["seed"].dropna().unique()),
        "commit": commits[0] if len(commits) == 1 else None, "commits": commits,
        "key": list(KEY), "json_columns": list(JSON_COLUMNS),
    }  # fmt: skip


def _encode(df: pd.DataFrame) -> pd.DataFrame:
    """JSON text for the nested columns and any other column holding lists or dicts."""
    out = df.copy()
    for col in out.columns:
        if col in JSON_COLUMNS or any(isinstance(v, list | dict | tuple) for v in out[col]):
            out[col] = [None if _missing(v) else json.dumps(v, sort_keys=True) for v in out[col]]
    return out


def _decode(raw: pd.DataFrame, json_columns: Iterable[str]) -> pd.DataFrame:
    df = raw.copy()
    for col in json_columns:
        if col in df.columns:
            df[col] = [json.loads(v) if isinstance(v, str) else v for v in df[col]]
    return frame_from_records(df.to_dict("records"))


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _is_manifest(path: Path, parquet: str | None = None) -> bool:
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        return False
    return parquet is None or (m.get("parquet") or {}).get("file") == parquet


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        m = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not a release manifest: {exc}") from exc
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ValueError(f'{path} is not a release manifest (no "format": "{FORMAT}")')
    if int(m.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {m['format_version']}; this reader knows "
            f"up to {FORMAT_VERSION}"
        )
    if not {"file", "sha256"} <= set(m.get("parquet") or {}) or "records" not in m:
        raise ValueError(f"{path} lacks the parquet's file and sha256 or the record count")
    return m


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m analysis.table.release",
        description="Write a versioned, checksummed release of a table.",
    )
    parser.add_argument("run_dir", nargs="+",
                        help="run directory (RUN_DIR/records) or records export; several "
                             "make one table")
    parser.add_argument("out_dir", help="where the parquet and its manifest go")
    parser.add_argument("--version", required=True, help="release version, e.g. 1.0")
    parser.add_argument("--name", default="igcbench", help="file stem (default igcbench)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing release")
    args = parser.parse_args(argv)
    try:
        source = args.run_dir[0] if len(args.run_dir) == 1 else args.run_dir
        path = write_release(
            source, args.out_dir, args.version, name=args.name, overwrite=args.overwrite
        )
    except (OSError, ValueError) as exc:
        return fail(parser.prog, exc)
    m = json.loads(path.read_text())
    print(
        f"{path}: {m['records']} records, {m['designs']} designs, sha256 {m['parquet']['sha256']}"
    )
    print(seed_coverage(read_release(path).records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
