"""MobileNetV2 (Sandler et al., CVPR 2018): inverted residuals with linear bottlenecks."""

from __future__ import annotations

import torch
from torch import nn

from anywidth.models._common import init_weights_, make_divisible
from anywidth.models._registry import register_model

__all__ = ["ConvBNReLU6", "InvertedResidual", "MobileNetV2", "mobilenetv2"]

# (expansion t, output channels c, repeats n, first stride s) per stage, from the paper.
_STAGES = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class ConvBNReLU6(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + ReLU6.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size; padding keeps the size at stride 1.
        stride: convolution stride.
        groups: convolution groups (``in_channels`` for a depthwise conv).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(),
        )


class InvertedResidual(nn.Module):
    """1x1 expand + ReLU6 -> 3x3 depthwise + ReLU6 -> 1x1 linear projection (+ identity).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: depthwise stride (1 or 2).
        expansion: hidden width as a multiple of ``in_channels``; 1 skips the expand conv.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expansion))
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNReLU6(in_channels, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.
        width_mult: multiplier on every channel count (rounded to multiples of 8); the
            last conv keeps 1280 channels unless ``width_mult > 1``.
        small_input: stride 1 in the stem and in the second stage, so 32x32 inputs are
            reduced 8x instead of 32x.
        dropout: dropout probability before the classifier.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        small_input: bool = False,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        stem = make_divisible(32 * width_mult)
        self.last_channels = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, stem, stride=1 if small_input else 2)]
        channels = stem
        for stage, (t, c, n, s) in enumerate(_STAGES):
            out_channels = make_divisible(c * width_mult)
            first_stride = 1 if small_input and stage == 1 else s
            for i in range(n):
                stride = first_stride if i == 0 else 1
                layers.append(InvertedResidual(channels, out_channels, stride, t))
                channels = out_channels
        layers.append(ConvBNReLU6(channels, self.last_channels, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(self.last_channels, num_classes)
        )
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 1280, H/32, W/32)
        x = self.avgpool(x).flatten(1)  # (B, 1280)
        return self.classifier(x)


@register_model
def mobilenetv2(
    num_classes: int = 1000,
    in_channels: int = 3,
    width_mult: float = 1.0,
    small_input: bool = False,
    dropout: float = 0.2,
) -> MobileNetV2:
    """MobileNetV2; at ``width_mult=1.0`` about 3.5M params and 300M MACs at 224x224.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.
        width_mult: channel multiplier (channels rounded to multiples of 8).
        small_input: CIFAR-style strides (stem and second stage at stride 1).
        dropout: dropout probability before the classifier.

    Returns:
        A freshly initialised `MobileNetV2`.

    Example:
        >>> model = mobilenetv2(num_classes=10, small_input=True)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return MobileNetV2(num_classes, in_channels, width_mult, small_input, dropout)
