"""Datasets, download, augmentation and splits (evaluators.data / download / augment / splits)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators import DatasetError, DatasetNotFoundError, get_fidelity, make_synthetic
from evaluators.augment import channel_stats, crop_flip, normalize, resize, scale_crop_flip
from evaluators.data import (
    _read_cifar_batch,
    load_cifar10,
    load_cifar100,
    load_dataset,
    load_tinyimagenet,
)
from evaluators.download import download_and_extract
from evaluators.splits import make_splits, split_indices

from fake_data import write_fake_cifar, write_fake_tinyimagenet

REAL_CIFAR10 = Path(os.environ.get("IGCBENCH_DATA", "/work/data")) / "cifar-10-batches-py"

# --- CIFAR ----------------------------------------------------------------------------------


def test_cifar10_reads_official_pickles(tmp_path):
    (train_x, train_y), (test_x, test_y) = write_fake_cifar(tmp_path, "cifar10", per_batch=6,
                                                            num_test=8)
    ds = load_cifar10(tmp_path, download=False)
    assert ds.train_images.shape == (30, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (8, 3, 32, 32) and ds.num_classes == 10
    assert ds.train_labels.tolist() == train_y.tolist()  # batch 1..5 in order
    assert ds.test_labels.tolist() == test_y.tolist()
    # CHW order: byte c*1024 + y*32 + x is channel c, row y, column x
    assert ds.train_images[7, 2, 5, 9] == train_x[7, 2 * 1024 + 5 * 32 + 9]
    assert np.array_equal(ds.test_images.reshape(8, -1).numpy(), test_x)


def test_cifar100_reads_fine_labels(tmp_path):
    (train_x, train_y), (_, test_y) = write_fake_cifar(tmp_path, "cifar100", per_batch=5,
                                                       num_test=7)
    ds = load_dataset("cifar100", tmp_path, download=False)
    assert ds.num_classes == 100 and ds.name == "cifar100"
    assert ds.train_images.shape == (25, 3, 32, 32) and ds.test_images.shape == (7, 3, 32, 32)
    assert ds.train_labels.tolist() == train_y.tolist()
    assert ds.test_labels.tolist() == test_y.tolist()
    assert np.array_equal(ds.train_images.reshape(25, -1).numpy(), train_x)


def test_cifar_folder_itself_is_accepted(tmp_path):
    write_fake_cifar(tmp_path, "cifar10")
    ds = load_cifar10(tmp_path / "cifar-10-batches-py", download=False)
    assert ds.train_images.shape[0] == 30


def test_truncated_batch_names_the_path_and_layout(tmp_path):
    write_fake_cifar(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError) as info:
        load_cifar10(tmp_path, download=False)
    assert str(path) in str(info.value) and "data_batch_1..data_batch_5" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_dir_is_a_clear_not_found_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(missing, download=False)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    assert str(missing / "cifar-10-batches-py") in str(info.value)
    assert "test_batch" in str(info.value)
    assert not missing.exists()  # nothing created


def test_missing_batch_file_names_it(tmp_path):
    write_fake_cifar(tmp_path, "cifar100")
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python/test is missing"):
        load_cifar100(tmp_path, download=False)


def test_labels_out_of_range_are_rejected(tmp_path):
    write_fake_cifar(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    data = np.zeros((3, 3072), dtype=np.uint8)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [0, 10, 1]}, protocol=2))
    with pytest.raises(DatasetError, match=r"data_batch_2 holds .* labels in \[0, 10\]"):
        load_cifar10(tmp_path, download=False)


class _RunsCommand:
    """Unpickling this runs ``touch PATH`` (through os.system) if the loader lets it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_that_would_run_a_command_is_refused_and_runs_nothing(tmp_path, protocol):
    write_fake_cifar(tmp_path, "cifar10")
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    batch = {b"data": _RunsCommand(marker), b"labels": [1, 2, 3]}
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    assert b"system" in path.read_bytes()  # the payload is really in the file
    with pytest.raises(DatasetError, match=r"data_batch_4 .*refused global posix\.system"):
        load_cifar10(tmp_path, download=False)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    eval,  # a builtin that would run text
    np.array([b"x", None], dtype=object),  # object arrays hold arbitrary objects
])
def test_other_globals_and_object_arrays_are_refused(tmp_path, payload):
    write_fake_cifar(tmp_path, "cifar100")
    path = tmp_path / "cifar-100-python" / "train"
    path.write_bytes(pickle.dumps({b"data": payload, b"fine_labels": [0]}, protocol=2))
    with pytest.raises(DatasetError, match=r"cifar-100-python/train .*refused"):
        load_cifar100(tmp_path, download=False)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_of_every_protocol_and_numpy_1_names_are_read(tmp_path, protocol):
    (train_x, train_y), _ = write_fake_cifar(tmp_path, "cifar10", per_batch=4)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    blob = pickle.dumps({b"data": train_x[:4], b"labels": train_y[:4].tolist()},
                        protocol=protocol)
    if protocol == 2:  # as numpy 1 (and the official Python 2 files) name the function
        assert b"numpy._core.multiarray\n_reconstruct" in blob
        blob = blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(blob)
    ds = load_cifar10(tmp_path, download=False)
    assert np.array_equal(ds.train_images[:4].reshape(4, -1).numpy(), train_x[:4])
    assert ds.train_labels.tolist() == train_y.tolist()


