"""The README's and docs' examples are what the code does: commands it accepts, queries that
answer as shown, and tables that match the presets. (The README's example output of a whole
smoke sweep is checked against a real run in tests/test_studies_sweep.py.)"""

from __future__ import annotations

import doctest
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from studies import cli, run
from studies.presets import PRESETS

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands(prefix: str) -> list[tuple[str, str, str]]:
    """(doc, command, its comment) of every line in a ``` block that starts with ``prefix``
    (continuation lines joined)."""
    found = []
    for doc in DOCS:
        in_block, pending = False, ""
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                in_block, pending = not in_block, ""
                continue
            if not in_block:
                continue
            line = pending + line.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if line.startswith(prefix):
                command, _, comment = line.partition(" # ")
                found.append((doc.name, command.strip(), comment.strip()))
    return found


RUN_COMMANDS = _commands("python studies/run.py")


def test_the_docs_have_run_commands_to_check():
    assert len(RUN_COMMANDS) >= 20
    assert {doc for doc, *_ in RUN_COMMANDS} >= {"README.md", "studies.md"}


@pytest.mark.parametrize("doc, command, comment", RUN_COMMANDS,
                         ids=[f"{d}: {c[22:70]}" for d, c, _ in RUN_COMMANDS])
def test_every_documented_run_command_is_accepted(doc, command, comment, tmp_path,
                                                  monkeypatch, capsys):
    """Validated as the sweep would validate it (its dry run: the same function), in an
    empty directory with an empty data/ (a missing dataset is a note there, not an error).
    A cluster address or a database server cannot be reached here: those are parsed."""
    argv = shlex.split(command)[2:]
    monkeypatch.chdir(tmp_path)
    for option in ("--data-dir",):
        if option in argv:
            (tmp_path / argv[argv.index(option) + 1]).mkdir(parents=True, exist_ok=True)
    if "--address" in argv or any(a.startswith(("postgresql", "mysql")) for a in argv):
        cli.build_parser().parse_args(argv)
        return
    if "--list-presets" in argv:
        assert run.main(argv) == 0
        return
    if "--dry-run" not in argv:
        argv.append("--dry-run")
    assert run.main(argv) == 0, capsys.readouterr().err
    # A count in the comment ("# 18 trials", "# 51 designs x 3 seeds") is the plan's.
    request = cli.resolve(cli.build_parser().parse_args(argv), dry_run=True)
    trials = re.search(r"(\d+) (?:tiny )?trials", comment)
    if trials:
        assert int(trials.group(1)) == request.plan.target, comment
    grid = re.search(r"(\d+) designs x (\d+) seeds", comment)
    if grid:
        assert (int(grid.group(1)), int(grid.group(2))) == (
            len(request.plan.design_ids), len(request.plan.seeds)), comment


OTHER_COMMANDS = [c for c in _commands("python ")
                  if not c[1].startswith(("python studies/run.py", "python -m pip",
                                          "python -m pytest", "python -c",
                                          "python ../shared"))]


@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package")
@pytest.mark.parametrize("doc, command, comment", OTHER_COMMANDS,
                         ids=[f"{d}: {c[7:60]}" for d, c, _ in OTHER_COMMANDS])
def test_other_documented_commands_know_their_options(doc, command, comment, monkeypatch,
                                                      capsys):
    """Each module or script exists, and every --option the doc gives it is in its --help."""
    words = shlex.split(command)[1:]
    if words[0] == "-m":
        target, rest = words[1], words[2:]
        sub = [rest[0]] if rest and not rest[0].startswith("-") and "/" not in rest[0] \
            and "." not in rest[0] and words[1] in ("analysis", "analysis.claims.reproduction") \
            else []
        argv = [target, *sub, "--help"]
        runner = lambda: runpy.run_module(target, run_name="__main__", alter_sys=True)  # noqa: E731
    else:
        target, rest = str(ROOT / words[0]), words[1:]
        argv = [target, "--help"]
        runner = lambda: runpy.run_path(target, run_name="__main__")  # noqa: E731
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as done:
        runner()
    assert done.value.code in (0, None)
    helptext = capsys.readouterr().out
    for option in (w.split("=")[0] for w in rest if w.startswith("--")):
        assert option in helptext, f"{doc}: {command}: {option} is not an option of it"


