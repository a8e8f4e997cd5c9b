"""Datasets as whole uint8 tensors: CIFAR-10/100, Tiny ImageNet, and a synthetic set.

Every loader returns a :class:`Dataset` holding the official train and test splits as
``N x 3 x H x W`` uint8 tensors (on the CPU; :mod:`evaluators.splits` moves them to the
training device) and int64 labels. Formats are the official ones:

- CIFAR-10: ``cifar-10-batches-py/`` with pickled ``data_batch_1`` .. ``data_batch_5`` and
  ``test_batch`` (dicts with ``b'data'``: uint8 N x 3072 in CHW order, ``b'labels'``).
- CIFAR-100: ``cifar-100-python/`` with pickled ``train`` and ``test`` (``b'data'``,
  ``b'fine_labels'``).
- Tiny ImageNet: ``tiny-imagenet-200/`` with ``wnids.txt``, ``train/<wnid>/images/*.JPEG`` and
  ``val/images/*.JPEG`` + ``val/val_annotations.txt``. The official test split has no labels,
  so the official val split serves as our test split.

CIFAR is downloaded from the official URL when missing (md5-checked, atomic); a local copy is
read whatever its checksums (this machine's CIFAR-10 is a JPEG re-encoding whose md5s differ).
Because a local copy is not checksummed, its pickles are read by :class:`CifarUnpickler`,
which builds only what the official files hold (dicts, lists, bytes, str, ints, uint8/int
numpy arrays): a crafted file in a shared data directory cannot run code in the trials.

Example:
    >>> ds = make_synthetic(num_train=100, num_test=20)
    >>> tuple(ds.train_images.shape), ds.train_images.dtype, ds.num_classes
    ((100, 3, 32, 32), torch.uint8, 10)
"""

from __future__ import annotations

import codecs
import importlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evaluators.catalog import DATASETS, DatasetSpec, dataset_spec
from evaluators.download import download_and_extract
from evaluators.errors import DatasetError, DatasetNotFoundError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
CIFAR10 = DATASETS["cifar10"]
CIFAR100 = DATASETS["cifar100"]
TINYIMAGENET = DATASETS["tinyimagenet"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """The official train and test splits of one dataset, whole, as uint8 tensors."""

    name: str  # a key of evaluators.catalog.DATASETS
    train_images: torch.Tensor  # N x 3 x H x W, uint8
    train_labels: torch.Tensor  # N, int64 in [0, num_classes)
    test_images: torch.Tensor  # M x 3 x H x W, uint8
    test_labels: torch.Tensor  # M, int64
    num_classes: int

    @property
    def resolution(self) -> int:
        """Side of the stored images in pixels (32 CIFAR, 64 Tiny ImageNet)."""
        return int(self.train_images.shape[-1])


def default_data_dir() -> Path:
    """``$IGCBENCH_DATA`` if set, else ``./data`` (ignored by git)."""
    return Path(os.environ.get("IGCBENCH_DATA", "data"))


def load_dataset(name: str, data_dir: Path | str | None = None, *,
                 download: bool = True) -> Dataset:
    """Load dataset ``name`` (a key of :data:`evaluators.catalog.DATASETS`) from ``data_dir``
    with the loader its spec names.

    Args:
        name: "synthetic", "cifar10", "cifar100" or "tinyimagenet".
        data_dir: the directory holding the dataset folder (or the folder itself);
            None = :func:`default_data_dir`. Unused for "synthetic".
        download: fetch CIFAR from the official URL into ``data_dir`` when missing.

    Raises:
        ValueError: unknown ``name``.
        DatasetNotFoundError: files missing (and not downloadable).
        DatasetError: files corrupt, truncated or in another layout.
    """
    module, _, function = dataset_spec(name).loader.partition(":")  # ValueError: unknown
    loader = getattr(importlib.import_module(module), function)
    return loader(default_data_dir() if data_dir is None else Path(data_dir), download=download)


# --- CIFAR ----------------------------------------------------------------------------------


def load_cifar10(root: Path | str, *, download: bool = True) -> Dataset:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (or ``root`` itself if it is that folder)."""
    folder = _cifar_folder(Path(root), CIFAR10, CIFAR10_URL, CIFAR10_MD5, download)
    train = [_read_cifar_batch(folder / f"data_batch_{i}", b"labels", CIFAR10)
             for i in range(1, 6)]
    test = _read_cifar_batch(folder / "test_batch", b"labels", CIFAR10)
    return _cifar_dataset(CIFAR10, train, test)


def load_cifar100(root: Path | str, *, download: bool = True) -> Dataset:
    """CIFAR-100 (fine labels) from ``root/cifar-100-python`` (or ``root`` itself)."""
    folder = _cifar_folder(Path(root), CIFAR100, CIFAR100_URL, CIFAR100_MD5, download)
    train = _read_cifar_batch(folder / "train", b"fine_labels", CIFAR100)
    test = _read_cifar_batch(folder / "test", b"fine_labels", CIFAR100)
    return _cifar_dataset(CIFAR100, [train], test)


def _cifar_folder(root: Path, spec: DatasetSpec, url: str, md5: str, download: bool) -> Path:
    folder, probe, layout = spec.folder, spec.probe, spec.layout
    if (root / probe).is_file():  # the caller named the dataset folder itself
        return root
    if (root / folder).is_dir():
        return root / folder
    if not download:
        raise DatasetNotFoundError(f"{root / folder} does not exist; expected {layout}")
    return download_and_extract(url, md5, root, folder)


def _read_cifar_batch(path: Path, label_key: bytes,
                      spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 3 x 32 x 32 uint8, labels N int64) from one official pickle."""
    num_classes, layout = spec.classes, spec.layout
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} is missing; expected {layout}")
    try:
        with open(path, "rb") as f:
            # The official files are Python 2 pickles; "bytes" keeps their keys as bytes.
            batch = CifarUnpickler(f, encoding="bytes").load()
        data = np.asarray(_key(batch, b"data"))
        labels = np.asarray(_key(batch, label_key), dtype=np.int64)
    except Exception as exc:  # any unpickling failure means the file is not what we expect
        raise DatasetError(
            f"{path} is unreadable, truncated or not a CIFAR batch ({type(exc).__name__}: "
            f"{exc}); expected {layout}") from exc
    if (data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072
            or labels.shape != (data.shape[0],)
            or (labels.size and not 0 <= labels.min() <= labels.max() < num_classes)):
        raise DatasetError(
            f"{path} holds data {data.dtype} {data.shape} and {labels.shape[0]} labels in "
            f"[{labels.min(initial=0)}, {labels.max(initial=0)}]; expected {layout}")
    return data.reshape(-1, 3, 32, 32), labels


