"""PSNR and SSIM on Y against hand-computed values and scikit-image; the Metric records."""

from __future__ import annotations

import math

import pytest
import torch

from anywidth.metrics import ACCURACY, psnr, psnr_metric, rgb_to_y, ssim


def test_y_of_black_white_and_pure_colours():
    pixels = torch.tensor(
        [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float
    )
    y = rgb_to_y(pixels.T.reshape(1, 3, 1, 5)).flatten()
    torch.testing.assert_close(y, torch.tensor([16.0, 235.0, 81.481, 144.553, 40.966]))
    torch.testing.assert_close(
        rgb_to_y(torch.full((1, 1, 2, 2), 0.5)), torch.full((1, 1, 2, 2), 127.5)
    )


def test_psnr_of_a_constant_error_by_hand():
    # grey images: Y = 255·x; an error of 51 levels everywhere: PSNR = 20·log10(255/51)
    ref = torch.full((1, 1, 6, 6), 50 / 255)
    assert psnr(ref + 51 / 255, ref).item() == pytest.approx(20 * math.log10(5), abs=1e-9)
    # one wrong pixel of 51 levels among 16 after a 1-pixel border crop: MSE = 51²/16
    out = ref.clone()
    out[0, 0, 2, 3] += 0.2
    out[0, 0, 0, 0] = 1.0  # in the border: ignored
    want = 10 * math.log10(255**2 / (51**2 / 16))
    assert psnr(out, ref, border=1).item() == pytest.approx(want, abs=1e-6)
    assert psnr(ref, ref).item() == math.inf


def test_psnr_rounds_and_clamps_outputs_to_8_bits():
    ref = torch.full((1, 1, 4, 4), 100 / 255)
    assert psnr(ref + 0.4 / 255, ref).item() == math.inf  # rounds back to 100
    assert psnr(torch.full_like(ref, 2.0), torch.ones_like(ref)).item() == math.inf


def test_ssim_matches_scikit_image_and_is_one_for_identical_images():
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 24, 20, generator=gen)
    out = (ref + 0.1 * torch.randn(2, 3, 24, 20, generator=gen)).clamp(0, 1)
    got = ssim(out, ref, border=2)
    for i in range(2):
        y_out = rgb_to_y(torch.round(out[i : i + 1] * 255) / 255)[0, 0, 2:-2, 2:-2].double()
        y_ref = rgb_to_y(ref[i : i + 1])[0, 0, 2:-2, 2:-2].double()
        want = structural_similarity(
            y_out.numpy(), y_ref.numpy(), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=255.0,
        )  # fmt: skip
        # scikit-image averages over the image with its borders reflected; we use the
        # valid region only, as the reference MATLAB code does: close, not equal.
        assert abs(got[i].item() - want) < 0.02
    torch.testing.assert_close(
        ssim(ref, torch.round(ref * 255) / 255), torch.ones(2, dtype=torch.float64)
    )
    assert (got < 1).all()


@pytest.mark.parametrize(
    "out, ref, border, match",
    [
        ((1, 3, 8, 8), (1, 3, 8, 9), 0, "differ in shape"),
        ((1, 3, 8, 8), (1, 3, 8, 8), 4, "leaves nothing"),
        ((1, 2, 8, 8), (1, 2, 8, 8), 0, r"expected \(B, 1 or 3, H, W\)"),
    ],
)
def test_bad_inputs_get_clear_errors(out, ref, border, match):
    with pytest.raises(ValueError, match=match):
        psnr(torch.rand(out), torch.rand(ref), border=border)


def test_ssim_needs_an_11_pixel_window():
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12), border=1)


def test_metric_records():
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    assert ACCURACY.score(logits, labels).tolist() == [1.0, 0.0]
    metric = psnr_metric(2)
    ref = torch.full((2, 1, 8, 8), 0.5)
    assert metric.name == "psnr"
    torch.testing.assert_close(metric.score(ref + 0.1, ref), torch.full((2,), 20.0))
    torch.testing.assert_close(metric.loss(ref + 0.1, ref), torch.full((2,), 0.1))
    assert torch.isfinite(metric.score(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))).all()
