import gzip

import numpy as np
import pytest
import torch

from anywidth.data import list_datasets, load_dataset, make_loaders
from anywidth.data.fashion_mnist import FILES, MEAN, STD, load_fashion_mnist, write_idx

N_TRAIN, N_TEST = 100, 20  # ten / two images of every class


def _write(folder, seed=0):
    """A miniature Fashion-MNIST in the real IDX layout; returns what was written."""
    rng = np.random.default_rng(seed)
    written = {}
    for part, n in (("train", N_TRAIN), ("test", N_TEST)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.tile(np.arange(10, dtype=np.uint8), n // 10)
        write_idx(folder / FILES[part][0], images)
        write_idx(folder / FILES[part][1], labels)
        written[part] = images, labels
    return written


def test_reads_the_idx_files_and_normalises(tmp_path):
    written = _write(tmp_path)
    data = load_fashion_mnist(tmp_path)
    assert len(data["train"]) + len(data["val"]) == N_TRAIN
    assert len(data["val"]) == 10 and len(data["test"]) == N_TEST
    image, label = data["test"][3]
    assert image.shape == (1, 28, 28) and label == 3
    raw = torch.from_numpy(written["test"][0][3].astype(np.float32)) / 255
    torch.testing.assert_close(image[0], (raw - MEAN[0]) / STD[0])
    assert data["train"].num_classes == 10 and data["train"].classes[9] == "ankle boot"


def test_limits_take_fixed_subsets_and_the_split_is_stratified(tmp_path):
    _write(tmp_path)
    data = load_fashion_mnist(tmp_path, limit=80, test_limit=5, seed=1)
    assert len(data["train"]) + len(data["val"]) == 80 and len(data["test"]) == 5
    assert sorted(data["val"].labels.tolist()) == list(range(10))  # one of each class
    again = load_fashion_mnist(tmp_path, limit=80, test_limit=5, seed=1)
    assert torch.equal(data["train"].images, again["train"].images)


def test_registered_with_make_loaders_and_root(tmp_path):
    _write(tmp_path)
    assert "fashion-mnist" in list_datasets()
    loaders = make_loaders("fashion-mnist", root=tmp_path, batch_size=8, image_size=14)
    images, labels = next(iter(loaders.train))
    assert images.shape == (8, 1, 14, 14) and loaders.num_classes == 10
    assert len(load_dataset("fashion-mnist", "test", root=tmp_path)) == N_TEST


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    write_idx(tmp_path / FILES["test"][0], np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / FILES["test"][1], np.zeros(2, np.uint8))
    assert len(load_fashion_mnist(tmp_path, splits=["test"])["test"]) == 2  # reads only test


@pytest.mark.parametrize("damage", ["truncated", "not_gzip", "wrong_type", "count_mismatch"])
def test_damaged_files_are_named(tmp_path, damage):
    _write(tmp_path)
    path = tmp_path / FILES["test"][0]
    if damage == "truncated":
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[:-10]))
    elif damage == "not_gzip":
        path.write_bytes(b"hello")
    elif damage == "wrong_type":
        write_idx(path, np.zeros(5, np.uint8))  # one dimension where three are expected
    else:
        write_idx(path, np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        load_fashion_mnist(tmp_path, splits=["test"])


def test_bad_options_and_bundled_root():
    with pytest.raises(ValueError, match="limit"):
        load_fashion_mnist(limit=0)
    with pytest.raises(ValueError, match="drop root"):
        load_dataset("digits", "test", root="/tmp")
