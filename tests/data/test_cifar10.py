import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from anywidth.data import load_dataset, make_loaders
from anywidth.data.cifar10 import (
    MEAN,
    META_FILE,
    STD,
    TEST_FILE,
    TRAIN_FILES,
    UnsafePickleError,
    load_cifar10,
)

PER_BATCH = 10  # one image of every class per file


def _batch(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = [int(c) for c in rng.permutation(10)]
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": labels,
        b"data": rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(PER_BATCH)],
    }


def _dumps(obj, protocol: int | str) -> bytes:
    if protocol == "numpy1":  # what numpy 1.x (and the original files) name the rebuilder
        raw = pickle.dumps(obj, protocol=2)
        return raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    return pickle.dumps(obj, protocol=protocol)


def _write_cifar(folder: Path, protocol: int | str = 2) -> dict[str, dict]:
    """Write a miniature CIFAR-10 in the real batch layout; return what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for seed, name in enumerate((*TRAIN_FILES, TEST_FILE)):
        written[name] = _batch(seed)
        (folder / name).write_bytes(_dumps(written[name], protocol))
    names = [b"plane", b"car", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"ox"]
    meta = {b"label_names": names, b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072}
    (folder / META_FILE).write_bytes(_dumps(meta, protocol))
    return written


@pytest.mark.parametrize(
    "protocol", [2, "numpy1", pickle.HIGHEST_PROTOCOL], ids=["proto2", "numpy1", "highest"]
)
@pytest.mark.parametrize("nested", [False, True], ids=["root", "subfolder"])
def test_reads_the_batch_format(tmp_path, protocol, nested):
    folder = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    written = _write_cifar(folder, protocol)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert len(test) == PER_BATCH and test.classes[-1] == "ox"
    row = written[TEST_FILE][b"data"][3]
    image, label = test[3]
    assert image.shape == (3, 32, 32) and int(label) == written[TEST_FILE][b"labels"][3]
    # Rows are the R plane, then G, then B, each 32 rows of 32 pixels.
    for channel in range(3):
        pixel = row[channel * 1024 + 2 * 32 + 5] / 255.0
        expected = (pixel - MEAN[channel]) / STD[channel]
        assert image[channel, 2, 5].item() == pytest.approx(expected, abs=1e-5)


def test_val_is_carved_from_train_by_seed(tmp_path):
    _write_cifar(tmp_path)
    a = load_cifar10(tmp_path, seed=0, val_fraction=0.2)
    b = load_cifar10(tmp_path, seed=0, val_fraction=0.2)
    c = load_cifar10(tmp_path, seed=1, val_fraction=0.2)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (40, 10, 10)
    assert sorted(a["val"].labels.tolist()) == list(range(10))  # stratified: 1 per class
    assert torch.equal(a["val"].images, b["val"].images)
    assert not torch.equal(a["val"].images, c["val"].images)
    train_rows = {bytes(x.numpy().tobytes()) for x in a["train"].images}
    assert not any(bytes(x.numpy().tobytes()) in train_rows for x in a["val"].images)


def test_limit_and_loaders(tmp_path):
    _write_cifar(tmp_path)
    loaders = make_loaders("cifar10", root=tmp_path, batch_size=4, limit=20, val_fraction=0.5)
    assert len(loaders.train.dataset) + len(loaders.val.dataset) == 20
    assert len(loaders.test.dataset) == 20 - 10  # the test batch has only 10
    images, _ = next(iter(loaders.train))
    assert images.shape == (4, 3, 32, 32)
    assert (loaders.num_classes, loaders.in_channels, loaders.image_size) == (10, 3, 32)


def test_augment_only_on_train(tmp_path):
    _write_cifar(tmp_path)
    data = load_cifar10(tmp_path, augment=True, image_size=16, val_fraction=0.2)
    assert data["train"].augment and not data["val"].augment and not data["test"].augment
    torch.manual_seed(0)
    first = torch.stack([data["train"][0][0] for _ in range(8)])
    assert first.shape == (8, 3, 16, 16)
    assert not all(torch.equal(first[0], x) for x in first[1:])  # crops/flips vary
    assert torch.equal(data["test"][0][0], data["test"][0][0])


def test_missing_folder_names_folder_and_files(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("cifar10", "train", root=missing)
    message = str(info.value)
    assert str(missing) in message
    for name in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta"):
        assert name in message
    assert "cifar-10-python.tar.gz" in message


def test_missing_test_batch_is_named(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / TEST_FILE).unlink()
    assert len(load_dataset("cifar10", "train", root=tmp_path)) > 0  # train needs no test file
    with pytest.raises(FileNotFoundError, match="missing: test_batch"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_root_is_required():
    with pytest.raises(ValueError, match="root"):
        make_loaders("cifar10")


class _RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evaluates:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval"])
def test_malicious_pickle_is_refused(tmp_path, payload):
    _write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    evil = _RunsCommand(f"touch {marker}") if payload == "os.system" else _Evaluates()
    batch = _batch(0)
    batch[b"labels"] = evil
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UnsafePickleError) as info:
        load_dataset("cifar10", "train", root=tmp_path)
    assert "data_batch_3" in str(info.value) and "refusing" in str(info.value)
    assert not marker.exists()


def test_truncated_batch_names_the_file(tmp_path):
    _write_cifar(tmp_path)
    path = tmp_path / "data_batch_2"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="data_batch_2.*not a readable CIFAR-10 batch"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_wrong_layout_is_refused(tmp_path):
    _write_cifar(tmp_path)
    batch = _batch(0)
    batch[b"data"] = batch[b"data"][:, :100]
    (tmp_path / TEST_FILE).write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match=r"test_batch.*\(N, 3072\)"):
        load_dataset("cifar10", "test", root=tmp_path)
