"""Evaluators: data, training at a named fidelity, latency -> one result record per trial.

The record (:mod:`evaluators.record`), the fidelities and the dataset catalog import no
torch; ``evaluate``, the datasets and latency do, and load on first use, so the sweep driver
and the analysis can read records and fidelities without importing torch.

Example:
    >>> import evaluators as ev
    >>> ev.get_fidelity("cpu").epochs, ev.DATASETS["cifar10"].classes, "Result" in dir(ev)
    (2, 10, True)

``ev.evaluate(design, fidelity, dataset, seed)`` trains and returns a ``Result``; its example
(a real smoke training) is in :mod:`evaluators.evaluation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evaluators.catalog import DATASETS, DatasetSpec, dataset_spec
from evaluators.errors import DatasetError, DatasetNotFoundError, Diverged
from evaluators.fidelity import FIDELITIES, Fidelity, get_fidelity, with_changes
from evaluators.lazy import lazy_exports
from evaluators.record import Result

#: The torch-free face: the only modules of evaluators that analysis (and any reader of
#: records without torch) may import. They own the datum: the record, its provenance and
#: its run-directory files, the fidelities, the dataset and score registries, the errors,
#: and the cost model's arithmetic (what a trial costs; its calibration measures on the
#: torch side, evaluators.calibrate).
#: tests/test_structure.py holds analysis to it and checks that importing it loads no torch
#: or ray.
FACE = ("evaluators", "evaluators.catalog", "evaluators.cost_model", "evaluators.errors",
        "evaluators.fidelity", "evaluators.lazy", "evaluators.provenance", "evaluators.record",
        "evaluators.scores")

_TORCH_SIDE = {  # name -> module; imported on first use (torch takes seconds to import)
    "Dataset": "data",
    "load_dataset": "data",
    "make_synthetic": "data",
    "evaluate": "evaluation",
    "measure_latency": "latency",
    "remove_checkpoint": "checkpoint",
}

__all__ = [
    "DATASETS",
    "FIDELITIES",
    "Dataset",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "Diverged",
    "Fidelity",
    "Result",
    "evaluate",
    "get_fidelity",
    "load_dataset",
    "make_synthetic",
    "measure_latency",
    "remove_checkpoint",
    "dataset_spec",
    "with_changes",
]

if TYPE_CHECKING:
    from evaluators.checkpoint import remove_checkpoint
    from evaluators.data import Dataset, load_dataset, make_synthetic
    from evaluators.evaluation import evaluate
    from evaluators.latency import measure_latency


__getattr__, __dir__ = lazy_exports(__name__, _TORCH_SIDE)
