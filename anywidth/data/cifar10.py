"""CIFAR-10 from a local folder in the standard python-pickle batch format.

Nothing is downloaded. The batches are pickles, so they are read with a restricted
unpickler that can only rebuild numpy arrays, lists, dicts, strings and numbers; a file that
asks for anything else (``os.system``, arbitrary classes) is refused before it runs.
"""

from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anywidth.data._dataset import ImageDataset, stratified_split

__all__ = ["TRAIN_FILES", "TEST_FILE", "META_FILE", "UnsafePickleError", "load_cifar10"]

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
SUBFOLDER = "cifar-10-batches-py"
SOURCE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# Per-channel statistics of the full 50 000-image train set, as commonly published; fixed
# constants keep the test split's normalisation independent of which files were read.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_SIDE = 32


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    reconstruct, frombuffer = multiarray._reconstruct, numeric._frombuffer
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,  # how Python 3 pickles bytes at protocol 2
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


class UnsafePickleError(pickle.UnpicklingError):
    """A batch file asked to load something other than numpy array code; it was not run."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if codecs.lookup(encoding).name != "iso8859-1":
        raise ValueError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the few globals numpy arrays need."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._path}: refusing to unpickle '{module}.{name}'. CIFAR-10 batches hold "
                f"only numpy arrays, lists and strings, so this file is corrupt or unsafe; "
                f"delete it and extract a fresh copy of {SOURCE_URL}"
            ) from None


def _read_pickle(path: Path) -> dict:
    try:
        with path.open("rb") as file:
            obj = _ArrayUnpickler(file, path).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # truncated or garbled files raise many types
        raise ValueError(
            f"{path}: not a readable CIFAR-10 batch ({type(error).__name__}: {error}); "
            f"extract a fresh copy of {SOURCE_URL}"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict in a CIFAR-10 batch, found {type(obj).__name__}")
    # encoding="bytes" gives bytes keys for the Python 2 originals; accept str keys too.
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_pickle(path)
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels', has {list(batch)}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * _SIDE * _SIDE:
        raise ValueError(
            f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}"
        )
    if len(labels) != len(data) or (len(labels) and not 0 <= labels.min() <= labels.max() < 10):
        raise ValueError(f"{path}: 'labels' must be {len(data)} class indices in 0..9")
    return data.reshape(-1, 3, _SIDE, _SIDE), labels  # rows are R, G, B planes


def _find_folder(root: str | Path, needed: Sequence[str]) -> Path:
    root = Path(root).expanduser()
    for folder in (root / SUBFOLDER, root):
        if all((folder / name).is_file() for name in needed):
            return folder
    folder = root / SUBFOLDER if (root / SUBFOLDER).is_dir() else root
    missing = [name for name in needed if not (folder / name).is_file()]
    raise FileNotFoundError(
        f"CIFAR-10 not found in {folder} (missing: {', '.join(missing)}). Expected the "
        f"python batch files {', '.join((*TRAIN_FILES, TEST_FILE, META_FILE))} in "
        f"'{root}' or '{root / SUBFOLDER}'. Download {SOURCE_URL} and extract it there "
        f"(tar xzf cifar-10-python.tar.gz -C {root}); anywidth never downloads."
    )


def _class_names(folder: Path) -> list[str]:
    if not (folder / META_FILE).is_file():
        return list(CLASSES)
    names = _read_pickle(folder / META_FILE).get("label_names", CLASSES)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_cifar10(
    root: str | Path,
    *,
    seed: int = 0,
    image_size: int | None = None,
    splits: Sequence[str] = ("train", "val", "test"),
    limit: int | None = None,
    val_fraction: float = 0.1,
    augment: bool = False,
) -> dict[str, ImageDataset]:
    """CIFAR-10 as ``(3, 32, 32)`` float32 images, normalised by the standard train statistics.

    Args:
        root: folder holding the batch files, or its parent holding ``cifar-10-batches-py``.
        seed: picks the stratified val split carved out of the 50 000 train images.
        image_size: resize to ``image_size × image_size`` (bilinear); ``None`` keeps 32.
        splits: which of ``"train"``, ``"val"``, ``"test"`` to return; only the files these
            need are read (train batches for train/val, ``test_batch`` for test).
        limit: use only the first ``limit`` train images (before the val split) and the first
            ``limit`` test images, for quick runs.
        val_fraction: share of the train images held out as the val split.
        augment: random crop and horizontal flip on the train split (the usual CIFAR recipe).

    Returns:
        ``{split: ImageDataset}`` for the requested splits.

    Raises:
        FileNotFoundError: the folder or a needed batch file is missing; the message lists
            the expected files and where to get them.
        UnsafePickleError: a batch file asks to run anything but numpy array code.
        ValueError: a batch file is truncated, garbled or has the wrong layout.

    Example:
        >>> test = load_cifar10("~/data/cifar10", splits=["test"])["test"]
        >>> test[0][0].shape
        torch.Size([3, 32, 32])
    """
    unknown = sorted(set(splits) - {"train", "val", "test"})
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; cifar10 has ['train', 'val', 'test']")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit}")
    wants_train = bool({"train", "val"} & set(splits))
    needed = [*(TRAIN_FILES if wants_train else ()), *((TEST_FILE,) if "test" in splits else ())]
    folder = _find_folder(root, needed)
    classes = _class_names(folder)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if wants_train:
        batches = [_read_batch(folder / name) for name in TRAIN_FILES]
        images = np.concatenate([b[0] for b in batches])[:limit]
        labels = np.concatenate([b[1] for b in batches])[:limit]
        train_idx, val_idx = stratified_split(labels, [1.0 - val_fraction, val_fraction], seed)
        arrays["train"] = images[train_idx], labels[train_idx]
        arrays["val"] = images[val_idx], labels[val_idx]
    if "test" in splits:
        images, labels = _read_batch(folder / TEST_FILE)
        arrays["test"] = images[:limit], labels[:limit]
    return {
        split: ImageDataset(
            torch.from_numpy(np.ascontiguousarray(arrays[split][0])),  # (N, 3, 32, 32) uint8
            torch.from_numpy(arrays[split][1]),
            mean=MEAN,
            std=STD,
            classes=classes,
            image_size=image_size,
            augment=augment and split == "train",
        )
        for split in splits
    }
