"""ReXNet (Han et al., CVPR 2021): linearly growing channels, SiLU after expansions.

Sixteen inverted bottlenecks in stages of [1, 2, 2, 3, 3, 5] blocks with first strides
[1, 2, 2, 2, 1, 2]; block ``i`` outputs ``round(w * (16 + i * 180 / 16))`` channels
(`anywidth.analysis.linear_channels`), so
each block widens its input a little and keeps a partial residual: the input is added to
the first ``c_in`` output channels (see ALGORITHMS.md, section 4).

Channel details follow the authors' reference ``rexnetv1.py``, which the published sizes
were measured on: for ``w < 1`` the stem keeps 32 channels and the first block 16 (only
later blocks shrink), the SE reduction width is ``channels // 12`` and the head has
``int(1280 * w)`` channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from anywidth.analysis.channels import linear_channels
from anywidth.models._common import init_weights_
from anywidth.models._registry import register_model

__all__ = [
    "SqueezeExcite",
    "LinearBottleneck",
    "BlockSpec",
    "ReXNet",
    "block_specs_from_channels",
    "rexnet_block_specs",
    "rexnet_090",
    "rexnet_100",
    "rexnet_130",
    "rexnet_150",
    "rexnet_200",
    "rexnet_300",
]

_STAGE_BLOCKS = [1, 2, 2, 3, 3, 5]
_STAGE_STRIDES = [1, 2, 2, 2, 1, 2]
_STAGE_SE = [False, False, True, True, True, True]


class SqueezeExcite(nn.Module):
    """Channel gate: pool -> 1x1 reduce -> BN -> ReLU -> 1x1 expand -> sigmoid -> ``x * gate``.

    Args:
        channels: input (and output) channels.
        reduction: the hidden width is ``channels // reduction``.
    """

    def __init__(self, channels: int, reduction: int = 12) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.bn = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.relu(self.bn(self.reduce(self.pool(x))))  # (B, hidden, 1, 1)
        g = self.gate(self.expand(g))  # (B, C, 1, 1)
        return x * g


class LinearBottleneck(nn.Module):
    """ReXNet block: [1x1 expand + BN + SiLU] -> 3x3 dw + BN -> [SE] -> ReLU6 -> 1x1 + BN.

    With stride 1 and ``in_channels <= out_channels`` the input is added to the first
    ``in_channels`` output channels (a full residual when the widths are equal).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        expansion: depthwise width as a multiple of ``in_channels``; 1 skips the expand conv.
        stride: depthwise stride.
        use_se: whether to gate the depthwise output with `SqueezeExcite`.
        se_reduction: SE hidden width divisor.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: int,
        stride: int,
        use_se: bool,
        se_reduction: int = 12,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        hidden = in_channels * expansion
        if expansion != 1:
            self.expand = nn.Sequential(
                nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU()
            )
        else:
            self.expand = nn.Identity()
        self.dw = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.dw_bn = nn.BatchNorm2d(hidden)
        self.se = SqueezeExcite(hidden, se_reduction) if use_se else nn.Identity()
        self.act = nn.ReLU6()
        self.project = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels > out_channels:
            self.residual = "none"
        elif in_channels == out_channels:
            self.residual = "full"
        else:
            self.residual = "partial"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dw_bn(self.dw(self.expand(x)))  # (B, hidden, H/s, W/s)
        out = self.project_bn(self.project(self.act(self.se(out))))  # (B, C_out, H/s, W/s)
        if self.residual == "partial":
            # Read from the input, not self.in_channels, so a narrower copy runs as it is.
            c = x.shape[1]
            out = torch.cat([out[:, :c] + x, out[:, c:]], dim=1)
        elif self.residual == "full":
            out = out + x
        return out


@dataclass(frozen=True)
class BlockSpec:
    """One `LinearBottleneck`: widths, expansion, stride and whether it has SE."""

    in_channels: int
    out_channels: int
    expansion: int
    stride: int
    use_se: bool


def rexnet_block_specs(width_mult: float) -> tuple[int, list[BlockSpec], int]:
    """Stem width, the 16 block specs and the head width of ReXNet at ``width_mult``.

    Args:
        width_mult: the width multiplier ``w``.

    Returns:
        ``(stem_channels, blocks, head_channels)``.

    Example:
        >>> stem, blocks, head = rexnet_block_specs(1.0)
        >>> [b.out_channels for b in blocks][:4], head
        ([16, 27, 38, 50], 1280)
    """
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")
    # As in the reference: narrow models keep the stem at 32 and the first block at 16.
    stem_base = 32 / width_mult if width_mult < 1.0 else 32.0
    first_base = 16 / width_mult if width_mult < 1.0 else 16.0
    channels = linear_channels(width_mult, blocks=sum(_STAGE_BLOCKS), start=first_base, end=180)
    stem = int(round(stem_base * width_mult))
    return stem, block_specs_from_channels(channels, stem), int(1280 * width_mult)


