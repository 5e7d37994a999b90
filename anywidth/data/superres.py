"""Super-resolution pairs from the photographs that ship inside scikit-image (``sr-skimage``).

scikit-image's wheel carries a handful of real photographs (``skimage/data``); nothing is
downloaded. They are split once, by name, into a training set, one validation image and a
held-out test set of six (the role Set5/Set14 play in papers). Low-resolution images are
made the usual way: the high-resolution image is cropped to a multiple of the scale,
downscaled by bicubic interpolation with antialiasing (close to MATLAB's ``imresize``) and
rounded to 8 bits. Training serves random aligned patch pairs (with flips and 90° turns);
validation and test serve whole images, one per batch. Grey photographs are repeated to
three channels, so every pair is RGB in [0, 1]; quality is scored on the Y channel
(`anywidth.metrics.psnr`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

__all__ = [
    "SR_SPLITS",
    "PatchDataset",
    "PairDataset",
    "downscale",
    "load_sr_skimage",
    "make_pair",
]

SCALES = (2, 3, 4)

# Whole photographs only; 'cat' is 'chelsea' again and the two motorcycle views share a split.
SR_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "brick",
        "cell",
        "grass",
        "gravel",
        "hubble_deep_field",
        "immunohistochemistry",
        "moon",
        "motorcycle_left",
        "motorcycle_right",
        "page",
        "retina",
        "text",
    ),
    "val": ("clock",),
    "test": ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket"),
}


def _check_scale(scale: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


@lru_cache(maxsize=32)
def _photo(name: str) -> torch.Tensor:
    """One bundled photograph as ``(3, H, W)`` uint8."""
    import skimage.data
    from skimage.io import imread

    if name.startswith("motorcycle_"):
        path = f"{skimage.data.__path__[0]}/{name}.png"
        image = imread(path)
    else:
        image = getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1).contiguous()


def downscale(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic, antialiased downscaling by ``scale``, rounded to 8 bits.

    Args:
        image: ``(C, H, W)`` in [0, 1] with H and W multiples of ``scale``.

    Returns:
        ``(C, H / scale, W / scale)`` in [0, 1], on the 1/255 grid.
    """
    _check_scale(scale)
    height, width = image.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"image size {height}×{width} is not a multiple of the scale {scale}")
    low = F.interpolate(
        image[None].float(), size=(height // scale, width // scale), mode="bicubic",
        antialias=True, align_corners=False,
    )[0]  # fmt: skip
    return torch.round(low.clamp(0, 1) * 255.0) / 255.0


def make_pair(image: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) resolution pair of a ``(C, H, W)`` image in [0, 1] or uint8.

    The image is cropped (bottom/right) to a multiple of ``scale``, then downscaled.
    """
    _check_scale(scale)
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    height, width = (s - s % scale for s in image.shape[-2:])
    if min(height, width) < 2 * scale:
        raise ValueError(
            f"an image of {tuple(image.shape[-2:])} pixels is too small for scale {scale}: "
            f"it needs at least {2 * scale} pixels on each side"
        )
    high = image[:, :height, :width].contiguous()
    return downscale(high, scale), high


class PairDataset(Dataset):
    """Whole-image (low, high) pairs, one per item (images differ in size: batch size 1).

    Attributes:
        scale, in_channels, num_classes (0: no classes), output_size (largest side),
        eval_batch_size (1), names.
    """

    eval_batch_size = 1
    num_classes = 0

    def __init__(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], scale: int,
                 names: Sequence[str] = ()) -> None:  # fmt: skip
        if not pairs:
            raise ValueError("PairDataset needs at least one image")
        self.pairs, self.scale, self.names = list(pairs), scale, list(names)

    @property
    def in_channels(self) -> int:
        return int(self.pairs[0][0].shape[0])

    @property
    def output_size(self) -> int:
        return max(max(high.shape[-2:]) for _, high in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pairs[index]


class PatchDataset(PairDataset):
    """Random aligned patches of whole-image pairs: ``patch × patch`` low-resolution pixels
    and the ``patch·scale`` square above them, flipped and turned at random.

    Each item draws an image (``index`` modulo the number of images), a position and an
    orientation from torch's global RNG (which the training loop seeds and checkpoints), so
    runs repeat and resume exactly. ``len`` is ``patches`` per epoch.
    """

    def __init__(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], scale: int,
                 patch: int, patches: int, names: Sequence[str] = ()) -> None:  # fmt: skip
        super().__init__(pairs, scale, names)
        if patch < 1 or patches < 1:
            raise ValueError(f"patch and patches must be >= 1, got {patch} and {patches}")
        small = [n for (low, _), n in zip(self.pairs, self.names or ["?"] * len(self.pairs),
                                           strict=True) if min(low.shape[-2:]) < patch]  # fmt: skip
        if small:
            raise ValueError(f"patch {patch} is larger than the low-resolution image(s) {small}")
        self.patch, self.patches = patch, patches

    @property
    def output_size(self) -> int:
        return self.patch * self.scale

    def __len__(self) -> int:
        return self.patches

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = self.pairs[index % len(self.pairs)]
        p, s = self.patch, self.scale
        top = int(torch.randint(0, low.shape[-2] - p + 1, ()))
        left = int(torch.randint(0, low.shape[-1] - p + 1, ()))
        low = low[:, top : top + p, left : left + p]  # (C, p, p)
        high = high[:, top * s : (top + p) * s, left * s : (left + p) * s]  # (C, p·s, p·s)
        turns, flip = int(torch.randint(0, 4, ())), bool(torch.rand(()) < 0.5)
        if flip:
            low, high = low.flip(-1), high.flip(-1)
        return low.rot90(turns, (-2, -1)).contiguous(), high.rot90(turns, (-2, -1)).contiguous()


def _crop_center(image: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return image
    height, width = image.shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return image[:, top : top + size, left : left + size]


def load_sr_skimage(
    *,
    seed: int = 0,
    image_size: int | None = None,
    splits: Sequence[str] = ("train", "val", "test"),
    scale: int = 3,
    patch: int = 16,
    patches: int = 512,
    max_size: int | None = None,
) -> dict[str, PairDataset]:
    """The ``sr-skimage`` super-resolution set: bundled photographs as (low, high) pairs.

    Args:
        seed: unused (the split is fixed by name); accepted like every source's.
        image_size: not supported (super-resolution fixes sizes by ``scale``); must be None.
        splits: which of ``"train"``, ``"val"``, ``"test"`` to return.
        scale: 2, 3 or 4.
        patch: side of a training patch in low-resolution pixels (EDSR uses 48).
        patches: training patches per epoch.
        max_size: crop every photograph to its central ``max_size`` square first (smaller
            runs); None keeps whole photographs.

    Returns:
        ``{split: dataset}``: a `PatchDataset` for train, `PairDataset` for val and test.

    Example:
        >>> test = load_sr_skimage(scale=3, splits=["test"])["test"]
        >>> low, high = test[0]  # astronaut: (3, 170, 170), (3, 510, 510)
    """
    del seed
    _check_scale(scale)
    if image_size is not None:
        raise ValueError("sr-skimage does not resize images (image_size); use max_size= to crop")
    if max_size is not None and max_size < 2 * scale:
        raise ValueError(f"max_size must be at least {2 * scale} for scale {scale}")
    unknown = sorted(set(splits) - set(SR_SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; sr-skimage has {list(SR_SPLITS)}")
    out: dict[str, PairDataset] = {}
    for split in splits:
        names = SR_SPLITS[split]
        pairs = [make_pair(_crop_center(_photo(n), max_size), scale) for n in names]
        if split == "train":
            out[split] = PatchDataset(pairs, scale, patch, patches, names)
        else:
            out[split] = PairDataset(pairs, scale, names)
    return out
