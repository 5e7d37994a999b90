"""Small hand-written models, one per op family the grouping must handle."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Concat(nn.Module):
    """Two branches concatenated along channels, read by one conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 3, 1)
        self.b = nn.Conv2d(4, 5, 1)
        self.mix = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = torch.cat([self.a(x), self.b(x)], dim=1)  # (B, 8, H, W)
        return self.fc(self.mix(x).mean((2, 3)))


class Depthwise(nn.Module):
    """Depthwise conv (channel multiplier ``mult``) between two pointwise convs."""

    def __init__(self, mult: int = 1) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.dw = nn.Conv2d(4, 4 * mult, 3, padding=1, groups=4)
        self.pw = nn.Conv2d(4 * mult, 6, 1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        x = self.dw(F.relu6(self.bn(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(self.pw(x), 1).flatten(1))


class Grouped(nn.Module):
    """A grouped conv (groups=4) between a stem and a pointwise conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.g = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.pw = nn.Conv2d(12, 5, 1)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        x = self.pw(F.silu(self.g(self.stem(x))))
        return self.fc(x.mean((2, 3)))


class SEGate(nn.Module):
    """A squeeze-excite gate: (B, C, 1, 1) sigmoid times (B, C, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(6, 2, 1)
        self.expand = nn.Conv2d(2, 6, 1)
        self.head = nn.Conv2d(6, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.hardswish(self.stem(x))
        gate = torch.sigmoid(self.expand(F.relu(self.reduce(self.pool(x)))))
        x = self.head(x * gate)
        return self.fc(torch.flatten(self.pool(x), 1))


class Projection(nn.Module):
    """A residual block with a 1x1 projection shortcut, then an identity block."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(4, 5, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(5)
        self.conv2 = nn.Conv2d(5, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.proj = nn.Conv2d(4, 6, 1, bias=False)
        self.proj_bn = nn.BatchNorm2d(6)
        self.conv3 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        x = self.stem(x)
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        x = F.relu(y + self.proj_bn(self.proj(x)))
        x = torch.add(x, F.gelu(self.conv3(x)))
        return self.fc(x.mean((2, 3)))


class FlattenHead(nn.Module):
    """conv on a 4x4 map, then one of several ways to flatten into a Linear (block 16)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 16, 3)

    def forward(self, x):
        x = F.relu(self.conv(x))  # (B, 4, 4, 4)
        if self.how == "method":
            x = x.flatten(1)
        elif self.how == "function":
            x = torch.flatten(x, 1)
        elif self.how == "view":
            x = x.view(x.size(0), -1)
        elif self.how == "reshape":
            x = x.reshape(x.shape[0], -1)
        elif self.how == "view_literal":
            x = x.view(-1, 64)
        else:
            x = self.flatten(x)
        return self.fc(x)


class Split(nn.Module):
    """Channel split (sizes, chunk or slicing), separate convs, concatenated again."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.stem = nn.Conv2d(3, 8, 1)
        first = 3 if how == "split" else 4
        self.left = nn.Conv2d(first, 2, 1)
        self.right = nn.Conv2d(8 - first, 3, 1)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        x = self.stem(x)
        if self.how == "split":
            a, b = torch.split(x, [3, 5], dim=1)
        elif self.how == "chunk":
            a, b = x.chunk(2, dim=1)
        else:
            a, b = x[:, :4], x[:, 4:]
        x = torch.cat([self.left(a), self.right(b)], 1)
        return self.fc(x.mean((2, 3)))


class PartialResidual(nn.Module):
    """ReXNet's partial residual: the input is added to the first c_in output channels."""

    def __init__(self) -> None:
        super().__init__()
        self.c_in = 4
        self.stem = nn.Conv2d(3, 4, 1)
        self.conv = nn.Conv2d(4, 7, 3, padding=1)
        self.head = nn.Conv2d(7, 5, 1)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        x = self.stem(x)
        out = self.conv(x)
        out = torch.cat([out[:, : self.c_in] + x, out[:, self.c_in :]], dim=1)
        return self.fc(self.head(out).mean((2, 3)))


class Norms(nn.Module):
    """GroupNorm(2) after a conv, LayerNorm over the features of an MLP head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.gn = nn.GroupNorm(2, 8)
        self.fc1 = nn.Linear(8, 6)
        self.ln = nn.LayerNorm(6)
        self.fc2 = nn.Linear(6, 2)

    def forward(self, x):
        x = F.silu(self.gn(self.conv(x))).mean((2, 3))
        return self.fc2(F.gelu(self.ln(self.fc1(x))))


class Functional(nn.Module):
    """Activations, dropout and element-wise ops in function, method and module form."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 5, 1)
        self.b = nn.Conv2d(3, 5, 1)
        self.c = nn.Conv2d(5, 4, 1)
        self.drop = nn.Dropout(0.5)
        self.ident = nn.Identity()
        self.pool = nn.AvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        a = F.leaky_relu(self.a(x)).relu()
        b = torch.tanh(self.b(x)) * 2.0
        y = torch.sub(a.mul(b), b / 3.0) + F.relu6(a)
        y = self.ident(self.drop(F.dropout(y, 0.1, training=self.training)))
        y = self.c(F.max_pool2d(self.pool(y), 2).contiguous())
        return self.fc(y.amax(dim=(2, 3)))


class ChannelsLast(nn.Module):
    """permute to channels-last, LayerNorm over C, permute back; 1-D and 3-D scale params."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.ln = nn.LayerNorm(8)
        self.gamma = nn.Parameter(torch.rand(8) + 0.5)
        self.beta = nn.Parameter(torch.rand(8, 1, 1))
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        x = self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = x * self.gamma.view(1, -1, 1, 1) + self.beta
        return self.head(x).mean((2, 3))


class Body(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


class DataDependent(nn.Module):
    """Data-dependent control flow inside the submodule ``body``: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.body = Body()

    def forward(self, x):
        return self.body(self.conv(x))


@torch.fx.wrap
def mystery(x: torch.Tensor) -> torch.Tensor:
    """A function anywidth has no rule for (it reverses the channels)."""
    return x.flip(1)


class Unknown(nn.Module):
    """An unknown op in the middle: ``mystery`` (a wrapped function) or ``torch.fft``."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.stem = nn.Conv2d(3, 4, 1)
        self.a = nn.Conv2d(4, 6, 1)
        self.b = nn.Conv2d(6, 5, 1)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        y = self.a(F.relu(self.stem(x)))
        if self.how == "wrapped":
            y = mystery(y)
        else:
            y = y + torch.fft.fft2(y).real
        return self.fc(F.relu(self.b(y)).mean((2, 3)))


class OtherDims(nn.Module):
    """Conv1d, a view with a literal channel count, ConvTranspose2d, Conv3d, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv1d(3, 6, 3, padding=1)
        self.t = nn.ConvTranspose2d(6, 4, 2, stride=2)
        self.c3 = nn.Conv3d(4, 5, 1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        y = self.c(x.flatten(2))  # (B, 6, H*W)
        y = self.t(y.view(y.size(0), 6, 4, 4))  # (B, 4, 8, 8)
        y = self.c3(y.unsqueeze(2))  # (B, 5, 1, 8, 8)
        return self.fc(y.mean((2, 3, 4)))


class SharedDepthwise(nn.Module):
    """CoaT's shared position encoding: one depthwise conv held by two parents."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.pos = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.blocks = nn.ModuleList([nn.Module(), nn.Module()])
        for block in self.blocks:
            block.pos = self.pos
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = x + block.pos(x)
        return self.head(x)
