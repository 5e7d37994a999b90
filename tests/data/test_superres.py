"""sr-skimage: aligned low/high pairs of the right sizes, bicubic downscaling, patches, the
fixed split of scikit-image's photographs, and clear errors."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from anywidth.data import PatchDataset, list_datasets, make_loaders
from anywidth.data.superres import SR_SPLITS, PairDataset, downscale, load_sr_skimage, make_pair


def _image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth generated RGB image in [0, 1] (uint8, as photographs come)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=gen)
    fine = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return (fine[0] * 255).round().to(torch.uint8)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pairs_are_cropped_to_the_scale_and_aligned(scale):
    low, high = make_pair(_image(29, 31), scale)
    assert high.shape == (3, 29 - 29 % scale, 31 - 31 % scale)
    assert low.shape == (3, high.shape[1] // scale, high.shape[2] // scale)
    # low is the 8-bit bicubic downscale of high, so upscaling it comes close to high
    up = F.interpolate(low[None], scale_factor=scale, mode="bicubic", align_corners=False)[0]
    assert (up - high).abs().mean() < 0.02
    torch.testing.assert_close(low * 255, (low * 255).round())


def test_downscaling_a_constant_image_keeps_it():
    image = torch.full((3, 12, 12), 0.4)
    torch.testing.assert_close(downscale(image, 3), torch.full((3, 4, 4), 102 / 255))


def test_patches_are_aligned_crops_of_the_pair():
    pairs = [make_pair(_image(40, 36, seed=s), 2) for s in range(3)]
    data = PatchDataset(pairs, scale=2, patch=6, patches=10)
    assert len(data) == 10 and data.output_size == 12
    torch.manual_seed(0)
    for index in range(10):
        low, high = data[index]
        assert low.shape == (3, 6, 6) and high.shape == (3, 12, 12)
        # each low pixel is (close to) the mean of the 2×2 high pixels above it
        pooled = F.avg_pool2d(high[None], 2)[0]
        assert (pooled - low).abs().mean() < 0.03


def test_patch_draws_repeat_under_a_seed():
    pairs = [make_pair(_image(40, 36), 2)]
    data = PatchDataset(pairs, scale=2, patch=6, patches=4)
    torch.manual_seed(1)
    first = [data[i][0] for i in range(4)]
    torch.manual_seed(1)
    assert all(torch.equal(a, data[i][0]) for i, a in enumerate(first))


@pytest.mark.parametrize("scale", [1, 5, 2.0])
def test_bad_scales_are_refused(scale):
    with pytest.raises(ValueError, match=r"scale must be one of \(2, 3, 4\)"):
        make_pair(_image(12, 12), scale)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="too small for scale 4"):
        make_pair(_image(7, 30), 4)
    with pytest.raises(ValueError, match="not a multiple of the scale 3"):
        downscale(torch.rand(3, 10, 9), 3)
    pairs = [make_pair(_image(20, 20), 2)]
    with pytest.raises(ValueError, match=r"patch 12 is larger than .*\['tiny'\]"):
        PatchDataset(pairs, scale=2, patch=12, patches=4, names=["tiny"])
    with pytest.raises(ValueError, match="at least one image"):
        PairDataset([], scale=2)


def test_the_split_holds_out_six_photographs():
    assert len(SR_SPLITS["test"]) >= 5
    names = [n for split in SR_SPLITS.values() for n in split]
    assert len(names) == len(set(names))
    assert "sr-skimage" in list_datasets()


def test_loaders_serve_patch_batches_and_whole_test_images():
    loaders = make_loaders("sr-skimage", scale=4, batch_size=8, patch=10, patches=16, max_size=64)
    low, high = next(iter(loaders.train))
    assert low.shape == (8, 3, 10, 10) and high.shape == (8, 3, 40, 40)
    assert loaders.test.batch_size == 1 and len(loaders.test) == len(SR_SPLITS["test"])
    for low, high in loaders.test:
        assert high.shape == (1, 3, 64, 64) and low.shape == (1, 3, 16, 16)
    assert 0 <= float(high.min()) and float(high.max()) <= 1
    assert loaders.in_channels == 3 and loaders.image_size == 40


def test_whole_photographs_keep_their_size():
    test = load_sr_skimage(scale=3, splits=["test"])["test"]
    low, high = test[test.names.index("chelsea")]  # 300 × 451
    assert high.shape == (3, 300, 450) and low.shape == (3, 100, 150)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"scale": 5}, "scale must be one of"),
        ({"image_size": 32}, "does not resize"),
        ({"max_size": 4, "scale": 3}, "max_size must be at least 6"),
        ({"bogus": 1}, "has no option"),
    ],
)
def test_bad_options_get_clear_errors(options, match):
    with pytest.raises(ValueError, match=match):
        image_size = options.pop("image_size", None)
        make_loaders("sr-skimage", image_size=image_size, **options)