@pytest.mark.skipif(not (REAL_CIFAR10 / "test_batch").is_file(),
                    reason=f"no CIFAR-10 at {REAL_CIFAR10}")
@pytest.mark.parametrize("name", ["data_batch_1", "test_batch"])
def test_real_cifar10_files_read_as_plain_pickle_reads_them(name):
    path = REAL_CIFAR10 / name
    images, labels = _read_cifar_batch(path, b"labels", 10, "")
    with open(path, "rb") as f:
        plain = pickle.load(f, encoding="bytes")  # trusted here: the machine's own copy
    assert np.array_equal(images.reshape(len(images), -1), plain[b"data"])
    assert labels.tolist() == plain[b"labels"] and len(labels) == 10_000


# --- download -------------------------------------------------------------------------------


def _fake_archive(tmp_path) -> tuple[str, str]:
    """A cifar-10-python.tar.gz of fake batches; returns (file:// URL, md5)."""
    source = tmp_path / "source"
    write_fake_cifar(source, "cifar10")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(buffer.getvalue())
    return archive.as_uri(), hashlib.md5(buffer.getvalue()).hexdigest()


def test_download_checks_md5_and_extracts(tmp_path):
    url, md5 = _fake_archive(tmp_path)
    root = tmp_path / "data"
    folder = download_and_extract(url, md5, root, "cifar-10-batches-py")
    assert folder == root / "cifar-10-batches-py"
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no leftovers
    assert load_cifar10(root, download=False).train_images.shape == (30, 3, 32, 32)


