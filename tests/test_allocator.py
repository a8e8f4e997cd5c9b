"""The trial's allocator policy (search_space/allocator.py): with the heap kept, a large tensor
allocated again after it was freed touches no fresh pages; with glibc's defaults it does."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from search_space import allocator

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the policy is glibc's mallopt; elsewhere it is a no-op")

PROBE = textwrap.dedent("""
    import resource, torch
    from search_space import allocator
    def faults_per_allocation():
        for _ in range(10):  # 40 MB, above glibc's largest mmap threshold; glibc reuses a
            x = torch.ones(10_000_000)  # freed aligned block only after a few (5 here)
            del x
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            x = torch.ones(10_000_000)
            del x
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    untouched = faults_per_allocation()
    assert allocator.keep_heap()
    print(untouched, faults_per_allocation())
""")


def test_the_kept_heap_pays_no_pages_again_where_glibcs_defaults_pay_them_all():
    """Minor page faults per allocation of a 40 MB tensor (9,766 pages) once the process
    has settled: as a process starts, then with the heap kept (in a fresh process: the
    policy is process-wide)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, env=env)
    untouched, heap = map(float, out.stdout.split())
    pages = 10_000_000 * 4 / 4096
    assert untouched > 0.9 * pages and heap < 0.05 * pages


def test_a_trial_keeps_the_heap_unless_turned_off(monkeypatch):
    monkeypatch.setenv("IGCBENCH_HEAP", "0")
    assert allocator.for_trial() == "untouched"
    monkeypatch.delenv("IGCBENCH_HEAP")
    assert allocator.for_trial() == "heap"  # this test process keeps its heap from here on


@pytest.mark.parametrize("argv, message", [
    (["--reps", "0"], "--reps 0: accepted: an integer >= 1"),
    (["--rounds", "-1"], "--rounds -1: accepted: an integer >= 1"),
    (["--out", "/nonexistent/dir/a.json"], "does not exist"),
])
def test_the_benchmarks_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    from benchmarks import allocator as bench

    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_benchmarks_committed_table_is_its_json(tmp_path):
    """docs/performance.md's allocator block is what the committed JSON prints."""
    from pathlib import Path

    from analysis.doc_blocks import block_in_doc
    from benchmarks import allocator as bench

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "benchmarks" / "results" / "allocator_cpu.json").read_text())
    doc = (root / "docs" / "performance.md").read_text()
    assert block_in_doc(doc, "allocator").strip() == bench.markdown(result).strip()
    target = next(r for r in result["rows"] if r["design"] == "plain8-c144-k1.12.12"
                  and r["side"] == 32)
    # the measured effect the module docstring names: fewer fresh pages with the heap kept
    assert (target["fast"]["faults_per_step"]["heap"]
            < target["fast"]["faults_per_step"]["untouched"])


def test_the_path_rule_takes_the_grouped_path_at_32x32_only_where_trials_keep_the_heap(
        monkeypatch):
    """At 32x32, batch 64, plain8-c144-k1.12.12's activations (37.7 MB) are above glibc's
    largest mmap threshold: with the kept heap the grouped path, else the fused one."""
    import search_space as ss
    from search_space.work import choose_path

    block = ss.net_plan(ss.parse("plain8-c144-k1.12.12"), 10).blocks[0]
    monkeypatch.setenv("IGCBENCH_HEAP", "0")
    assert choose_path(block, training=True, batch=64) == "fused"
    assert choose_path(block, training=True, batch=64, scale=0.25) == "grouped"
    monkeypatch.delenv("IGCBENCH_HEAP")
    assert choose_path(block, training=True, batch=64) == "grouped"
