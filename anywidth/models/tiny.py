"""Tiny models for fast tests, one per kind of structure channel-grouping code must handle.

Each has fewer than 50k parameters and runs on 8x8 (or 16x16) inputs in milliseconds:

- `tiny_convnet`: plain conv-BN-ReLU chain, pooling, ``Tensor.flatten``, linear.
- `tiny_resnet`: residual adds, with an identity and a projection shortcut.
- `tiny_concat`: ``torch.cat`` of two branches, ``torch.chunk`` and ``torch.split``.
- `tiny_depthwise_se`: depthwise conv, a sigmoid SE gate ``x * gate``, grouped conv.
- `tiny_mlp`: flatten, linear, LayerNorm, GELU, dropout, linear.
- `tiny_rexnet`: three ReXNet blocks with the concatenating partial residual, GroupNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from anywidth.models._common import init_weights_
from anywidth.models._registry import register_model
from anywidth.models.resnet_cifar import BasicBlock
from anywidth.models.rexnet import LinearBottleneck

__all__ = [
    "TinyConvNet",
    "TinyResNet",
    "TinyConcat",
    "TinyDepthwiseSE",
    "TinyMLP",
    "TinyReXNet",
    "tiny_convnet",
    "tiny_resnet",
    "tiny_concat",
    "tiny_depthwise_se",
    "tiny_mlp",
    "tiny_rexnet",
]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class TinyConvNet(nn.Module):
    """conv-BN-ReLU, conv-BN-ReLU, average pool, flatten, linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))  # (B, 8, H, W)
        x = self.relu2(self.bn2(self.conv2(x)))  # (B, 16, H, W)
        return self.fc(self.pool(x).flatten(1))


class TinyResNet(nn.Module):
    """Stem, an identity-shortcut block, a projection-shortcut block (stride 2), linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = _conv_bn_relu(in_channels, 8)
        self.block1 = BasicBlock(8, 8)
        self.block2 = BasicBlock(8, 16, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(self.stem(x)))  # (B, 16, H/2, W/2)
        return self.fc(self.pool(x).flatten(1))


class TinyConcat(nn.Module):
    """Two concatenated branches, then a chunk that is swapped and a split that is rejoined.

    The chunk halves are added back together, so their channels are tied pairwise; the
    split parts go through separate convs before being concatenated again.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = _conv_bn_relu(in_channels, 8)
        self.branch_a = _conv_bn_relu(8, 6)
        self.branch_b = _conv_bn_relu(8, 4, kernel_size=1)
        self.mix = _conv_bn_relu(10, 12)
        self.split_a = _conv_bn_relu(4, 4)
        self.split_b = _conv_bn_relu(8, 6, kernel_size=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(10, num_classes)
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 8, H, W)
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)  # (B, 10, H, W)
        x = self.mix(x)  # (B, 12, H, W)
        halves = torch.chunk(x, 2, dim=1)  # 2 x (B, 6, H, W)
        x = torch.cat([halves[1] + halves[0], halves[0]], dim=1)  # (B, 12, H, W)
        # Split sizes read from the layers that take the parts, so a narrower copy runs as is.
        sizes = [self.split_a[0].weight.shape[1], self.split_b[0].weight.shape[1]]
        parts = torch.split(x, sizes, dim=1)  # (B, 4, H, W), (B, 8, H, W)
        x = torch.cat([self.split_a(parts[0]), self.split_b(parts[1])], dim=1)  # (B, 10, H, W)
        return self.fc(self.pool(x).flatten(1))


