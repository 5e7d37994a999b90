"""Bundled and local datasets, all served as normalised ``(C, H, W)`` float32 tensors.

``digits`` (scikit-learn's 8×8 digits) is bundled and the default; ``fashion-mnist`` reads the
IDX files of the Debian package ``dataset-fashion-mnist`` (or a folder you name); ``cifar10``
reads a local copy of the python batches; ``synthetic`` makes seeded random images;
``sr-skimage`` serves (low, high) resolution pairs of scikit-image's bundled photographs for
super-resolution (``scale=2/3/4``). Nothing is ever downloaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from anywidth.data._dataset import ImageDataset, stratified_split
from anywidth.data.cifar10 import load_cifar10
from anywidth.data.digits import load_digits
from anywidth.data.fashion_mnist import load_fashion_mnist
from anywidth.data.superres import PairDataset, PatchDataset, load_sr_skimage
from anywidth.data.synthetic import load_synthetic

__all__ = [
    "ImageDataset",
    "Loaders",
    "PairDataset",
    "PatchDataset",
    "list_datasets",
    "load_dataset",
    "make_loaders",
    "stratified_split",
]

SPLITS = ("train", "val", "test")

# name -> (loader returning {split: dataset}, whether it reads files under ``root``:
# "required", "optional" (the loader has a default folder) or "no")
_SOURCES: dict[str, tuple[Callable[..., dict[str, ImageDataset]], str]] = {
    "digits": (load_digits, "no"),
    "fashion-mnist": (load_fashion_mnist, "optional"),
    "cifar10": (load_cifar10, "required"),
    "synthetic": (load_synthetic, "no"),
    "sr-skimage": (load_sr_skimage, "no"),
}


def list_datasets() -> list[str]:
    """Names accepted by `load_dataset` and `make_loaders`, sorted.

    Example:
        >>> list_datasets()
        ['cifar10', 'digits', 'fashion-mnist', 'sr-skimage', 'synthetic']
    """
    return sorted(_SOURCES)


def _load_splits(
    name: str,
    splits: tuple[str, ...],
    root: str | Path | None,
    seed: int,
    image_size: int | None,
    options: dict[str, Any],
) -> dict[str, ImageDataset]:
    if name not in _SOURCES:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {list_datasets()}")
    bad_splits = [s for s in splits if s not in SPLITS]
    if bad_splits:
        raise ValueError(f"unknown split(s) {bad_splits}; use one of {list(SPLITS)}")
    loader, root_use = _SOURCES[name]
    accepted = set(inspect.signature(loader).parameters) - {"root", "seed", "image_size", "splits"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"dataset {name!r} has no option(s) {unknown}; it accepts {sorted(accepted)}"
        )
    kwargs = dict(options, seed=seed, image_size=image_size, splits=splits)
    if root_use == "required" and root is None:
        raise ValueError(f"dataset {name!r} reads local files: pass root=<folder>")
    if root_use == "no":
        if root is not None:
            raise ValueError(f"dataset {name!r} is bundled and reads no files: drop root=")
        return loader(**kwargs)
    return loader(root, **kwargs)


def load_dataset(
    name: str,
    split: str,
    *,
    root: str | Path | None = None,
    seed: int = 0,
    image_size: int | None = None,
    **options: Any,
) -> ImageDataset:
    """One split of a dataset, as ``(image, label)`` pairs of normalised float32 tensors.

    Args:
        name: one of `list_datasets()`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder of the local files (``cifar10``; ``fashion-mnist`` defaults to the Debian
            package's folder); bundled datasets take none.
        seed: picks the train/val(/test) split; the same seed always gives the same split.
        image_size: resize images to ``image_size × image_size`` (bilinear).
        **options: dataset-specific, e.g. ``limit=1000`` for ``cifar10`` or
            ``image_shape=(3, 16, 16)`` for ``synthetic``.

    Returns:
        An `ImageDataset` with ``num_classes``, ``in_channels`` and ``output_size``.

    Example:
        >>> test = load_dataset("digits", "test")
        >>> image, label = test[0]
        >>> image.shape, test.num_classes
        (torch.Size([1, 8, 8]), 10)
    """
    return _load_splits(name, (split,), root, seed, image_size, options)[split]


@dataclass
class Loaders:
    """Train / val / test loaders of one dataset and the facts a model needs about it.

    Example:
        >>> from anywidth import create_model
        >>> loaders = make_loaders("digits", batch_size=64)
        >>> model = create_model("resnet20", num_classes=loaders.num_classes,
        ...                      in_channels=loaders.in_channels)
    """

    train: DataLoader
    val: DataLoader
    test: DataLoader
    num_classes: int
    in_channels: int
    image_size: int
    name: str


def make_loaders(
    name: str = "digits",
    *,
    batch_size: int = 128,
    root: str | Path | None = None,
    seed: int = 0,
    image_size: int | None = None,
    num_workers: int = 0,
    **options: Any,
) -> Loaders:
    """Data loaders for the three splits of a dataset.

    The train loader shuffles with its own ``torch.Generator`` seeded from ``seed`` (the
    training loop re-seeds it every epoch so that a resumed run sees the same order); the
    val and test loaders keep a fixed order.

    Args:
        name: one of `list_datasets()`.
        batch_size: samples per batch for all three loaders.
        root: folder of the local files (``cifar10``, ``fashion-mnist``).
        seed: seeds the split and the shuffle.
        image_size: resize images to ``image_size × image_size`` (bilinear).
        num_workers: DataLoader worker processes (0 loads in the main process).
        **options: dataset-specific options, as for `load_dataset`.

    Returns:
        A `Loaders` record.

    Example:
        >>> loaders = make_loaders("digits", batch_size=64, seed=1)
        >>> images, labels = next(iter(loaders.train))
        >>> images.shape
        torch.Size([64, 1, 8, 8])
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    data = _load_splits(name, SPLITS, root, seed, image_size, options)
    common = {"batch_size": batch_size, "num_workers": num_workers}
    train = DataLoader(
        data["train"], shuffle=True, generator=torch.Generator().manual_seed(seed), **common
    )

    def fixed_order(split: str) -> DataLoader:
        # whole images of different sizes (super-resolution) come one per batch
        size = getattr(data[split], "eval_batch_size", batch_size)
        return DataLoader(data[split], shuffle=False, batch_size=size, num_workers=num_workers)

    return Loaders(
        train=train,
        val=fixed_order("val"),
        test=fixed_order("test"),
        num_classes=data["train"].num_classes,
        in_channels=data["train"].in_channels,
        image_size=data["train"].output_size,
        name=name,
    )
