"""What a task scores: `Metric` (accuracy for classifiers, PSNR for super-resolution) and the
image-quality measures PSNR and SSIM on the luma (Y) channel.

A `Metric` scores one batch per sample, so the training loop and `anywidth.measure.evaluate`
stay generic: a classifier passes `ACCURACY` (the default), a super-resolution model passes
``psnr_metric(scale)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = ["ACCURACY", "Metric", "psnr", "psnr_metric", "rgb_to_y", "ssim"]

PerSample = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# ITU-R BT.601 luma of [0, 1] RGB, on the [16, 235] scale of 8-bit video (MATLAB's rgb2ycbcr),
# as super-resolution papers report it.
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


@dataclass(frozen=True)
class Metric:
    """A per-sample score and loss of a model's outputs against its targets.

    Attributes:
        name: the key in results and training records (``val_<name>``).
        score: ``score(outputs, targets) -> (B,)``; higher is better.
        loss: ``loss(outputs, targets) -> (B,)``, reported as ``loss`` / ``val_loss``.

    Example:
        >>> ACCURACY.score(torch.tensor([[0.1, 0.9]]), torch.tensor([1]))
        tensor([1.])
    """

    name: str
    score: PerSample
    loss: PerSample


ACCURACY = Metric(
    "accuracy",
    score=lambda logits, labels: (logits.argmax(dim=1) == labels).float(),
    loss=lambda logits, labels: F.cross_entropy(logits, labels, reduction="none"),
)


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """Luma of ``(B, 3, H, W)`` RGB (or ``(B, 1, H, W)`` grey) in [0, 1], on the 8-bit scale.

    Grey images are returned as ``255 * x``; RGB ones as ``16 + 65.481 R + 128.553 G +
    24.966 B`` (in [16, 235]).

    Returns:
        ``(B, 1, H, W)`` float.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 1 or 3, H, W) images, got {tuple(images.shape)}")
    if images.shape[1] == 1:
        return images * 255.0
    weights = images.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return _Y_OFFSET + (images * weights).sum(1, keepdim=True)


def _prepare(outputs: torch.Tensor, targets: torch.Tensor, border: int) -> tuple:
    """Quantise outputs to 8 bits, take Y, crop ``border`` pixels on every side."""
    if outputs.shape != targets.shape:
        raise ValueError(
            f"outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} differ in shape"
        )
    if border < 0 or min(outputs.shape[-2:]) <= 2 * border:
        raise ValueError(f"border {border} leaves nothing of a {tuple(outputs.shape[-2:])} image")
    outputs = torch.round(outputs.detach().float().clamp(0, 1) * 255.0) / 255.0
    y_out, y_ref = rgb_to_y(outputs), rgb_to_y(targets.detach().float())
    if border:
        y_out = y_out[..., border:-border, border:-border]
        y_ref = y_ref[..., border:-border, border:-border]
    return y_out.double(), y_ref.double()


def psnr(outputs: torch.Tensor, targets: torch.Tensor, border: int = 0) -> torch.Tensor:
    """Peak signal-to-noise ratio on Y, per image, in dB (peak 255).

    Outputs are clamped to [0, 1] and rounded to 8 bits first (as a saved image would be);
    ``border`` pixels are cropped on every side (the usual crop is the scale).

    Args:
        outputs: ``(B, C, H, W)`` in [0, 1], C = 1 or 3.
        targets: the same shape, the reference images.
        border: pixels dropped at each edge before comparing.

    Returns:
        ``(B,)`` float64; ``inf`` for identical images.

    Example:
        >>> psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))  # MSE = 25.5²
        tensor([20.], dtype=torch.float64)
    """
    y_out, y_ref = _prepare(outputs, targets, border)
    mse = (y_out - y_ref).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()  # (size,)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' borders: ``(B, 1, H, W) -> (B, 1, H-10, W-10)``."""
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def ssim(outputs: torch.Tensor, targets: torch.Tensor, border: int = 0) -> torch.Tensor:
    """Structural similarity on Y, per image (Wang et al. 2004: 11×11 Gaussian window,
    σ = 1.5, K1 = 0.01, K2 = 0.03, peak 255), after the same quantising and border crop as
    `psnr`.

    Returns:
        ``(B,)`` float64 in [-1, 1]; 1 for identical images.
    """
    y_out, y_ref = _prepare(outputs, targets, border)
    if min(y_out.shape[-2:]) < 11:
        raise ValueError("SSIM needs images of at least 11×11 after the border crop")
    g = _gaussian_window().to(y_out.device)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _blur(y_out, g), _blur(y_ref, g)
    var_x = _blur(y_out * y_out, g) - mu_x**2
    var_y = _blur(y_ref * y_ref, g) - mu_y**2
    cov = _blur(y_out * y_ref, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean(dim=(1, 2, 3))


def psnr_metric(scale: int) -> Metric:
    """The super-resolution metric: Y-channel PSNR with a ``scale``-pixel border crop, and
    the mean absolute error (on [0, 1] RGB) as its loss.

    Example:
        >>> psnr_metric(1).score(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))
        tensor([20.])
    """
    return Metric(
        "psnr",
        score=lambda out, ref: psnr(out, ref, border=scale).float(),
        loss=lambda out, ref: (out - ref).abs().flatten(1).mean(1),
    )
