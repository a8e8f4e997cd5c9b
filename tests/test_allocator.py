"""The trial's allocator policy (evaluators/allocator.py): with the heap kept, a large tensor
allocated again after it was freed touches no fresh pages; with glibc's defaults it does."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from evaluators import allocator

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the policy is glibc's mallopt; elsewhere it is a no-op")

PROBE = textwrap.dedent("""
    import resource, sys, torch
    from evaluators import allocator
    policy = sys.argv[1]
    if policy != "untouched":
        assert allocator.set_policy(policy)
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):  # 40 MB, above glibc's largest mmap threshold; glibc reuses a
        x = torch.ones(10_000_000)  # freed aligned block only after a few (5 here)
        del x
    before = faults()
    for _ in range(5):
        x = torch.ones(10_000_000)
        del x
    print((faults() - before) / 5)
""")


def page_faults(policy: str) -> float:
    """Minor page faults per re-allocation of a 40 MB tensor (9,766 pages) once the process
    has settled, in a fresh process (the policy is process-wide)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", PROBE, policy], capture_output=True,
                         text=True, check=True, env=env)
    return float(out.stdout.split()[-1])


def test_the_kept_heap_pays_no_pages_again_where_glibcs_defaults_pay_them_all():
    pages = 10_000_000 * 4 / 4096
    assert page_faults("heap") < 0.05 * pages
    assert page_faults("default") > 0.9 * pages
    assert page_faults("untouched") > 0.9 * pages  # what a process gets without the policy


def test_a_trial_keeps_the_heap_unless_turned_off(monkeypatch):
    monkeypatch.setenv("IGCBENCH_HEAP", "0")
    assert allocator.for_trial() == "default"
    monkeypatch.delenv("IGCBENCH_HEAP")
    try:
        assert allocator.for_trial() == "heap"
    finally:
        allocator.set_policy("default")
