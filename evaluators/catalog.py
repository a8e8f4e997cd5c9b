"""What each dataset is, known without loading it: its classes and its image side.

The one place the sweep driver, the evaluators and the analysis learn these from; loading
a dataset (evaluators.data, torch) reads the same numbers from the files.

Example:
    >>> NUM_CLASSES["cifar100"], IMAGE_SIZE["tinyimagenet"]
    (100, 64)
"""

from __future__ import annotations

DATASETS = ("synthetic", "cifar10", "cifar100", "tinyimagenet")
NUM_CLASSES = {"synthetic": 10, "cifar10": 10, "cifar100": 100, "tinyimagenet": 200}
IMAGE_SIZE = {"synthetic": 32, "cifar10": 32, "cifar100": 32, "tinyimagenet": 64}  # pixels
