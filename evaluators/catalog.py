"""The registry of datasets: one :class:`DatasetSpec` per dataset, known without loading it.

The one place the sweep driver, the evaluators and the analysis learn what a dataset is: its
classes and image side, its official sizes, its folder and what the folder holds, its
augmentation and the function that loads it (``evaluators.data``, torch, imported on first
load). Adding a dataset is an entry here and its loader (docs/internals.md).

Example:
    >>> DATASETS["cifar100"].classes, DATASETS["tinyimagenet"].side, DEFAULT_DATASET
    (100, 64, 'cifar10')
    >>> dataset_spec("imagenet")
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset 'imagenet'; accepted: synthetic, cifar10, cifar100, tinyimagenet
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    """What one dataset is."""

    name: str
    title: str  # as the errors name it
    classes: int
    side: int  # pixels per side of the stored images
    train_size: int  # official train images
    test_size: int  # official test images (Tiny ImageNet: its val split, whose labels exist)
    folder: str | None  # its folder in the data directory; None: made in memory, no files
    probe: str | None  # a file of the folder that marks it (a data path naming the folder)
    layout: str  # what the folder holds, for the errors that say what was expected
    augmentation: str  # "crop_flip" (pad, crop, mirror) or "scale_crop_flip" (paper, 4.1)
    loader: str  # "module:function", called (root, *, download) -> evaluators.data.Dataset
    check_by_loading: bool = True  # the sweep's data check loads it; False: it looks for
    #                                the probe only (decoding 110k JPEGs takes minutes)
    prepare: str | None = None  # a script of the project's shared/data/ that makes the
    #                             folder without internet

    @property
    def in_memory(self) -> bool:
        """Made, not read (the synthetic stand-in): tests the machinery, not a ranking."""
        return self.folder is None


_SPECS = (
    DatasetSpec("synthetic", "synthetic data", classes=10, side=32, train_size=2_000, test_size=500,
                folder=None, probe=None, layout="made in memory (evaluators.data.make_synthetic)",
                augmentation="crop_flip", loader="evaluators.data:load_synthetic"),
    DatasetSpec("cifar10", "CIFAR-10", classes=10, side=32, train_size=50_000, test_size=10_000,
                folder="cifar-10-batches-py", probe="data_batch_1",
                layout="cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch}: pickled "
                       "dicts with b'data' (uint8 N x 3072, CHW order) and b'labels' (N ints "
                       "in 0..9)",
                augmentation="crop_flip", loader="evaluators.data:load_cifar10",
                prepare="prepare_cifar10.py"),
    DatasetSpec("cifar100", "CIFAR-100", classes=100, side=32, train_size=50_000, test_size=10_000,
                folder="cifar-100-python", probe="train",
                layout="cifar-100-python/{train, test}: pickled dicts with b'data' (uint8 N x "
                       "3072, CHW order) and b'fine_labels' (N ints in 0..99)",
                augmentation="crop_flip", loader="evaluators.data:load_cifar100"),
    DatasetSpec("tinyimagenet", "Tiny ImageNet", classes=200, side=64, train_size=100_000,
                test_size=10_000,
                folder="tiny-imagenet-200", probe="wnids.txt",
                layout="tiny-imagenet-200/ with wnids.txt (200 wnids), "
                       "train/<wnid>/images/*.JPEG and val/images/*.JPEG + "
                       "val/val_annotations.txt (file<TAB>wnid<TAB>box), 64x64 images",
                augmentation="scale_crop_flip", loader="evaluators.data:load_tinyimagenet",
                check_by_loading=False),
)

#: Every dataset by name, in the order the command lines list them.
DATASETS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}
DEFAULT_DATASET = "cifar10"  # the command lines' default


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; ValueError naming the accepted ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}") from None
