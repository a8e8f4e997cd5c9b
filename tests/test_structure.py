"""The shape of the code: no import circle, files a reader holds at once, one owner per datum,
and command lines that answer bad input in one line."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("search_space", "evaluators", "studies", "analysis")
MAX_LINES = 420  # "about 400": a module a reader holds at once
# Circles that another change removes; each names its owner. Empty when none is open.
KNOWN_CIRCLES: set[frozenset[str]] = set()
MAX_FUNCTION_LINES = 60  # issue 27: "no function over 60 lines outside tests"
# Functions over MAX_FUNCTION_LINES that another change shortens ("path:qualified name" ->
# the issue that owns it). Remove an entry with the change that shortens it.
KNOWN_LONG: dict[str, str] = {
    "analysis/table/release.py:write_release": "issue 27",
    "analysis/replay/simulate.py:_simulate": "issue 27",
    "analysis/table/surrogate.py:cross_validate": "issue 27",
    "evaluators/train.py:train_epochs": "issue 27",
    "studies/cli.py:build_parser": "issue 27",
}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if path.stem == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (in functions and under
    TYPE_CHECKING too: a circle is a circle for a reader, whenever it runs)."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                 *([base] if base else [])])
            subs = {f"{base}.{a.name}" for a in node.names} & known  # `from pkg import mod`
            found |= subs or {base}
    return {m for m in found if m in known and m != name}


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(frozenset(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_among_the_packages_modules():
    modules = _modules()
    graph = {n: _imports(n, p, set(modules)) for n, p in modules.items()}
    assert graph["studies.store"] >= {"evaluators.record"}  # the walk sees real imports
    assert set(_circles(graph)) <= KNOWN_CIRCLES


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        frozenset({"a", "b", "c"})]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_longer_than_a_reader_holds(package):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long


def _function_lengths(source: str) -> dict[str, int]:
    """Lines (``end_lineno - lineno + 1``: the def line to the last, decorators not counted)
    of every def and async def, methods and nested ones too, by qualified name
    (``Class.method``, ``outer.inner``)."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    out[name] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return out


def test_the_function_measure_finds_methods_nested_and_async_defs():
    body = "".join(f"    x{i} = {i}\n" for i in range(59))  # with its def line: 60 lines
    source = ("def short():\n" + body
              + "class C:\n    @staticmethod\n    async def long():\n"
              + textwrap.indent(body, "    ") + "        return 1\n"
              + "def outer():\n    def inner():\n"
              + textwrap.indent(body, "    ") + "        return 2\n    return inner\n")
    assert _function_lengths(source) == {"short": 60, "C.long": 61, "outer": 63,
                                         "outer.inner": 61}


def test_no_function_longer_than_a_reader_holds():
    """Every def and async def of the packages and benchmarks/, in subfolders too, is at most
    MAX_FUNCTION_LINES long, but those KNOWN_LONG names (each with its owner)."""
    long = {}
    for folder in (*PACKAGES, "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            long |= {f"{where}:{name}": n
                     for name, n in _function_lengths(path.read_text()).items()
                     if n > MAX_FUNCTION_LINES}
    assert not {k: n for k, n in long.items() if k not in KNOWN_LONG}
    assert not set(KNOWN_LONG) - set(long), "shortened: remove from KNOWN_LONG"


def _code_files() -> list[Path]:
    return [p for d in (*PACKAGES, "benchmarks") for p in sorted((ROOT / d).rglob("*.py"))]


@pytest.mark.parametrize("pattern, owners", [
    (r"hashlib\.sha1\(", {"evaluators/record.py"}),  # the record key
    (r"def (trial_key|record_key)\b", {"evaluators/record.py"}),
    (r"\(\s*\"design_id\",\s*\"fidelity\",\s*\"dataset\",\s*\"seed\"\s*\)",
     {"evaluators/record.py"}),  # the key's fields
    (r"DESCRIBE_KEYS = ", {"search_space/costs.py"}),  # describe()'s columns
    (r"(?m)^(RECORD_KEYS|COLUMNS) = ", {"evaluators/record.py"}),  # the record's columns
    # Atomic writes of files: the record owner's writer. A dataset folder (download.py), the
    # report's directory of files (report/html.py) and a syne-tune blackbox directory
    # (interop/synetune.py) are moved into place whole.
    (r"os\.replace\([^)]|mkstemp\([^)]",
     {"evaluators/record.py", "evaluators/download.py", "analysis/report/html.py",
      "analysis/interop/synetune.py"}),
    (r"rev-parse", {"evaluators/record.py"}),  # provenance
    (r"TPESampler\(|NSGAIISampler\(", {"studies/sampling.py"}),  # the samplers' settings
    (r"def parse_seeds|\.split\(\",\"\)", {"studies/plan.py"}),  # seeds as a user writes them
    (r"name=f\"\{fidelity\.name\}", {"evaluators/fidelity.py"}),  # a changed fidelity's name
    (r"DatasetSpec\(", {"evaluators/catalog.py"}),  # the datasets (one registry)
])
def test_one_owner(pattern, owners):
    found = {str(p.relative_to(ROOT)) for p in _code_files()
             if re.search(pattern, p.read_text())}
    assert found == owners


def _one_line_exit_2(argv: list[str]) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


@pytest.mark.parametrize("argv, says", [
    (["-m", "analysis"], "the following arguments are required: command"),
    (["-m", "analysis", "report"], "RUN_DIR"),
    (["-m", "analysis", "report", "x", "--n-boot", "many"], "'many'"),
    (["-m", "analysis", "report", "/nonexistent/run"], "/nonexistent/run"),
    (["-m", "analysis", "dashboard", "/nonexistent/run"], "/nonexistent/run"),
    (["-m", "analysis.table.report", "releases/igcbench-1.0.json"], "replay_json"),
    (["-m", "analysis.table.release", "/nonexistent", "/tmp/x"], "--version"),
    (["-m", "benchmarks.replay", "--out", "/tmp/x", "--workers", "0", "--synthetic", "2x2x2"],
     "--workers"),
])
def test_every_cli_answers_bad_input_in_one_line(argv, says):
    assert says in _one_line_exit_2(argv)


def test_analysis_reads_evaluators_only_through_its_torch_free_face():
    """analysis imports nothing of evaluators outside evaluators.FACE (any import, in
    functions too), and the face with analysis loads neither torch nor ray."""
    from evaluators import FACE

    modules = _modules()
    known = set(modules) | set(PACKAGES)
    outside = {
        (name, m) for name, path in modules.items() if name.startswith("analysis")
        for m in _imports(name, path, known)
        if m.split(".")[0] == "evaluators" and m not in FACE
    }
    assert not outside, sorted(outside)
    code = ("import sys, importlib\n"
            f"for m in {list(FACE)!r} + ['analysis']: importlib.import_module(m)\n"
            "bad = sorted(m for m in ('torch', 'ray') if m in sys.modules)\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)