class TinyDepthwiseSE(nn.Module):
    """Depthwise conv, a sigmoid squeeze-excite gate, then a grouped (groups=2) conv."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = _conv_bn_relu(in_channels, 16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.dw_bn = nn.BatchNorm2d(16)
        self.dw_relu = nn.ReLU()
        self.se_pool = nn.AdaptiveAvgPool2d(1)
        self.se_reduce = nn.Conv2d(16, 4, 1)
        self.se_relu = nn.ReLU()
        self.se_expand = nn.Conv2d(4, 16, 1)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=2, bias=False)
        self.grouped_bn = nn.BatchNorm2d(16)
        self.grouped_relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 16, H, W)
        x = self.dw_relu(self.dw_bn(self.dw(x)))  # (B, 16, H, W)
        gate = torch.sigmoid(self.se_expand(self.se_relu(self.se_reduce(self.se_pool(x)))))
        x = x * gate  # gate: (B, 16, 1, 1)
        x = self.grouped_relu(self.grouped_bn(self.grouped(x)))  # (B, 16, H, W)
        return self.fc(self.pool(x).flatten(1))


class TinyMLP(nn.Module):
    """flatten -> Linear -> LayerNorm -> GELU -> Dropout -> Linear.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.
        image_size: input height and width (the first linear layer depends on it).
        hidden: hidden width.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, image_size: int = 8, hidden: int = 32
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_channels * image_size * image_size, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(0.1)
        self.fc2 = nn.Linear(hidden, num_classes)
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(self.fc1(self.flatten(x))))  # (B, hidden)
        return self.fc2(self.dropout(x))


class TinyReXNet(nn.Module):
    """Stem with GroupNorm, three ReXNet blocks (two with partial residuals), head, linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1, bias=False),
            nn.GroupNorm(2, 8),
            nn.SiLU(),
        )
        self.blocks = nn.Sequential(
            LinearBottleneck(8, 10, expansion=1, stride=1, use_se=False),
            LinearBottleneck(10, 14, expansion=3, stride=2, use_se=True, se_reduction=6),
            LinearBottleneck(14, 18, expansion=3, stride=1, use_se=True, se_reduction=6),
        )
        self.head = nn.Sequential(nn.Conv2d(18, 32, 1, bias=False), nn.BatchNorm2d(32), nn.SiLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(32, num_classes)
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))  # (B, 18, H/2, W/2)
        x = self.pool(self.head(x)).flatten(1)  # (B, 32)
        return self.fc(self.dropout(x))


@register_model
def tiny_convnet(num_classes: int = 10, in_channels: int = 3) -> TinyConvNet:
    """Two conv-BN-ReLU layers, pool, flatten, linear.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised model with fewer than 50k parameters.

    Example:
        >>> model = tiny_convnet(num_classes=4, in_channels=1)
        >>> model(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 4])
    """
    return TinyConvNet(num_classes, in_channels)


@register_model
def tiny_resnet(num_classes: int = 10, in_channels: int = 3) -> TinyResNet:
    """A stem and two basic blocks (identity and projection shortcuts).

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised model with fewer than 50k parameters.

    Example:
        >>> model = tiny_resnet(num_classes=4, in_channels=1)
        >>> model(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 4])
    """
    return TinyResNet(num_classes, in_channels)


@register_model
def tiny_concat(num_classes: int = 10, in_channels: int = 3) -> TinyConcat:
    """Concatenated branches, a chunk and a split.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised model with fewer than 50k parameters.

    Example:
        >>> model = tiny_concat(num_classes=4, in_channels=1)
        >>> model(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 4])
    """
    return TinyConcat(num_classes, in_channels)


@register_model
def tiny_depthwise_se(num_classes: int = 10, in_channels: int = 3) -> TinyDepthwiseSE:
    """Depthwise conv, a sigmoid SE gate and a groups=2 conv.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised model with fewer than 50k parameters.

    Example:
        >>> model = tiny_depthwise_se(num_classes=4, in_channels=1)
        >>> model(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 4])
    """
    return TinyDepthwiseSE(num_classes, in_channels)


@register_model
def tiny_mlp(
    num_classes: int = 10, in_channels: int = 3, image_size: int = 8, hidden: int = 32
) -> TinyMLP:
    """A two-layer MLP with LayerNorm and GELU on flattened images.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.
        image_size: input height and width.
        hidden: hidden width.

    Returns:
        A freshly initialised model with fewer than 50k parameters.

    Example:
        >>> model = tiny_mlp(num_classes=4, in_channels=1)
        >>> model(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 4])
    """
    return TinyMLP(num_classes, in_channels, image_size, hidden)


@register_model
def tiny_rexnet(num_classes: int = 10, in_channels: int = 3) -> TinyReXNet:
    """Three ReXNet blocks with partial residuals and a GroupNorm stem.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.

    Returns:
        A freshly initialised model with fewer than 50k parameters.

    Example:
        >>> model = tiny_rexnet(num_classes=4, in_channels=1)
        >>> model(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 4])
    """
    return TinyReXNet(num_classes, in_channels)
