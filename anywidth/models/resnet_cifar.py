"""CIFAR ResNets (He et al., 2016, section 4.2): ResNet-20/32/56/110.

A 3x3 stem to 16 channels, then three stages of ``n`` basic blocks with 16, 32 and 64
channels (stride 2 at the start of stages 2 and 3), global average pooling and a linear
classifier; depth = 6n + 2. Where a block changes shape the shortcut is a 1x1 conv + BN
projection (the paper's option B).
"""

from __future__ import annotations

import torch
from torch import nn

from anywidth.models._common import init_weights_
from anywidth.models._registry import register_model

__all__ = [
    "BasicBlock",
    "CifarResNet",
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet110",
]


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with a residual connection.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the first conv (and of the projection, if any).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu2(out)


class CifarResNet(nn.Module):
    """ResNet for small (32x32) images, depth ``6 * blocks_per_stage + 2``.

    Args:
        blocks_per_stage: ``n``, the number of basic blocks in each of the three stages.
        num_classes: classifier outputs.
        in_channels: input image channels.
    """

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(16, 16, blocks_per_stage, stride=1)
        self.layer2 = self._stage(16, 32, blocks_per_stage, stride=2)
        self.layer3 = self._stage(32, 64, blocks_per_stage, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        init_weights_(self)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_channels, out_channels, stride)]
        layers += [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 16, H, W)
        x = self.layer3(self.layer2(self.layer1(x)))  # (B, 64, H/4, W/4)
        x = self.avgpool(x).flatten(1)  # (B, 64)
        return self.fc(x)


@register_model
def resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-20 for CIFAR: 3 blocks per stage, about 0.27M params and 41M MACs at 32x32.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised `CifarResNet`.

    Example:
        >>> model = resnet20(num_classes=10)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return CifarResNet(3, num_classes, in_channels)


@register_model
def resnet32(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-32 for CIFAR: 5 blocks per stage, about 0.46M params and 69M MACs at 32x32.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised `CifarResNet`.

    Example:
        >>> model = resnet32(num_classes=100)
    """
    return CifarResNet(5, num_classes, in_channels)


@register_model
def resnet56(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-56 for CIFAR: 9 blocks per stage, about 0.85M params and 126M MACs at 32x32.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised `CifarResNet`.

    Example:
        >>> model = resnet56(num_classes=10)
    """
    return CifarResNet(9, num_classes, in_channels)


@register_model
def resnet110(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-110 for CIFAR: 18 blocks per stage, about 1.7M params and 253M MACs at 32x32.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised `CifarResNet`.

    Example:
        >>> model = resnet110(num_classes=10)
    """
    return CifarResNet(18, num_classes, in_channels)
