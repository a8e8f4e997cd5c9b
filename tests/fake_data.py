"""Tiny datasets written in the official on-disk formats, for tests (no network, no GPU).

Each writer returns the pixels and labels it wrote, so a test can check what a loader reads.

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> train, test = write_fake_cifar(root, "cifar10", per_batch=4, num_test=6)
    >>> train[0].shape, test[1].shape
    ((20, 3072), (6,))
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray]  # (images N x 3072 uint8 CHW, labels N int64)


def write_fake_cifar(root: Path | str, name: str = "cifar10", *, per_batch: int = 6,
                     num_test: int = 8, seed: int = 0) -> tuple[Arrays, Arrays]:
    """Write ``root/cifar-10-batches-py`` (5 train batches + test_batch + batches.meta) or
    ``root/cifar-100-python`` (train, test, meta) as the official pickles (protocol 2,
    bytes keys).

    Args:
        root: parent directory (created).
        name: "cifar10" or "cifar100".
        per_batch: images per train batch (CIFAR-100 has one train file of 5 x per_batch).
        num_test: test images.
        seed: fixes pixels and labels.

    Returns:
        ((train images, train labels), (test images, test labels)) in file order.
    """
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100

    def draw(n: int) -> Arrays:
        return (rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                rng.integers(0, classes, n).astype(np.int64))

    train, test = draw(5 * per_batch), draw(num_test)
    if name == "cifar10":
        folder = Path(root) / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(5):
            part = slice(i * per_batch, (i + 1) * per_batch)
            _dump(folder / f"data_batch_{i + 1}", train[0][part], train[1][part], b"labels")
        _dump(folder / "test_batch", *test, b"labels")
        _pickle(folder / "batches.meta", {b"label_names": [b"c%d" % i for i in range(10)]})
    elif name == "cifar100":
        folder = Path(root) / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        _dump(folder / "train", *train, b"fine_labels")
        _dump(folder / "test", *test, b"fine_labels")
        _pickle(folder / "meta", {b"fine_label_names": [b"f%d" % i for i in range(100)]})
    else:
        raise ValueError(f"name={name!r}; expected 'cifar10' or 'cifar100'")
    return train, test


def _dump(path: Path, data: np.ndarray, labels: np.ndarray, label_key: bytes) -> None:
    batch = {b"batch_label": path.name.encode(), b"data": data,
             label_key: labels.tolist(), b"filenames": [b"%d.png" % i for i in range(len(data))]}
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = (labels // 5).tolist()
    _pickle(path, batch)


def _pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_fake_tinyimagenet(root: Path | str, *, wnids: tuple[str, ...] = (
        "n01443537", "n01629819", "n01641577"), per_class: int = 2,
        seed: int = 0) -> tuple[Arrays, Arrays]:
    """Write ``root/tiny-imagenet-200`` in the official layout with 64x64 JPEGs.

    The first train image of the first class is greyscale, as a few official ones are. One val
    image per class. Returns the labels written and the decoded pixels (N x 64 x 64 x 3), in
    the order the loader reads them (class order of wnids.txt, file names sorted).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(root) / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("".join(w + "\n" for w in wnids))

    def save(path: Path, grey: bool) -> np.ndarray:
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        image = Image.fromarray(pixels[..., 0] if grey else pixels, "L" if grey else "RGB")
        image.save(path, "JPEG", quality=95)
        with Image.open(path) as again:
            return np.asarray(again.convert("RGB"))

    train_pixels, train_labels, val_pixels, val_labels, lines = [], [], [], [], []
    for label, wnid in enumerate(wnids):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        for i in range(per_class):
            train_pixels.append(save(images / f"{wnid}_{i}.JPEG", grey=label == i == 0))
            train_labels.append(label)
        name = f"val_{label}.JPEG"
        val_pixels.append(save(folder / "val" / "images" / name, grey=False))
        val_labels.append(label)
        lines.append(f"{name}\t{wnid}\t0\t0\t63\t63\n")
    (folder / "val" / "val_annotations.txt").write_text("".join(lines))
    return ((np.stack(train_pixels), np.array(train_labels)),
            (np.stack(val_pixels), np.array(val_labels)))