def test_benchmark_md_queries_answer_as_shown_on_the_shipped_release(monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples load releases/igcbench-1.0.json
    result = doctest.testfile(str(ROOT / "docs" / "benchmark.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0


def test_readme_one_liners_run(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    lines = [c for _, c, _ in _commands("python -c ")]
    assert lines
    for line in lines:
        exec(shlex.split(line)[2], {})  # noqa: S102 (the doc's own code)
    assert "Entry(plain8-c36-k1.6.6 at cpu/cifar10" in capsys.readouterr().out


def test_the_preset_tables_are_the_presets():
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"Presets: `([^`]+)`", readme).group(1).split()
    assert listed == list(PRESETS)
    studies = (ROOT / "docs" / "studies.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| .* \| ([\w-]+)[^|]* \| (\d+) \|$", studies, re.M)
    assert [r[0] for r in rows] == list(PRESETS)
    for name, fidelity, trials in rows:
        preset = PRESETS[name]
        assert fidelity == preset.fidelity, name
        seeds = len(preset.seeds) if name == "smoke" else 3
        assert int(trials) == len(preset.design_ids) * seeds, name


def test_readme_says_describe_counts_100_classes_unless_told():
    """ss.describe() defaults to 100 classes (the paper's CIFAR-100); run.py counts 10 for
    CIFAR-10. The README's example states both counts, and describe()'s docstring the same."""
    import search_space as ss

    d = ss.parse("plain8-c144-k1.12.12")
    hundred, ten = ss.describe(d)["params"], ss.describe(d, num_classes=10)["params"]
    readme = (ROOT / "README.md").read_text()
    assert f"for 100 classes by default (CIFAR-100:\n                          # {hundred:,} " \
        "params here)" in readme
    assert f'ss.describe(d, num_classes=10)["params"]        # {ten:,}\n' in readme
    doc = " ".join(ss.describe.__doc__.split())
    assert f"{d.id}``: {hundred:,} parameters at 100, {ten:,} at 10" in doc


def test_proxies_md_examples_write_no_tracked_file():
    """A reader who copies docs/proxies.md's commands gets printed blocks, not rewritten
    docs: --update/--export/--figures into the repository are named in prose only."""
    commands = [c for d, c, _ in _commands("python ") if d == "proxies.md"]
    assert len(commands) >= 8
    for command in commands:
        words = shlex.split(command)
        for flag in ("--update", "--export", "--figures", "--out"):
            if flag in words:
                target = words[words.index(flag) + 1]
                assert not target.startswith(("docs", "releases", "benchmarks")), command


def test_release_commands_read_the_run_directory_the_sweep_writes(tmp_path, monkeypatch):
    """``python -m analysis.table.release RUN_DIR``: RUN_DIR is where a documented sweep writes
    (its --run-dir, or runs/ + its default name), not a directory nothing makes."""
    monkeypatch.chdir(tmp_path)
    written = set()
    for _, command, _ in RUN_COMMANDS:
        argv = shlex.split(command)[2:]
        if "--preset" not in argv or "--list-presets" in argv:
            continue
        args = cli.build_parser().parse_args(argv)
        name = args.name or cli._default_name(
            PRESETS[args.preset], None, None, [], args.fidelity or PRESETS[args.preset].fidelity,
            args.dataset or PRESETS[args.preset].dataset or "cifar10")
        written.add(args.run_dir or f"runs/{name}")
    releases = [c for _, c, _ in _commands("python -m analysis.table.release ")]
    assert len(releases) >= 3
    for command in releases:
        assert shlex.split(command)[3] in written, command
