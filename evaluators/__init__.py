"""Evaluators: data, training at a named fidelity, latency -> one result record per trial.

Example:
    >>> import evaluators as ev
    >>> r = ev.evaluate("plain8-c64-k1.64", fidelity="smoke", dataset="synthetic")  # doctest: +SKIP
    >>> r.status, r.val_acc, r.test_acc, r.latency_b1_ms  # doctest: +SKIP
"""

from evaluators.checkpoint import remove_checkpoint
from evaluators.data import DATASETS, Dataset, load_dataset, make_synthetic
from evaluators.errors import DatasetError, DatasetNotFoundError, Diverged
from evaluators.evaluate import evaluate
from evaluators.fidelity import FIDELITIES, Fidelity, get_fidelity
from evaluators.latency import measure_latency
from evaluators.result import Result

__all__ = [
    "DATASETS",
    "FIDELITIES",
    "Dataset",
    "DatasetError",
    "DatasetNotFoundError",
    "Diverged",
    "Fidelity",
    "Result",
    "evaluate",
    "get_fidelity",
    "load_dataset",
    "make_synthetic",
    "measure_latency",
    "remove_checkpoint",
]
