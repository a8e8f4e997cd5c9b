"""Export a table for other tools (docs/benchmark.md, "Using the table from other tools").

CLI::

    python -m analysis.interop.export syne-tune RELEASE.json OUT_DIR [--fidelity F] [--dataset D]
        [--overwrite]
    python -m analysis.interop.export configspace RELEASE.json OUT.json [...]

``syne-tune`` writes a blackbox directory (syne-tune's ``serialize``; read it with
``analysis.interop.synetune.load_blackbox`` or syne-tune's ``blackbox_tabular.deserialize``);
``configspace`` writes the ConfigSpace configuration space as JSON (``ConfigurationSpace
.from_json``); its objective function is ``analysis.interop.configspace.TableObjective``.
RELEASE may be a manifest, a release directory or its parquet. Bad input (no release, a
format not listed, an existing output, a missing optional package) prints one line and exits
2, writing nothing: output is written beside its destination and renamed into place.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.cli import ArgumentParser, fail
from analysis.interop.space import design_space
from evaluators.record import write_atomic

FORMATS = ("syne-tune", "configspace")
_PACKAGE = {"syne-tune": "syne-tune", "configspace": "ConfigSpace"}


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.interop.export",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("format", choices=FORMATS, help="what to write")
    p.add_argument("release", metavar="RELEASE", help="a release manifest, directory or parquet")
    p.add_argument("out", metavar="OUT", help="syne-tune: a directory; configspace: a .json")
    p.add_argument("--fidelity", help="when the table has several")
    p.add_argument("--dataset", help="when the table has several")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    return p


def export(fmt: str, release: str | Path, out: str | Path, *, fidelity: str | None = None,
           dataset: str | None = None, overwrite: bool = False) -> Path:  # fmt: skip
    """Write ``release`` in format ``fmt`` to ``out``; returns ``out``.

    Raises:
        ValueError: an unknown format, or a table the format cannot hold.
        FileNotFoundError, FileExistsError: no release; an existing ``out``.
        ImportError: the format's package is not installed.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    out = Path(out)
    if fmt == "configspace" and out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (replace it with --overwrite)")
    space = design_space(release, fidelity=fidelity, dataset=dataset)
    if fmt == "syne-tune":
        from analysis.interop.synetune import write_blackbox

        return write_blackbox(space, out, overwrite=overwrite)
    from analysis.interop.configspace import configuration_space

    if not out.parent.is_dir():
        raise FileNotFoundError(f"no directory {out.parent} to write {out.name} in")
    text = _configspace_json(configuration_space(space))
    write_atomic(out, lambda f: f.write(text.encode()))
    return out


def _configspace_json(cs: object) -> str:
    """ConfigSpace's own JSON of ``cs`` (``to_json`` writes a file; we want the text, to
    write it atomically)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.json"
        cs.to_json(path)  # type: ignore[attr-defined]
        return path.read_text()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for bad input, with a one-line error)."""
    args = _parser().parse_args(argv)
    prog = "python -m analysis.interop.export"
    try:
        out = export(args.format, args.release, args.out, fidelity=args.fidelity,
                     dataset=args.dataset, overwrite=args.overwrite)  # fmt: skip
    except ImportError as exc:
        return fail(prog, ImportError(
            f"{args.format} needs the package {_PACKAGE[args.format]} ({exc.name} is missing): "
            'pip install -e ".[interop]"'))  # fmt: skip
    except (OSError, ValueError) as exc:
        return fail(prog, exc)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
