"""``studies/run.py``'s check of ``--data-dir`` (and ``$IGCBENCH_DATA``, ``./data``): one
check for the dry run and the sweep, so the dry run refuses exactly what the sweep refuses.
The one difference is a side effect, not a check: the sweep downloads a missing CIFAR where
the dry run says it would. Errors are one-line ``ValueError``s naming the ways to the data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evaluators.catalog import DATASETS

__all__ = ["check_data", "data_remedies", "one_line"]


def check_data(evaluators: Any, dataset: str, data_dir: str | None, *,
                download: bool = True) -> tuple[str | None, str | None]:
    """(data directory, note): the dataset is readable (CIFAR is downloaded here, once, when
    missing; without ``download`` a missing CIFAR is a note, not an error). Both ways refuse
    the same: a data directory that is not one, or a missing CIFAR where no download could
    be written (``/proc``, a read-only directory, a path under a file)."""
    spec = DATASETS[dataset]
    if spec.in_memory:
        return (str(Path(data_dir).resolve()) if data_dir else None), None
    from evaluators.data import default_data_dir

    root = Path(data_dir) if data_dir else default_data_dir()
    named = f"--data-dir {data_dir!r}" if data_dir else (
        f"$IGCBENCH_DATA {str(root)!r}" if os.environ.get("IGCBENCH_DATA")
        else f"the default data directory {str(root)!r}")
    if (data_dir is not None or root.exists()) and not root.is_dir():
        raise ValueError(f"{named} is not a directory: "
                         f"{data_remedies(dataset, root).removeprefix('or ')}")
    note = None
    if not spec.check_by_loading:  # loading it to check would take minutes
        if not ((root / spec.probe).is_file() or (root / spec.folder / spec.probe).is_file()):
            raise ValueError(f"no {spec.title} in {root}: expected {spec.layout}")
        return str(root.resolve()), None
    try:
        evaluators.load_dataset(dataset, root, download=False)  # DatasetError
    except evaluators.DatasetNotFoundError:
        why = _unwritable(root)
        if why:
            raise ValueError(f"{dataset} is not in {root} and cannot be downloaded there "
                             f"({why}); {data_remedies(dataset, root)}") from None
        if not download:
            note = (f"{dataset} is not in {root}: the sweep downloads it first; "
                    f"{data_remedies(dataset, root)}")
        else:
            try:
                evaluators.load_dataset(dataset, root, download=True)
            except (evaluators.DatasetNotFoundError, OSError) as e:
                raise ValueError(f"{one_line(e)}; {data_remedies(dataset, root)}") from None
    return str(root.resolve()), note


def _unwritable(root: Path) -> str | None:
    """Why a download could not be written into ``root`` (created if missing), or None.
    Creates nothing that stays: an anonymous temporary file (O_TMPFILE where Linux has it)."""
    import tempfile

    # A missing root is created by the download: its nearest existing parent must take it.
    existing = next((p for p in (root, *root.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        return f"cannot create a file there: {e.strerror or one_line(e)}"
    return None


def data_remedies(dataset: str, root: Path) -> str:
    """The ways to a missing dataset, for its one-line error."""
    spec = DATASETS[dataset]
    ways = [f"give --data-dir DIR holding {spec.folder}/"]
    if spec.prepare is not None:
        # The project's shared folder sits beside the checkout (README: ../shared/data);
        # shown as typed from the checkout, else in full.
        checkout = Path(__file__).resolve().parents[1]
        script = checkout.parent / "shared" / "data" / spec.prepare
        shown = os.path.relpath(script) if Path.cwd().resolve() == checkout else script
        ways.append(f"without internet run `python {shown} {root}`")
    ways.append("use --dataset synthetic")
    return "or " + ", or ".join(ways)


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