def test_download_with_wrong_md5_leaves_nothing(tmp_path):
    url, _ = _fake_archive(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(DatasetError, match="md5"):
        download_and_extract(url, "0" * 32, root, "cifar-10-batches-py")
    assert not root.exists()  # the data directory it created is removed again


def test_failed_download_is_not_found_and_leaves_nothing(tmp_path):
    root = tmp_path / "data"
    url = (tmp_path / "absent.tar.gz").as_uri()
    with pytest.raises(DatasetNotFoundError, match="absent.tar.gz"):
        download_and_extract(url, "0" * 32, root, "cifar-10-batches-py")
    assert not root.exists()  # the data directory it created is removed again


def test_missing_dataset_without_network_creates_no_directory(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    root = tmp_path / "a" / "data"
    with pytest.raises(DatasetNotFoundError, match="Name or service not known"):
        load_dataset("cifar10", root)
    assert os.listdir(tmp_path) == []  # neither data/ nor its missing parent a/
    (tmp_path / "keep").mkdir()  # a directory that was there before stays
    with pytest.raises(DatasetNotFoundError):
        load_dataset("cifar100", tmp_path / "keep")
    assert os.listdir(tmp_path) == ["keep"] and os.listdir(tmp_path / "keep") == []


def test_local_copy_with_other_md5_is_read_without_download(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path, "cifar10")  # md5s differ from the official ones

    def no_network(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert load_cifar10(tmp_path, download=True).num_classes == 10


# --- Tiny ImageNet --------------------------------------------------------------------------


def test_tinyimagenet_official_layout(tmp_path):
    (train_px, train_y), (val_px, val_y) = write_fake_tinyimagenet(tmp_path, per_class=2)
    ds = load_tinyimagenet(tmp_path)
    assert ds.train_images.shape == (6, 3, 64, 64) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (3, 3, 64, 64) and ds.num_classes == 3
    assert ds.train_labels.tolist() == [0, 0, 1, 1, 2, 2] and ds.test_labels.tolist() == [0, 1, 2]
    assert np.array_equal(ds.train_images.permute(0, 2, 3, 1).numpy(), train_px)
    assert np.array_equal(ds.test_images.permute(0, 2, 3, 1).numpy(), val_px)
    grey = ds.train_images[0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # grey -> RGB


def test_tinyimagenet_corrupt_image_names_it(tmp_path):
    write_fake_tinyimagenet(tmp_path)
    bad = tmp_path / "tiny-imagenet-200" / "val" / "images" / "val_1.JPEG"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="val_1.JPEG"):
        load_dataset("tinyimagenet", tmp_path)


def test_tinyimagenet_missing_is_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="wnids.txt"):
        load_tinyimagenet(tmp_path)


def test_unknown_dataset_lists_accepted_names(tmp_path):
    with pytest.raises(ValueError, match="'imagenet'.*cifar10"):
        load_dataset("imagenet", tmp_path)


# --- synthetic ------------------------------------------------------------------------------


def test_synthetic_is_deterministic_balanced_and_seeded():
    a, b = make_synthetic(200, 50), make_synthetic(200, 50)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels,
                                                                       b.test_labels)
    assert torch.bincount(a.train_labels).tolist() == [20] * 10
    assert not torch.equal(make_synthetic(200, 50, seed=1).train_images, a.train_images)


def test_synthetic_classes_are_learnable_by_nearest_class_mean():
    ds = make_synthetic(1000, 500)
    means = torch.stack([ds.train_images[ds.train_labels == k].float().mean(0)
                         for k in range(10)]).flatten(1)  # 10 x 3072
    predicted = torch.cdist(ds.test_images.float().flatten(1), means).argmin(1)
    assert (predicted == ds.test_labels).float().mean() > 0.9  # chance: 0.1


# --- augmentation ---------------------------------------------------------------------------


def _reference_crop_flip(images, pad, dy, dx, flip):
    padded = torch.nn.functional.pad(images, (pad,) * 4)
    h, w = images.shape[-2:]
    out = []
    for i in range(len(images)):  # per-image loop: the slow, obvious version
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out.append(crop.flip(-1) if flip[i] else crop)
    return torch.stack(out)


def test_crop_flip_matches_per_image_reference():
    images = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8)
    out = crop_flip(images, 2, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # replay the draws crop_flip makes, in its order
    dy = torch.randint(0, 5, (16,), generator=g)
    dx = torch.randint(0, 5, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    assert out.dtype == torch.uint8 and out.shape == images.shape and out.is_contiguous()
    assert torch.equal(out, _reference_crop_flip(images, 2, dy, dx, flip))
    assert 0 < int(flip.sum()) < 16 and (dy != 2).any()  # the test exercised both


def test_crop_flip_is_deterministic_given_generator():
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    a = crop_flip(images, 2, torch.Generator().manual_seed(0))
    b = crop_flip(images, 2, torch.Generator().manual_seed(0))
    c = crop_flip(images, 2, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_scale_crop_flip_shape_determinism_and_identity():
    images = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8)
    a = scale_crop_flip(images, 80 / 64, torch.Generator().manual_seed(0))
    b = scale_crop_flip(images, 80 / 64, torch.Generator().manual_seed(0))
    assert a.shape == images.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, scale_crop_flip(images, 80 / 64, torch.Generator().manual_seed(1)))
    same = scale_crop_flip(images, 1.0, torch.Generator().manual_seed(0))  # no scale: mirror
    for i in range(8):
        assert torch.equal(same[i], images[i]) or torch.equal(same[i], images[i].flip(-1))


def test_resize_average_pools_and_normalize_standardises():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    small = resize(images, 16)
    expected = torch.nn.functional.avg_pool2d(images.float(), 2).round().to(torch.uint8)
    assert small.shape == (4, 3, 16, 16) and torch.equal(small, expected)
    assert resize(images, 20).shape == (4, 3, 20, 20)
    mean, std = channel_stats(images)
    x = normalize(images, mean, std)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


# --- splits ---------------------------------------------------------------------------------


def test_split_is_disjoint_sized_and_fixed_by_seed():
    train, val = split_indices(1000, train_size=500, val_size=50, seed=3)
    assert len(train) == 450 and len(val) == 50
    assert not set(train.tolist()) & set(val.tolist())
    assert max(train.max(), val.max()) < 1000
    again_train, again_val = split_indices(1000, train_size=500, val_size=50, seed=3)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert not torch.equal(val, split_indices(1000, train_size=500, val_size=50, seed=4)[1])
    full_train, full_val = split_indices(50_000, train_size=None, val_size=5_000, seed=0)
    assert len(full_train) == 45_000 and len(set(full_val.tolist())) == 5_000
    with pytest.raises(ValueError, match="cannot draw"):
        split_indices(100, train_size=200, val_size=10, seed=0)


def test_make_splits_follows_the_fidelity():
    ds = make_synthetic(2000, 400)
    fid = dataclasses.replace(get_fidelity("smoke"), train_size=1000, test_size=300,
                              resolution=16)
    s = make_splits(ds, fid, torch.device("cpu"))
    assert s.train_images.shape == (900, 3, 16, 16) and s.val_images.shape == (100, 3, 16, 16)
    assert s.test_images.shape == (300, 3, 16, 16) and s.train_images.dtype == torch.uint8
    assert s.augmentation == "crop_flip" and s.num_classes == 10
    # validation images are train images, never test images; same seed -> same split
    again = make_splits(ds, fid, torch.device("cpu"))
    assert torch.equal(s.val_images, again.val_images)
