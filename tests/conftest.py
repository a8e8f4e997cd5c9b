"""Fixtures shared by the tests: a fixed calibration of the cost model instead of this machine's
(every test), and one torch thread (where a module asks for it).

A sweep, a dry run and ``--list-presets`` estimate times with the cost model, whose
calibration is measured on the machine the first time (seconds of training steps, varying
with the load) and cached in ``$IGCBENCH_CACHE``. The tests get a cache of their own,
filled with one fixed calibration per fidelity shape, so they neither measure nor touch the
user's cache, and the estimates they print are the same on every run.
"""

from __future__ import annotations

import os

import pytest

#: seconds per (activation element, multiply-add, image) of a training step and of an
#: evaluation forward: about what this 2-core machine measures at 16x16 (one thread)
TRAIN = (4e-9, 2e-10, 1.5e-3)
EVAL = (0.0, 1e-10, 3e-4)
#: the reference path's (the 'auto' paths pick, per block, the cheaper one): the same here
REF_TRAIN, REF_EVAL = TRAIN, EVAL


@pytest.fixture(autouse=True, scope="session")
def fixed_calibration(tmp_path_factory: pytest.TempPathFactory):
    import torch

    from evaluators import FIDELITIES, calibrate
    from evaluators.cost_model import Calibration
    from search_space.work import speed_code

    root = tmp_path_factory.mktemp("igcbench-cache")
    saved = os.environ.get("IGCBENCH_CACHE")
    os.environ["IGCBENCH_CACHE"] = str(root)  # subprocesses of the tests inherit it
    for fidelity in FIDELITIES.values():
        for threads in (1, 2):
            calibrate.save_calibration(Calibration(
                machine=calibrate.machine_id(), torch_version=torch.__version__,
                device="cpu", threads=threads, paths=calibrate.block_paths(torch.device("cpu")),
                resolution=fidelity.resolution or 32, batch_size=fidelity.batch_size,
                train=TRAIN, eval=EVAL, ref_train=REF_TRAIN, ref_eval=REF_EVAL,
                created="2026-11-29T00:00:00+00:00", code=speed_code()))
    yield root
    if saved is None:
        os.environ.pop("IGCBENCH_CACHE", None)
    else:
        os.environ["IGCBENCH_CACHE"] = saved


@pytest.fixture
def one_thread():
    """Small shapes gain nothing from threads, and on a busy machine every parallel region
    waits for a descheduled thread (20x slower here)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
