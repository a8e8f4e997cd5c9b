"""One registry per extension point (issue 27): the datasets (evaluators.catalog), the searches
(studies.searches) and the zero-cost scores (evaluators.scores). docs/internals.md lists the
files that adding one touches; these tests hold that list to the code, and hold every other
module to reading the registry instead of restating its names."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from evaluators.catalog import DATASETS
from evaluators.scores import NEEDS, SCORES
from studies.searches import (
    PROPOSES,
    SEARCHES,
    SWEEP_SEARCHES,
    SearchSpec,
    search_spec,
    sweep_search,
)

ROOT = Path(__file__).resolve().parent.parent
CODE = ("search_space", "evaluators", "studies", "analysis", "benchmarks")
# The doc's row -> (the registry's class, the names it registers).
ROWS = {
    "a dataset": ("DatasetSpec", set(DATASETS)),
    "a search": ("SearchSpec", set(SEARCHES)),
    "a fixed-order search": ("SearchSpec", set(SEARCHES)),
    "a replay-only search": ("SearchSpec", set(SEARCHES)),
    "a zero-cost score": ("ScoreSpec", {n for n, s in SCORES.items() if s.kind == "proxy"}),
}


def _doc_rows() -> dict[str, list[str]]:
    """The files of each row of docs/internals.md's "Adding a dataset, a search, a
    zero-cost score" table."""
    text = (ROOT / "docs" / "internals.md").read_text()
    section = text.split("## Adding a dataset, a search, a zero-cost score", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in ROWS:
            rows[cells[0]] = re.findall(r"`([^`]+\.py)`", cells[1])
    return rows


def test_the_doc_lists_every_extension_point_in_at_most_two_files():
    rows = _doc_rows()
    assert set(rows) == set(ROWS)
    for what, files in rows.items():
        assert 1 <= len(files) <= 2, (what, files)
        assert all((ROOT / f).is_file() for f in files), (what, files)


@pytest.mark.parametrize("what", list(ROWS))
def test_the_first_file_listed_is_the_one_registry(what):
    registry = _doc_rows()[what][0]
    cls = ROWS[what][0]
    defining = {p.relative_to(ROOT).as_posix() for p in _code_files()
                if re.search(rf"class {cls}\b|\b{cls}\(", p.read_text())}
    assert defining == {registry}


def test_each_entry_names_an_implementation_in_the_second_file_listed():
    rows = _doc_rows()
    for spec in DATASETS.values():
        module, _, function = spec.loader.partition(":")
        assert _path(module) == rows["a dataset"][1]
        assert callable(getattr(importlib.import_module(module), function))
    sampling = _defs(rows["a search"][1])
    for spec in SEARCHES.values():
        assert spec.proposes in PROPOSES
        assert spec.sampler is None or spec.sampler in sampling, spec
    orders = rows["a fixed-order search"][1]
    module = importlib.import_module(orders[:-3].replace("/", "."))
    for spec in SEARCHES.values():  # an order exactly for the fixed-order searches
        assert (spec.order is not None) == (spec.proposes == "order"), spec
        assert spec.order is None or (spec.order in _defs(orders)
                                      and callable(getattr(module, spec.order))), spec
    proposers = (ROOT / rows["a replay-only search"][1]).read_text()
    assert all(f'"{kind}":' in proposers for kind in PROPOSES)  # a proposer per kind
    functions = _defs(rows["a zero-cost score"][1])
    for spec in SCORES.values():
        assert spec.needs in NEEDS and spec.compute in functions, spec


OWNERS = {"DatasetSpec": "evaluators/catalog.py", "SearchSpec": "studies/searches.py",
          "ScoreSpec": "evaluators/scores.py"}


def _restated(source: str, where: str) -> list[tuple[str, int, str]]:
    """(file, line, registry) of each literal (tuple, list, set, dict keys) in ``source``
    that holds two or more names of one registry, outside that registry's file."""
    names = {cls: registered for cls, registered in ROWS.values()}
    found = []
    for node in ast.walk(ast.parse(source)):
        items = (node.keys if isinstance(node, ast.Dict)
                 else node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [])
        strings = {i.value for i in items if isinstance(i, ast.Constant)}
        found += [(where, node.lineno, cls) for cls, registered in names.items()
                  if where != OWNERS[cls] and len(strings & registered) >= 2]
    return found


def test_no_other_module_restates_a_registrys_names():
    """A restated list is how two lists come to differ silently (the replays' searches, the
    proxy report's copy of the scores and the datasets' sizes did)."""
    found = [hit for p in _code_files()
             for hit in _restated(p.read_text(), p.relative_to(ROOT).as_posix())]
    assert not found


def test_the_finder_finds_restated_lists():
    source = ('GENERIC = ("synflow", "naswot")\nSIZES = {"cifar10": 1, "cifar100": 2}\n'
              'S = ["grid", "tpe"]\nONE = ("synflow", "params")\n')
    assert _restated(source, "analysis/x.py") == [
        ("analysis/x.py", 1, "ScoreSpec"), ("analysis/x.py", 2, "DatasetSpec"),
        ("analysis/x.py", 3, "SearchSpec")]
    assert _restated(source.splitlines()[1], "evaluators/catalog.py") == []


def test_sweeps_and_replays_read_one_list_of_searches():
    from analysis.replay import simulate

    assert simulate.replay_many.__defaults__ is None  # keyword-only: see __kwdefaults__
    assert simulate.replay_many.__kwdefaults__["strategies"] == SWEEP_SEARCHES
    assert SWEEP_SEARCHES == ("grid", "random", "tpe", "nsga2")
    assert set(SEARCHES) - set(SWEEP_SEARCHES) == {"tpe-struct", "zc-tpe-struct", "zc-order"}
    for name in SWEEP_SEARCHES:
        assert sweep_search(name) is search_spec(name)
    for name in set(SEARCHES) - set(SWEEP_SEARCHES):
        with pytest.raises(ValueError, match=f"search '{name}' runs in replays only"):
            sweep_search(name)


def _code_files() -> list[Path]:
    return [p for d in CODE for p in sorted((ROOT / d).rglob("*.py"))]


def _path(module: str) -> str:
    return module.replace(".", "/") + ".py"


def _defs(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_a_fixed_order_search_is_its_entry_and_its_order_function(monkeypatch):
    """A new fixed-order search runs in a sweep's plan and in a replay with nothing but its
    registry entry and its function in studies.orders: plan.py and the proposers are not
    touched (they read the order the entry names)."""
    import numpy as np

    from analysis.replay.proposers import make_proposer
    from analysis.replay.table import ReplayTable
    from studies import orders, searches
    from studies.plan import Plan

    def reverse_order(designs, seeds, *, sampler_seed, scores):
        return [(d, s) for d in reversed(designs) for s in seeds]

    monkeypatch.setattr(orders, "reverse_order", reverse_order, raising=False)
    monkeypatch.setitem(searches.SEARCHES, "reverse", searches.SearchSpec(
        "reverse", "order", "random_sampler", "the designs backwards", order="reverse_order"))
    plan = Plan(name="x", design_ids=("a", "b", "c"), seeds=(0, 1), fidelity="smoke",
                dataset="synthetic", search="reverse", max_trials=5)
    assert not plan.adaptive
    assert plan.ordered_pairs() == [("c", 0), ("c", 1), ("b", 0), ("b", 1), ("a", 0)]
    table = ReplayTable(design_ids=("a", "b", "c"), epochs=1, val=(), seconds=(), seeds=(),
                        mean_val=np.zeros(3), params=np.ones(3), best=0)
    with make_proposer(table, "reverse", seed=0) as proposer:
        assert [proposer.propose()[0] for _ in range(4)] == [2, 1, 0, None]


def test_an_order_is_named_exactly_when_a_search_proposes_a_fixed_order():
    with pytest.raises(ValueError, match="'x': an order function exactly when"):
        SearchSpec("x", "order", "random_sampler", "no order named")
    with pytest.raises(ValueError, match="'x': an order function exactly when"):
        SearchSpec("x", "sampler", "tpe_sampler", "an order too", order="grid_order")
    with pytest.raises(ValueError, match="'x': a sweep runs it, so it names a sampler"):
        SearchSpec("x", "order", None, "no sampler for the sweep", order="grid_order")
    with pytest.raises(ValueError, match="proposes 'guess', not one of order, sampler"):
        SearchSpec("x", "guess", None, "?", replay_only="why")


def test_score_order_is_the_replays_former_rule_on_nan_inf_and_ties():
    """zc-order ranked by numpy's nan_to_num(nan=-inf) (NaN last, after -inf; infinities as
    the largest floats) and a stable sort; studies.orders is pure Python and must agree."""
    import numpy as np

    from studies.orders import fixed_order

    big = np.finfo(float).max  # an infinity ties with it
    scores = np.array([1.0, np.nan, np.inf, -np.inf, 1.0, 3.0, np.nan, -2.0, big])
    score = np.nan_to_num(scores, nan=-np.inf)
    former = sorted(range(len(scores)), key=lambda i: (-score[i], i))
    pairs = fixed_order("zc-order", range(len(scores)), (0,), sampler_seed=0, scores=scores)
    assert [d for d, _ in pairs] == former == [2, 8, 5, 0, 4, 7, 3, 1, 6]
    with pytest.raises(ValueError, match="'zc-order' orders by score"):
        fixed_order("zc-order", range(3), (0,), sampler_seed=0)
    with pytest.raises(ValueError, match="'tpe' has no fixed order"):
        fixed_order("tpe", range(3), (0,), sampler_seed=0)
