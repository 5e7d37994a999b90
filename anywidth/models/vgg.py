"""VGG with batch norm for small images (Simonyan & Zisserman 2015, CIFAR variant).

Configurations A (VGG-11) and D (VGG-16): 3x3 conv + BN + ReLU layers separated by five
2x2 max-pools, then a single ``Linear(512, num_classes)``. Two choices make any input
size work, including 8x8 digits:

- the max-pools use ``ceil_mode=True``, so a 1x1 map stays 1x1 instead of vanishing;
- an adaptive average pool to 1x1 precedes the flatten, so the classifier always sees a
  512-vector. At 32x32 the map is already 1x1 there and the pool changes nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from anywidth.models._common import init_weights_
from anywidth.models._registry import register_model

__all__ = ["VGG", "vgg11", "vgg16"]

# Output channels of each conv; "M" is a 2x2 max-pool.
_CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG feature extractor with batch norm and a single linear classifier.

    Args:
        config: channel list, integers for 3x3 convs and ``"M"`` for max-pools.
        num_classes: classifier outputs.
        in_channels: input image channels.
    """

    def __init__(
        self, config: list[int | str], num_classes: int = 10, in_channels: int = 3
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [
                    nn.Conv2d(channels, int(item), 3, 1, 1, bias=False),
                    nn.BatchNorm2d(int(item)),
                    nn.ReLU(),
                ]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 512, ceil(H/32), ceil(W/32))
        x = self.avgpool(x).flatten(1)  # (B, 512)
        return self.classifier(x)


@register_model
def vgg11(num_classes: int = 10, in_channels: int = 3) -> VGG:
    """VGG-11 (configuration A) with batch norm, for small images.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised `VGG`.

    Example:
        >>> model = vgg11(num_classes=10, in_channels=1)
        >>> model(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    return VGG(_CONFIGS["A"], num_classes, in_channels)


@register_model
def vgg16(num_classes: int = 10, in_channels: int = 3) -> VGG:
    """VGG-16 (configuration D) with batch norm; about 14.7M params, 313M MACs at 32x32.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised `VGG`.

    Example:
        >>> model = vgg16(num_classes=10)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return VGG(_CONFIGS["D"], num_classes, in_channels)
