"""Super-resolution networks: SRCNN (Dong et al., 2014/2016) and EDSR (Lim et al., 2017).

Both map a low-resolution image ``(B, C, h, w)`` in [0, 1] to ``(B, C, h·s, w·s)`` for a
scale ``s`` of 2, 3 or 4, so one data pipeline and one metric serve both.

- **SRCNN 9-5-5**: bicubic upsampling inside the model, then 9×9 conv to 64 channels, ReLU,
  5×5 conv to 32, ReLU, 5×5 conv back to the image (zero padding keeps the size). The
  paper's network reads the Y channel (``in_channels=1``: 57 184 weights + 97 biases); the
  default reads RGB.
- **EDSR baseline**: 3×3 head conv, residual blocks (conv–ReLU–conv, no BatchNorm, output
  scaled by ``res_scale``), a body conv, the global residual (head output + body output),
  a pixel-shuffle upsampler (one conv to ``4·C`` + shuffle ×2 per factor 2, or one conv to
  ``9·C`` + shuffle ×3) and a tail conv. The paper's baseline is 16 blocks × 64 channels
  (1 369 859 parameters at ×2, 1 517 571 at ×4); the default here (4 × 32) trains on two
  CPU cores. The input is centred by subtracting 0.5 (the paper subtracts the DIV2K RGB
  mean, ≈ 0.45) and the shift is added back at the end.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from anywidth.models._registry import register_model

__all__ = ["SCALES", "SR_MODELS", "SRCNN", "EDSR", "ResBlock", "srcnn", "edsr"]

SCALES = (2, 3, 4)
SR_MODELS = ("srcnn", "edsr")
_SHIFT = 0.5  # EDSR's input centring


def _sr_task(model: nn.Module):
    """Super-resolution at the model's scale, what `anywidth.train.task.task_of` reads."""
    from anywidth.train.task import super_resolution

    return super_resolution(int(model.scale))


def _check_scale(scale: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


class SRCNN(nn.Module):
    """SRCNN: bicubic upsampling, then three convolutions (patch extraction, non-linear
    mapping, reconstruction).

    Args:
        scale: upsampling factor (2, 3 or 4).
        in_channels: image channels (1 for Y, 3 for RGB).
        widths: channels of the first two convs (64, 32 in the paper).
        kernels: kernel sizes of the three convs (9, 5, 5 in the paper's best network).
    """

    task = property(_sr_task)

    def __init__(
        self,
        scale: int = 3,
        in_channels: int = 3,
        widths: tuple[int, int] = (64, 32),
        kernels: tuple[int, int, int] = (9, 5, 5),
    ) -> None:
        super().__init__()
        _check_scale(scale)
        self.scale = scale
        sizes = (in_channels, *widths, in_channels)
        self.conv1, self.conv2, self.conv3 = (
            nn.Conv2d(sizes[i], sizes[i + 1], k, padding=k // 2) for i, k in enumerate(kernels)
        )
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        x = self.relu1(self.conv1(x))  # (B, 64, H, W)
        x = self.relu2(self.conv2(x))  # (B, 32, H, W)
        return self.conv3(x)  # (B, C, H, W)


class ResBlock(nn.Module):
    """EDSR's residual block: ``x + res_scale * conv(relu(conv(x)))``, no BatchNorm."""

    def __init__(self, channels: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


def _upsampler(channels: int, scale: int) -> nn.Sequential:
    """Conv to ``r²·C`` + pixel shuffle ×r, once for ×2/×3 and twice (×2) for ×4."""
    factors = [2, 2] if scale == 4 else [scale]
    layers: list[nn.Module] = []
    for r in factors:
        layers += [nn.Conv2d(channels, r * r * channels, 3, padding=1), nn.PixelShuffle(r)]
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR (the baseline form): head, residual body with a global skip, pixel-shuffle tail.

    Args:
        scale: upsampling factor (2, 3 or 4).
        in_channels: image channels.
        channels: feature channels of the body (64 in the paper's baseline).
        blocks: residual blocks (16 in the paper's baseline).
        res_scale: scale of each block's residual branch (1.0 for the baseline, 0.1 for
            the paper's large model).
    """

    task = property(_sr_task)

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 3,
        channels: int = 32,
        blocks: int = 4,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        _check_scale(scale)
        if channels < 1 or blocks < 0:
            raise ValueError(f"need channels >= 1 and blocks >= 0, got {channels}, {blocks}")
        self.scale = scale
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(*(ResBlock(channels, res_scale) for _ in range(blocks)))
        self.body_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.upsample = _upsampler(channels, scale)
        self.tail = nn.Conv2d(channels, in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x - _SHIFT)  # (B, C, h, w)
        x = x + self.body_conv(self.body(x))  # the global residual
        x = self.upsample(x)  # (B, C, h·s, w·s)
        return self.tail(x) + _SHIFT


@register_model
def srcnn(scale: int = 3, in_channels: int = 3, width: float = 1.0) -> SRCNN:
    """SRCNN 9-5-5 (64/32 channels; ``width`` scales both)."""
    widths = (max(1, round(64 * width)), max(1, round(32 * width)))
    return SRCNN(scale=scale, in_channels=in_channels, widths=widths)


@register_model
def edsr(
    scale: int = 4,
    in_channels: int = 3,
    channels: int = 32,
    blocks: int = 4,
    res_scale: float = 1.0,
) -> EDSR:
    """EDSR baseline; ``channels=64, blocks=16`` is the paper's, the default is 4 × 32."""
    return EDSR(scale, in_channels, channels, blocks, res_scale)
