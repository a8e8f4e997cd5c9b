"""The shape of the code: no import circle, files a reader holds at once, one owner per datum,
and command lines that answer bad input in one line."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("search_space", "evaluators", "studies", "analysis")
MAX_LINES = 400  # issue 27: "no non-test file over 400 lines"
# Circles that another change removes; each names its owner. Empty when none is open.
KNOWN_CIRCLES: set[frozenset[str]] = set()
MAX_FUNCTION_LINES = 60  # issue 27: "no function over 60 lines outside tests"
# Functions over MAX_FUNCTION_LINES that another change shortens ("path:qualified name" ->
# the issue that owns it). Remove an entry with the change that shortens it.
KNOWN_LONG: dict[str, str] = {}


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


#: The one import that runs up a layer, by design: the command a user runs sits above the
#: layers and wires them (it hands analysis's whole-space answer to the time-budget driver).
WIRING = {("studies.run", "analysis.table.space_answer")}


def test_no_import_runs_up_a_layer():
    """search_space -> evaluators -> studies -> analysis: a module imports its own layer
    and those below it, anywhere in its file (in functions too), but the WIRING."""
    modules = _modules()
    layer = {m: PACKAGES.index(m.split(".")[0]) for m in modules}
    graph = {n: _imports(n, p, set(modules)) for n, p in modules.items()}
    assert WIRING <= {(n, m) for n in graph for m in graph[n]}  # seen inside a function
    up = {(n, m) for n in graph for m in graph[n] if layer[m] > layer[n]}
    assert up == WIRING, sorted(up - WIRING)


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        frozenset({"a", "b", "c"})]


@pytest.mark.parametrize("package", (*PACKAGES, "benchmarks"))
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
    (r"(?<![\w.])Result\(", {"evaluators/record.py"}),  # its one factory, make_result
    # A subset of the record's fields restated by name (the per-record numbers).
    (r"\"wall_s\",\s*\"latency_b1_ms\"", set()),
    # Atomic writes: the record owner's file writer, staged directory and move into place;
    # a dataset folder (download.py), the report's files (report/html.py) and a syne-tune
    # blackbox directory (interop/synetune.py) are staged and published through them.
    (r"os\.replace\([^)]|mkstemp\([^)]|mkdtemp\([^)]", {"evaluators/record.py"}),
    (r"def _?(device_name|utc_now|now)\(", {"evaluators/runtime.py", "evaluators/record.py"}),
    (r"rev-parse", {"evaluators/provenance.py"}),  # which code made a record
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



def test_the_field_subsets_are_read_off_the_schema():
    """The per-record numbers come from Result's types, the design's from describe()."""
    import search_space as ss
    from evaluators.record import MEASURES, describe_info

    assert MEASURES == ("val_acc", "test_acc", "wall_s", "latency_b1_ms", "latency_b64_ms")
    info = describe_info("plain8-c144-k1.12.12", num_classes=10)
    assert set(ss.DESCRIBE_MEASURES) < set(ss.DESCRIBE_KEYS)
    assert all(type(info[k]) in (int, float) for k in ss.DESCRIBE_MEASURES)


def test_no_file_edits_the_import_path():
    """Scripts import the installed packages (``pip install -e .``) or run as modules
    (``python -m benchmarks.x``); no file puts the repository on the import path by hand."""
    edit = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend)\b|\+=|\[[^]]*\]\s*=)")
    path = "sys" + ".path"  # split, so that this file does not match
    assert edit.search(f"{path}.insert(0, root)") and edit.search(f"{path}[:0] = [root]")
    found = sorted(str(p.relative_to(ROOT)) for d in (*PACKAGES, "benchmarks", "tests")
                   for p in (ROOT / d).rglob("*.py") if edit.search(p.read_text()))
    assert not found


def test_the_sweep_script_uninstalled_says_how_to_install_in_one_line():
    """``python studies/run.py`` where the packages are not importable (no site-packages,
    no PYTHONPATH): one line naming the install command, exit 1, nothing written."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-S", "studies/run.py", "--preset", "smoke"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "run.py: error: the igcbench packages are not importable: run `python -m pip install "
        "-e .` in the repository (or `python -m studies.run` there)"]


def _private_uses(source: str, known: set[str]) -> list[str]:
    """Another project module's ``_name`` that ``source`` reaches: ``from x import _y``, or
    ``x._y`` / ``pkg.x._y`` through a name bound to a project module (``import x``,
    ``import x as m``, ``from pkg import x``). Dunders are public."""
    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    tree, bound, found = ast.parse(source), {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                if top in known:
                    bound[a.asname or top] = a.name if a.asname else top
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in known:
            for a in node.names:
                if private(a.name):
                    found.append(f"from {node.module} import {a.name}")
                bound.setdefault(a.asname or a.name, f"{node.module}.{a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain, value = [value.attr, *chain], value.value
            if isinstance(value, ast.Name) and value.id in bound:
                found.append(".".join([bound[value.id], *chain]))
    return found


def test_the_private_name_finder_finds_both_forms():
    source = ("import evaluators.runtime as rt\nfrom analysis.proxies import report\n"
              "from search_space.modules import _body, stage_blocks\nimport os\n"
              "rt._x(); report._count(1); stage_blocks.__doc__; os._exit; self._y\n")
    assert _private_uses(source, set(PACKAGES)) == [
        "from search_space.modules import _body", "evaluators.runtime._x",
        "analysis.proxies.report._count"]


def test_no_module_uses_another_modules_private_names():
    """Non-test code (the packages and benchmarks/); a test may reach into what it tests."""
    known = {*PACKAGES, "benchmarks"}
    found = {str(p.relative_to(ROOT)): uses for p in _code_files()
             if (uses := _private_uses(p.read_text(), known))}
    assert not found
