"""Fashion-MNIST from local IDX files (Debian: ``apt-get install dataset-fashion-mnist``).

70 000 grey 28×28 images of clothing in 10 classes (60 000 train, 10 000 test): a set on which
width-reduction methods separate where the 8×8 digits saturate. The four gzipped IDX files are
read from ``root`` (default: where the Debian package puts them); nothing is downloaded.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from anywidth.data._dataset import ImageDataset, stratified_split

__all__ = ["CLASSES", "DEFAULT_ROOT", "FILES", "load_fashion_mnist", "write_idx"]

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
# Statistics of the 60 000 train images, as commonly published; fixed so that every subset
# and split shares one normalisation.
MEAN = (0.2860,)
STD = (0.3530,)
_UBYTE = 0x08  # IDX type code of unsigned bytes


def _read_idx(path: Path, dims: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as error:
        raise ValueError(
            f"{path}: not a readable gzipped IDX file ({error}); reinstall it with "
            f"'apt-get install --reinstall dataset-fashion-mnist'"
        ) from None
    header = 4 + 4 * dims
    if len(raw) < header or raw[:2] != b"\0\0" or raw[2] != _UBYTE or raw[3] != dims:
        raise ValueError(f"{path}: expected an IDX file of unsigned bytes with {dims} dimension(s)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if len(raw) != header + int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but the file has the wrong length")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


@lru_cache(maxsize=4)
def _read_part(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = FILES[part]
    images = _read_idx(folder / image_file, 3)
    labels = _read_idx(folder / label_file, 1).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(
            f"{folder}: {image_file} holds {len(images)} images but {label_file} "
            f"{len(labels)} labels"
        )
    if len(labels) and labels.max() > 9:
        raise ValueError(f"{folder / label_file}: labels must be class indices 0..9")
    return images, labels


def _check_folder(folder: Path, parts: Sequence[str]) -> None:
    needed = [name for part in parts for name in FILES[part]]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {folder} (missing: {', '.join(missing)}). On Debian/"
            f"Ubuntu run 'apt-get install dataset-fashion-mnist' (files go to {DEFAULT_ROOT}), "
            f"or pass root=<folder holding {', '.join(needed)}>; anywidth never downloads."
        )


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (the format Fashion-MNIST ships in).

    Example:
        >>> write_idx("/tmp/labels.gz", np.arange(10, dtype=np.uint8))
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.tobytes())


def load_fashion_mnist(
    root: str | Path | None = None,
    *,
    seed: int = 0,
    image_size: int | None = None,
    splits: Sequence[str] = ("train", "val", "test"),
    limit: int | None = None,
    test_limit: int | None = None,
    val_fraction: float = 0.1,
    augment: bool = False,
) -> dict[str, ImageDataset]:
    """Fashion-MNIST as ``(1, 28, 28)`` float32 images, normalised by the train statistics.

    Args:
        root: folder of the four ``*-ubyte.gz`` files; ``None`` reads the Debian package's
            ``/usr/share/datasets/fashion-mnist``.
        seed: picks the stratified val split carved out of the train images.
        image_size: resize to ``image_size × image_size`` (bilinear); ``None`` keeps 28.
        splits: which of ``"train"``, ``"val"``, ``"test"`` to return; only the files these
            need are read.
        limit: use only the first ``limit`` train images (before the val split): a fixed
            subset for quick runs.
        test_limit: use only the first ``test_limit`` test images.
        val_fraction: share of the (limited) train images held out as the val split.
        augment: random crop (3 pixels of padding) and horizontal flip on the train split.

    Returns:
        ``{split: ImageDataset}`` for the requested splits.

    Raises:
        FileNotFoundError: a needed file is missing; the message says how to install it.
        ValueError: a file is not a valid IDX file, or an option is out of range.

    Example:
        >>> test = load_fashion_mnist(splits=["test"], test_limit=100)["test"]
        >>> len(test), test[0][0].shape
        (100, torch.Size([1, 28, 28]))
    """
    unknown = sorted(set(splits) - {"train", "val", "test"})
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; fashion-mnist has ['train', 'val', 'test']")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    for name, value in (("limit", limit), ("test_limit", test_limit)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive int or None, got {value}")
    folder = Path(root).expanduser().resolve() if root is not None else DEFAULT_ROOT
    parts = [
        *(["train"] if {"train", "val"} & set(splits) else []),
        *(["test"] if "test" in splits else []),
    ]
    _check_folder(folder, parts)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if "train" in parts:
        images, labels = _read_part(folder, "train")
        images, labels = images[:limit], labels[:limit]
        train_idx, val_idx = stratified_split(labels, [1.0 - val_fraction, val_fraction], seed)
        arrays["train"] = images[train_idx], labels[train_idx]
        arrays["val"] = images[val_idx], labels[val_idx]
    if "test" in parts:
        images, labels = _read_part(folder, "test")
        arrays["test"] = images[:test_limit], labels[:test_limit]
    return {
        split: ImageDataset(
            torch.from_numpy(np.ascontiguousarray(arrays[split][0])[:, None]),  # (N,1,28,28) u8
            torch.from_numpy(arrays[split][1]),
            mean=MEAN,
            std=STD,
            classes=CLASSES,
            image_size=image_size,
            augment=augment and split == "train",
        )
        for split in splits
    }
