"""Atomic download of an official dataset archive, with an md5 check.

The archive goes to a temporary directory in the destination directory (the record
owner's ``staged_dir``), is checked and extracted there, and only then is its top folder
moved into place whole (``publish``).
An interrupted or failed download therefore leaves nothing that looks like a dataset, and two
processes downloading at once end with one complete copy. The directories it had to create
are removed again when the download fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from evaluators.errors import DatasetError, DatasetNotFoundError
from evaluators.record import publish, staged_dir

_CHUNK = 1 << 20  # bytes per read while downloading


def download_and_extract(url: str, md5: str, root: Path | str, folder: str) -> Path:
    """Download the tar.gz at ``url`` and put its top folder ``folder`` at ``root/folder``.

    Args:
        url: the archive (http(s):// or file://).
        md5: its expected md5 hex digest.
        root: the directory that receives ``folder``; created if missing (and removed again
            if the download fails).
        folder: the directory the archive holds at its top level.

    Returns:
        ``root/folder``.

    Raises:
        DatasetNotFoundError: the download failed (no network, bad URL); the directories
            this call created are removed again.
        DatasetError: the md5 differs or the archive lacks ``folder``.
    """
    root = Path(root)
    target = root / folder
    if target.is_dir():
        return target
    created = _make_dirs(root)
    try:
        with staged_dir(root, folder) as staging:
            part = staging / "archive.part"
            digest = _fetch(url, part, target)
            if digest != md5.lower():
                raise DatasetError(
                    f"download of {url} has md5 {digest}, expected {md5}; discarded, nothing "
                    f"written at {target}")
            _extract(part, staging / "extracted", root / folder, url)
    except BaseException:
        # A failed download leaves the file system as it found it: no empty data/ that a
        # later run (or a user) would take for a dataset directory.
        for directory in reversed(created):
            with contextlib.suppress(OSError):  # not empty: another process is using it
                directory.rmdir()
        raise
    return target


def _make_dirs(root: Path) -> list[Path]:
    """Create ``root`` and its missing parents; return the ones created, outermost first."""
    missing = [p for p in (root, *root.parents) if not p.exists()][::-1]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetNotFoundError(f"cannot create data directory {root}: {exc}") from exc
    return missing


def _fetch(url: str, part: Path, target: Path) -> str:
    """Stream ``url`` into the file ``part``; return the md5 hex digest."""
    md5 = hashlib.md5()
    try:
        with part.open("wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(_CHUNK):
                md5.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise DatasetNotFoundError(
            f"{target} is missing and downloading {url} failed ({exc}); put the official "
            f"files there yourself") from exc
    return md5.hexdigest()


def _extract(archive: Path, staging: Path, dest: Path, url: str) -> None:
    """Extract ``archive`` into ``staging`` and publish its top folder (``dest.name``) as
    ``dest``."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"archive from {url} cannot be extracted: {exc}") from exc
    source = staging / dest.name
    if not source.is_dir():
        raise DatasetError(f"archive from {url} has no top-level folder {dest.name!r}")
    try:
        publish(source, dest)
    except OSError:
        if not dest.is_dir():  # else another process finished first: fine
            raise