def _numpy_core(module: str) -> object:
    """numpy's ``_core.<module>`` (numpy 2) or ``core.<module>`` (numpy 1)."""
    import importlib

    try:
        return importlib.import_module(f"numpy._core.{module}")
    except ImportError:  # numpy < 2
        return importlib.import_module(f"numpy.core.{module}")


def _plain_dtype(*args: object) -> np.dtype:
    """``numpy.dtype`` for the pickle, refusing object dtypes (they would hold arbitrary
    Python objects; CIFAR holds bytes and numbers)."""
    dtype = np.dtype(*args)  # type: ignore[call-overload]
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refused numpy dtype {dtype} (holds Python objects)")
    return dtype


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 writes bytes into a protocol-2 pickle, latin-1 only
    (any other codec name could reach codec modules no CIFAR file needs)."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode(..., {encoding!r})")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], Callable[..., object]]:
    multiarray, numeric = _numpy_core("multiarray"), _numpy_core("numeric")
    allowed: dict[tuple[str, str], Callable[..., object]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    # numpy 1 wrote "numpy.core", numpy 2 writes "numpy._core": the official files (Python 2,
    # numpy 1) and files written here (numpy 2) name the same functions differently.
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR batch holds.

    Containers and scalars (dict, list, tuple, bytes, str, int, float, bool, None) need no
    global; numpy arrays need ``ndarray``, ``dtype`` and the reconstruction functions numpy
    1 and 2 pickle them with. Any other global (``os.system``, ``builtins.eval``, ...) is
    refused before it is looked up, so a crafted ``__reduce__`` cannot run. Object dtypes are
    refused too.

    Example:
        >>> import io
        >>> blob = pickle.dumps({b"data": np.arange(3, dtype=np.uint8), b"labels": [1, 2]})
        >>> CifarUnpickler(io.BytesIO(blob), encoding="bytes").load()[b"data"].tolist()
        [0, 1, 2]
        >>> CifarUnpickler(io.BytesIO(pickle.dumps(eval))).load()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        _pickle.UnpicklingError: refused global builtins.eval (a CIFAR batch holds only ...)
    """

    _allowed: dict[tuple[str, str], Callable[..., object]] | None = None

    def find_class(self, module: str, name: str) -> Callable[..., object]:
        if CifarUnpickler._allowed is None:
            CifarUnpickler._allowed = _allowed_globals()
        found = CifarUnpickler._allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name} (a CIFAR batch holds only dicts, lists, "
                "bytes, str, ints and numpy arrays)")
        return found


def _key(batch: object, key: bytes) -> object:
    if not isinstance(batch, dict):
        raise TypeError(f"top-level object is {type(batch).__name__}, not dict")
    if key in batch:
        return batch[key]
    if key.decode() in batch:  # written by a Python 3 tool with str keys
        return batch[key.decode()]
    raise KeyError(f"no key {key!r}; keys are {sorted(map(str, batch))}")


def _cifar_dataset(spec: DatasetSpec, train: list[tuple[np.ndarray, np.ndarray]],
                   test: tuple[np.ndarray, np.ndarray]) -> Dataset:
    return Dataset(
        name=spec.name,
        train_images=torch.from_numpy(np.concatenate([x for x, _ in train])),
        train_labels=torch.from_numpy(np.concatenate([y for _, y in train])),
        test_images=torch.from_numpy(np.ascontiguousarray(test[0])),
        test_labels=torch.from_numpy(test[1]),
        num_classes=spec.classes,
    )


# --- Tiny ImageNet --------------------------------------------------------------------------


def load_tinyimagenet(root: Path | str, *, download: bool = False) -> Dataset:
    """Tiny ImageNet from ``root/tiny-imagenet-200`` (or ``root`` itself), read with Pillow.

    Labels are positions in ``wnids.txt``. The official val split becomes the test split.
    Not downloaded automatically (``download`` is not used): fetch and unzip
    :data:`TINYIMAGENET_URL` into ``root``.
    """
    root = Path(root)
    folder = root if (root / TINYIMAGENET.probe).is_file() else root / TINYIMAGENET.folder
    wnids_path = folder / TINYIMAGENET.probe
    if not wnids_path.is_file():
        raise DatasetNotFoundError(
            f"{wnids_path} is missing; expected {TINYIMAGENET.layout} (download "
            f"{TINYIMAGENET_URL} and unzip it into {root})")
    wnids = wnids_path.read_text().split()
    label_of = {w: i for i, w in enumerate(wnids)}
    train_files: list[Path] = []
    train_labels: list[int] = []
    for wnid in wnids:
        files = sorted((folder / "train" / wnid / "images").glob("*.JPEG"))
        if not files:
            raise DatasetNotFoundError(
                f"no images in {folder / 'train' / wnid / 'images'}; expected "
                f"{TINYIMAGENET.layout}")
        train_files += files
        train_labels += [label_of[wnid]] * len(files)
    test_files, test_labels = _tiny_val(folder, label_of)
    return Dataset(
        name=TINYIMAGENET.name,
        train_images=_read_images(train_files),
        train_labels=torch.tensor(train_labels, dtype=torch.int64),
        test_images=_read_images(test_files),
        test_labels=torch.tensor(test_labels, dtype=torch.int64),
        num_classes=len(wnids),
    )


def _tiny_val(folder: Path, label_of: dict[str, int]) -> tuple[list[Path], list[int]]:
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise DatasetNotFoundError(f"{annotations} is missing; expected {TINYIMAGENET.layout}")
    files, labels = [], []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            raise DatasetError(
                f"{annotations} line {number} is {line!r}: want file<TAB>wnid from wnids.txt; "
                f"expected {TINYIMAGENET.layout}")
        files.append(folder / "val" / "images" / fields[0])
        labels.append(label_of[fields[1]])
    return files, labels


def _read_images(files: list[Path]) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError  # Pillow only for Tiny ImageNet

    out = np.empty((len(files), 64, 64, 3), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))  # a few Tiny ImageNet JPEGs are grey
        except FileNotFoundError as exc:
            raise DatasetNotFoundError(f"{path} is missing; expected {TINYIMAGENET.layout}") \
                from exc
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DatasetError(
                f"{path} is not a readable image ({exc}); expected {TINYIMAGENET.layout}") \
                from exc
        if pixels.shape != (64, 64, 3):
            raise DatasetError(
                f"{path} is {pixels.shape[1]}x{pixels.shape[0]}; expected {TINYIMAGENET.layout}")
        out[i] = pixels
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# --- synthetic ------------------------------------------------------------------------------


def load_synthetic(root: Path | str, *, download: bool = False) -> Dataset:
    """The synthetic set its spec describes (``root`` and ``download`` are not used)."""
    spec = DATASETS["synthetic"]
    return make_synthetic(spec.train_size, spec.test_size, num_classes=spec.classes,
                          resolution=spec.side)


def make_synthetic(num_train: int = 2_000, num_test: int = 500, *, num_classes: int = 10,
                   resolution: int = 32, seed: int = 0) -> Dataset:
    """A deterministic, learnable stand-in for CIFAR (same shapes and dtype).

    Each class has a smooth colour pattern (random 4x4 colour noise, upsampled); an image is
    its class's pattern at a random contrast plus pixel noise. A small net learns it to far
    above chance in seconds; a broken training loop stays at chance. Fixed by ``seed``.
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=g) * 2 - 1
    patterns = torch.nn.functional.interpolate(
        coarse, size=(resolution, resolution), mode="bilinear", align_corners=False)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randperm(n, generator=g) % num_classes  # balanced, shuffled
        contrast = 40 + 40 * torch.rand(n, 1, 1, 1, generator=g)  # grey levels
        noise = 48 * torch.randn(n, 3, resolution, resolution, generator=g)  # grey levels
        images = 128 + contrast * patterns[labels] + noise
        return images.round().clamp(0, 255).to(torch.uint8), labels

    train_images, train_labels = draw(num_train)
    test_images, test_labels = draw(num_test)
    return Dataset("synthetic", train_images, train_labels, test_images, test_labels,
                   num_classes)
