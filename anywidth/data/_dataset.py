"""In-memory image dataset shared by every source, and the stratified split helper."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

__all__ = ["ImageDataset", "stratified_split"]


class ImageDataset(Dataset):
    """Images held in memory as one tensor, normalised (and resized) on access.

    Uint8 images (as CIFAR stores them) are kept as uint8 and converted per item, so a
    50 000-image train split costs 150 MB rather than 600 MB; float images are used as given
    (already scaled, e.g. to [0, 1]).

    Args:
        images: ``(N, C, H, W)`` uint8 in [0, 255] (divided by 255 on access) or float.
        labels: ``(N,)`` integer class indices.
        mean: per-channel mean subtracted after scaling.
        std: per-channel standard deviation divided by after subtracting ``mean``.
        classes: class names, index = label.
        image_size: resize every image to ``image_size × image_size`` (bilinear).
        augment: random crop (padding ``H // 8``) and horizontal flip, drawn from torch's
            global RNG (or the loader worker's), so seeded runs stay reproducible.

    Example:
        >>> ds = ImageDataset(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]),
        ...                   mean=[0.5], std=[0.25], classes=["a", "b"])
        >>> ds[0][0].shape
        torch.Size([1, 8, 8])
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        classes: Sequence[str],
        image_size: int | None = None,
        augment: bool = False,
    ) -> None:
        if images.dim() != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"images must be (N, C, H, W) with N == len(labels); got {tuple(images.shape)} "
                f"images and {tuple(labels.shape)} labels"
            )
        if image_size is not None and image_size < 1:
            raise ValueError(f"image_size must be a positive int or None, got {image_size}")
        self.images = images
        self.labels = labels.long()
        channels = images.shape[1]
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(channels, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(channels, 1, 1)
        self.classes = list(classes)
        self.image_size = image_size
        self.augment = augment

    @property
    def num_classes(self) -> int:
        """Number of classes (length of ``classes``)."""
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """Channels of every returned image."""
        return int(self.images.shape[1])

    @property
    def output_size(self) -> int:
        """Height (= width when square) of every returned image, after any resizing."""
        return self.image_size if self.image_size is not None else int(self.images.shape[-2])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]  # (C, H, W)
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        image = (image - self.mean) / self.std
        if self.image_size is not None and tuple(image.shape[-2:]) != (self.image_size,) * 2:
            image = F.interpolate(
                image[None],
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
            )[0]
        if self.augment:
            image = _random_crop_flip(image)
        return image, self.labels[index]


def _random_crop_flip(image: torch.Tensor) -> torch.Tensor:
    """Pad-and-crop by up to an eighth of the side, then flip left-right half the time."""
    _, height, width = image.shape
    pad = max(height // 8, 1)
    padded = F.pad(image, (pad, pad, pad, pad))  # zeros = the mean after normalisation
    top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
    image = padded[:, top : top + height, left : left + width]
    if torch.rand(()) < 0.5:
        image = image.flip(-1)
    return image


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices into parts with the same class proportions, deterministically.

    Each class is shuffled with a generator seeded by ``seed`` and cut at the cumulative
    ``fractions``, so every part holds about ``fraction`` of every class.

    Args:
        labels: ``(N,)`` class index per sample.
        fractions: share of each part; they must sum to 1.
        seed: the same seed always gives the same parts.

    Returns:
        One sorted index array per fraction; together they are a partition of ``range(N)``.

    Example:
        >>> train, test = stratified_split(np.array([0, 0, 1, 1]), [0.5, 0.5], seed=0)
        >>> sorted(np.concatenate([train, test]).tolist())
        [0, 1, 2, 3]
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    cumulative = np.cumsum(fractions)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(cumulative * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts[:-1]), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(part)) for part in parts]
