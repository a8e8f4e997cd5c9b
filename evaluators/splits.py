"""Train / validation / test tensors of one trial, resized and moved to the training device.

Search reads validation accuracy only; the test split is for reporting. The validation split
is carved from the official train split, fixed by ``Fidelity.split_seed``, so every design and
every trial seed is compared on the same images.

Example:
    >>> train, val = split_indices(100, train_size=50, val_size=5, seed=0)
    >>> len(train), len(val), len(set(train.tolist()) & set(val.tolist()))
    (45, 5, 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluators.augment import channel_stats, resize
from evaluators.catalog import dataset_spec
from evaluators.data import Dataset
from evaluators.fidelity import Fidelity


@dataclass(frozen=True, eq=False)
class Splits:
    """Everything a training run reads, on its device."""

    train_images: torch.Tensor  # N x 3 x R x R uint8
    train_labels: torch.Tensor  # N int64
    val_images: torch.Tensor  # V x 3 x R x R uint8
    val_labels: torch.Tensor
    test_images: torch.Tensor  # T x 3 x R x R uint8
    test_labels: torch.Tensor
    mean: torch.Tensor  # 3, float32, of the train images in [0, 1] units
    std: torch.Tensor  # 3
    num_classes: int
    augmentation: str  # the dataset's (DatasetSpec.augmentation), or "none"


def split_indices(n: int, *, train_size: int | None, val_size: int,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``train_size`` of ``n`` indices (all if None) and hold ``val_size`` of them out.

    Returns:
        (train indices, validation indices): disjoint, int64, fixed by ``seed``.

    Raises:
        ValueError: the sizes do not fit in ``n``.
    """
    drawn = n if train_size is None else train_size
    if not 0 < val_size < drawn <= n:
        raise ValueError(f"cannot draw {drawn} of {n} train images with {val_size} held out "
                         f"for validation; need 0 < val_size < train_size <= {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:drawn]
    return order[val_size:], order[:val_size]


def make_splits(dataset: Dataset, fidelity: Fidelity, device: torch.device) -> Splits:
    """Subset, resize and move ``dataset`` to ``device`` as ``fidelity`` says."""
    n = dataset.train_images.shape[0]
    drawn = n if fidelity.train_size is None else min(fidelity.train_size, n)
    val_size = max(1, round(fidelity.val_fraction * drawn))
    train_idx, val_idx = split_indices(n, train_size=drawn, val_size=val_size,
                                       seed=fidelity.split_seed)
    m = dataset.test_images.shape[0]
    test_idx = torch.randperm(m, generator=torch.Generator().manual_seed(fidelity.split_seed))
    test_idx = test_idx[: fidelity.test_size or m]
    size = fidelity.resolution or dataset.resolution

    def prepare(images: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return resize(images[idx], size).to(device)

    train_images = prepare(dataset.train_images, train_idx)
    mean, std = channel_stats(train_images)
    augmentation = dataset_spec(dataset.name).augmentation if fidelity.augment else "none"
    return Splits(
        train_images=train_images,
        train_labels=dataset.train_labels[train_idx].to(device),
        val_images=prepare(dataset.train_images, val_idx),
        val_labels=dataset.train_labels[val_idx].to(device),
        test_images=prepare(dataset.test_images, test_idx),
        test_labels=dataset.test_labels[test_idx].to(device),
        mean=mean,
        std=std,
        num_classes=dataset.num_classes,
        augmentation=augmentation,
    )
