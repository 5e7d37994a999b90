"""Seeded random images of any shape, for tests and timing runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from anywidth.data._dataset import ImageDataset

__all__ = ["load_synthetic"]

_SPLITS = ("train", "val", "test")


def load_synthetic(
    *,
    seed: int = 0,
    image_size: int | None = None,
    splits: Sequence[str] = _SPLITS,
    num_samples: int = 512,
    num_eval_samples: int | None = None,
    image_shape: Sequence[int] = (3, 32, 32),
    num_classes: int = 10,
    signal: float = 1.0,
) -> dict[str, ImageDataset]:
    """Random images with random labels; the same seed always gives the same tensors.

    Each image is standard normal noise plus ``signal`` times a fixed random template of
    its class, so a model can learn something (``signal=0`` gives pure noise). The class
    templates are shared by all splits of one seed; each split draws its own samples.

    Args:
        seed: makes everything reproducible.
        image_size: resize to ``image_size × image_size`` (bilinear); ``None`` keeps the shape.
        splits: which of ``"train"``, ``"val"``, ``"test"`` to return.
        num_samples: size of the train split.
        num_eval_samples: size of the val and test splits (default ``num_samples // 4``).
        image_shape: ``(C, H, W)`` of every image.
        num_classes: labels are drawn uniformly from ``range(num_classes)``.
        signal: strength of the class template relative to the unit noise.

    Returns:
        ``{split: ImageDataset}`` for the requested splits.

    Example:
        >>> ds = load_synthetic(num_samples=8, image_shape=(1, 4, 4), splits=["train"])["train"]
        >>> len(ds), ds[0][0].shape
        (8, torch.Size([1, 4, 4]))
    """
    unknown = sorted(set(splits) - set(_SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; synthetic has {list(_SPLITS)}")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (C, H, W) of positive ints, got {image_shape}")
    if num_samples < 1 or num_classes < 1:
        raise ValueError(
            f"num_samples and num_classes must be >= 1, got {num_samples}, {num_classes}"
        )
    eval_samples = max(num_samples // 4, 1) if num_eval_samples is None else num_eval_samples
    templates = np.random.default_rng([seed, 0]).standard_normal((num_classes, *shape))
    result = {}
    for split in splits:
        rng = np.random.default_rng([seed, 1 + _SPLITS.index(split)])
        count = num_samples if split == "train" else eval_samples
        labels = rng.integers(0, num_classes, size=count)
        images = rng.standard_normal((count, *shape)) + signal * templates[labels]
        result[split] = ImageDataset(
            torch.from_numpy(images.astype(np.float32)),  # (N, C, H, W)
            torch.from_numpy(labels),
            mean=[0.0] * shape[0],
            std=[1.0] * shape[0],
            classes=[str(c) for c in range(num_classes)],
            image_size=image_size,
        )
    return result