def block_specs_from_channels(channels: list[int], stem_channels: int) -> list[BlockSpec]:
    """ReXNet's 16 blocks (strides, expansions, SE) with the given output channels.

    The channel configuration is the only thing that differs between the networks that
    `studies.channel_search` compares.

    Args:
        channels: 16 block output widths.
        stem_channels: the stem's width (the first block's input).

    Example:
        >>> [b.stride for b in block_specs_from_channels(list(range(1, 17)), 32)][:4]
        [1, 2, 1, 2]
    """
    depth = sum(_STAGE_BLOCKS)
    if len(channels) != depth or any(int(c) < 1 for c in channels):
        raise ValueError(f"channels must be {depth} widths >= 1, got {list(channels)}")
    stages = list(zip(_STAGE_BLOCKS, _STAGE_STRIDES, _STAGE_SE, strict=True))
    strides = [s if i == 0 else 1 for n, s, _ in stages for i in range(n)]
    ses = [se for n, _, se in stages for _ in range(n)]
    blocks = []
    in_channels = stem_channels
    for i, out_channels in enumerate(channels):
        expansion = 1 if i == 0 else 6
        blocks.append(BlockSpec(in_channels, int(out_channels), expansion, strides[i], ses[i]))
        in_channels = int(out_channels)
    return blocks


class ReXNet(nn.Module):
    """ReXNet-style network built from explicit block specs.

    Args:
        stem_channels: output channels of the 3x3 stem conv.
        blocks: the bottleneck specs, in order.
        head_channels: channels of the final 1x1 conv before pooling.
        num_classes: classifier outputs.
        in_channels: input image channels.
        small_input: stem stride 1 instead of 2, for small images.
        dropout: dropout probability before the classifier.
    """

    def __init__(
        self,
        stem_channels: int,
        blocks: list[BlockSpec],
        head_channels: int,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, 1 if small_input else 2, 1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.SiLU(),
        )
        self.blocks = nn.Sequential(
            *(
                LinearBottleneck(b.in_channels, b.out_channels, b.expansion, b.stride, b.use_se)
                for b in blocks
            )
        )
        last = blocks[-1].out_channels if blocks else stem_channels
        self.head = nn.Sequential(
            nn.Conv2d(last, head_channels, 1, bias=False),
            nn.BatchNorm2d(head_channels),
            nn.SiLU(),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_channels, num_classes)
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))  # (B, C_last, H/32, W/32)
        x = self.avgpool(self.head(x)).flatten(1)  # (B, head)
        return self.classifier(self.dropout(x))


def _rexnet(
    width_mult: float, num_classes: int, in_channels: int, small_input: bool, dropout: float
) -> ReXNet:
    stem, blocks, head = rexnet_block_specs(width_mult)
    return ReXNet(stem, blocks, head, num_classes, in_channels, small_input, dropout)


def _register(name: str, width_mult: float, params: str, macs: str):
    """Register ``name`` as the ReXNet of ``width_mult`` (one factory per published width)."""

    def factory(
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        dropout: float = 0.2,
    ) -> ReXNet:
        return _rexnet(width_mult, num_classes, in_channels, small_input, dropout)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"""ReXNet x{width_mult}: about {params} params and {macs} MACs at 224x224.

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.
        small_input: stem stride 1 instead of 2, for small images (e.g. 32x32).
        dropout: dropout probability before the classifier.

    Returns:
        A freshly initialised `ReXNet`.

    Example:
        >>> model = {name}(num_classes=10, small_input=True)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return register_model(factory)


# Published sizes (Han et al., CVPR 2021); tests assert them within 3%.
rexnet_090 = _register("rexnet_090", 0.9, "4.1M", "0.35G")
rexnet_100 = _register("rexnet_100", 1.0, "4.8M", "0.40G")
rexnet_130 = _register("rexnet_130", 1.3, "7.6M", "0.66G")
rexnet_150 = _register("rexnet_150", 1.5, "9.7M", "0.88G")
rexnet_200 = _register("rexnet_200", 2.0, "16M", "1.5G")
rexnet_300 = _register("rexnet_300", 3.0, "34M", "3.4G")
