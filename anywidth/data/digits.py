"""scikit-learn's bundled 8×8 handwritten digits: the offline default dataset.

1797 grey images of the digits 0-9 ship inside scikit-learn, so this works with no
network and no files. Splits are stratified 70 / 10 / 20 (train / val / test) by seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from anywidth.data._dataset import ImageDataset, stratified_split

__all__ = ["SPLIT_FRACTIONS", "load_digits"]

SPLIT_FRACTIONS: dict[str, float] = {"train": 0.7, "val": 0.1, "test": 0.2}
_MAX_PIXEL = 16.0  # load_digits stores ink counts 0..16


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = (bunch.images / _MAX_PIXEL).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    return images, bunch.target.astype(np.int64)


def load_digits(
    *,
    seed: int = 0,
    image_size: int | None = None,
    splits: Sequence[str] = ("train", "val", "test"),
) -> dict[str, ImageDataset]:
    """The 8×8 digits as ``(1, 8, 8)`` float32 images, normalised by train-split statistics.

    Pixels are scaled to [0, 1], then shifted and scaled by the mean and standard
    deviation of the train split of this ``seed``, so all three splits share one
    normalisation and nothing about val/test leaks into it.

    Args:
        seed: picks the stratified split; the same seed always gives the same split.
        image_size: resize to ``image_size × image_size`` (bilinear) for models that need
            larger inputs; ``None`` keeps 8×8.
        splits: which of ``"train"``, ``"val"``, ``"test"`` to return.

    Returns:
        ``{split: ImageDataset}`` for the requested splits.

    Example:
        >>> test = load_digits(seed=0, splits=["test"])["test"]
        >>> len(test), test[0][0].shape
        (359, torch.Size([1, 8, 8]))
    """
    unknown = sorted(set(splits) - set(SPLIT_FRACTIONS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; digits has {list(SPLIT_FRACTIONS)}")
    images, labels = _raw_digits()
    indices = stratified_split(labels, list(SPLIT_FRACTIONS.values()), seed)
    parts = dict(zip(SPLIT_FRACTIONS, indices, strict=True))
    train_pixels = images[parts["train"]]
    mean, std = float(train_pixels.mean()), float(train_pixels.std())
    return {
        split: ImageDataset(
            torch.from_numpy(images[parts[split]][:, None]),  # (N, 1, 8, 8)
            torch.from_numpy(labels[parts[split]]),
            mean=[mean],
            std=[std],
            classes=[str(d) for d in range(10)],
            image_size=image_size,
        )
        for split in splits
    }
