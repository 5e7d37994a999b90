"""Random architectures from the supported ops, for property-based tests.

A spec is a stem width, a list of blocks ``(kind, *params)`` and a head; `RandomNet`
builds it. Every activation maps 0 to 0, so the masked reference of `_helpers` applies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

_ACTS = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "f_relu": lambda: F.relu,
    "f_silu": lambda: F.silu,
    "t_tanh": lambda: torch.tanh,
}
HEADS = ["pool_flatten_method", "mean", "flatten_no_pool", "view_no_pool", "reshape", "nn_flatten"]


def _cbr(c_in: int, c_out: int, act: str, k: int = 3, groups: int = 1) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups), nn.BatchNorm2d(c_out)]
    act_fn = _ACTS[act]()
    return nn.Sequential(*layers, act_fn) if isinstance(act_fn, nn.Module) else _Seq(layers, act_fn)


class _Seq(nn.Module):
    """conv, BN, then a functional activation."""

    def __init__(self, layers: list[nn.Module], fn) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.layers(x))


class Block(nn.Module):
    """One block of a random net; ``kind`` picks the op family."""

    def __init__(self, kind: str, c: int, p: tuple) -> None:
        super().__init__()
        self.kind, self.c, self.p = kind, c, p
        if kind == "conv":
            self.a = _cbr(c, p[0], p[1])
        elif kind == "residual":
            self.a, self.b = _cbr(c, c, p[0]), nn.Conv2d(c, c, 3, padding=1)
        elif kind == "projection":
            self.a, self.b = _cbr(c, p[0], "relu"), nn.Conv2d(c, p[0], 1, bias=False)
        elif kind == "depthwise":
            self.a = _cbr(c, c * p[0], p[1], groups=c)
        elif kind == "grouped":
            self.a = _cbr(c, p[0], "relu", k=1, groups=p[1])
        elif kind == "se":
            self.a, self.b = nn.Conv2d(c, p[0], 1), nn.Conv2d(p[0], c, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)
        elif kind == "concat":
            self.a, self.b = _cbr(c, p[0], "relu", k=1), _cbr(c, p[1], "silu")
        elif kind == "dense":
            self.b = _cbr(c, p[1], "silu")
        elif kind == "partial":
            self.a = _cbr(c, c + p[0], "relu")
        elif kind == "split":
            self.a, self.b = _cbr(p[0], p[1], "relu", k=1), _cbr(c - p[0], p[2], "gelu", k=1)
        elif kind == "shuffle":  # an SR upsampler: conv to C·r², pixel shuffle, back to 4×4
            self.a = nn.Conv2d(c, p[0] * 4, 3, padding=1)
            self.shuffle, self.unshuffle = nn.PixelShuffle(2), nn.PixelUnshuffle(2)

    def forward(self, x):
        kind, p = self.kind, self.p
        if kind in ("conv", "depthwise", "grouped"):
            return self.a(x)
        if kind == "residual":
            return F.relu(self.b(self.a(x)) + x)
        if kind == "projection":
            return torch.add(self.a(x), self.b(x))
        if kind == "se":
            pooled = (
                x.mean((2, 3), keepdim=True)
                if p[1] == "mean"
                else F.adaptive_avg_pool2d(x, 1)
                if p[1] == "function"
                else self.pool(x)
            )
            return x * torch.sigmoid(self.b(F.relu(self.a(pooled))))
        if kind == "concat":
            return torch.cat([self.a(x), self.b(x)], dim=1)
        if kind == "dense":
            return torch.cat([x, self.b(x)], 1)
        if kind == "partial":
            out = self.a(x)
            return torch.cat([out[:, : self.c] + x, out[:, self.c :]], dim=1)
        if kind == "split":
            if p[3] == "split":
                left, right = torch.split(x, [p[0], self.c - p[0]], dim=1)
            elif p[3] == "chunk":
                left, right = x.chunk(2, dim=1)
            else:
                left, right = x[:, : p[0]], x[:, p[0] :]
            return torch.cat([self.a(left), self.b(right)], dim=1)
        if kind == "shuffle":
            if p[1] == "module_unshuffle":  # (B, 4·p0, 4, 4): blocks of 4 downstream
                return self.unshuffle(F.relu(self.shuffle(self.a(x))))
            return F.avg_pool2d(F.relu(F.pixel_shuffle(self.a(x), 2)), 2)  # (B, p0, 4, 4)
        return x.mul(0.5) + F.relu(x) * 1.5 - torch.tanh(x) / 2.0  # "elementwise"


def out_channels(kind: str, c: int, p: tuple) -> int:
    return {
        "conv": lambda: p[0],
        "projection": lambda: p[0],
        "depthwise": lambda: c * p[0],
        "grouped": lambda: p[0],
        "concat": lambda: p[0] + p[1],
        "dense": lambda: c + p[1],
        "partial": lambda: c + p[0],
        "split": lambda: p[1] + p[2],
        "shuffle": lambda: p[0] * (4 if p[1] == "module_unshuffle" else 1),
    }.get(kind, lambda: c)()


class RandomNet(nn.Module):
    def __init__(self, stem: int, blocks: list[tuple], head: str, classes: int = 3) -> None:
        super().__init__()
        self.stem = _cbr(3, stem, "relu")
        layers, c = [], stem
        for kind, *params in blocks:
            layers.append(Block(kind, c, tuple(params)))
            c = out_channels(kind, c, tuple(params))
        self.blocks = nn.Sequential(*layers)
        self.head = head
        self.flatten = nn.Flatten()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c * (16 if "no_pool" in head else 1), classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))  # (B, C, 4, 4)
        if self.head == "pool_flatten_method":
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        elif self.head == "mean":
            x = x.mean((2, 3))
        elif self.head == "flatten_no_pool":
            x = torch.flatten(x, 1)
        elif self.head == "view_no_pool":
            x = x.view(x.size(0), -1)
        elif self.head == "reshape":
            x = self.pool(x).reshape(x.shape[0], -1)
        else:
            x = self.flatten(self.pool(x))
        return self.fc(x)


@st.composite
def block(draw, c: int) -> tuple:
    kinds = ["conv", "residual", "projection", "depthwise", "se", "concat", "dense", "partial"]
    kinds += ["elementwise", "shuffle"]
    divisors = [g for g in range(2, c) if c % g == 0]
    kinds += ["grouped"] if divisors else []
    kinds += ["split"] if c >= 2 else []
    kind = draw(st.sampled_from(kinds))
    width = st.integers(1, 5)
    if kind == "conv":
        return (kind, draw(width), draw(st.sampled_from(sorted(_ACTS))))
    if kind == "residual":
        return (kind, draw(st.sampled_from(sorted(_ACTS))))
    if kind == "projection":
        return (kind, draw(width))
    if kind == "depthwise":
        return (kind, draw(st.integers(1, 2)), draw(st.sampled_from(["relu", "f_silu", "tanh"])))
    if kind == "grouped":
        g = draw(st.sampled_from(divisors))
        return (kind, g * draw(st.integers(1, 2)), g)
    if kind == "se":
        return (
            kind,
            draw(st.integers(1, 3)),
            draw(st.sampled_from(["mean", "function", "module"])),
        )
    if kind in ("concat", "dense"):
        return (kind, draw(width), draw(width))
    if kind == "partial":
        return (kind, draw(st.integers(1, 3)))
    if kind == "shuffle":
        return (kind, draw(st.integers(1, 3)), draw(st.sampled_from(["module_unshuffle", "pool"])))
    if kind == "split":
        how = draw(st.sampled_from(["split", "slice"] + (["chunk"] if c % 2 == 0 else [])))
        first = c // 2 if how == "chunk" else draw(st.integers(1, c - 1))
        return (kind, first, draw(width), draw(width), how)
    return (kind,)


@st.composite
def architectures(draw) -> tuple[int, list[tuple], str]:
    stem = draw(st.integers(2, 6))
    blocks, c = [], stem
    for _ in range(draw(st.integers(1, 4))):
        spec = draw(block(c))
        blocks.append(spec)
        c = min(out_channels(spec[0], c, spec[1:]), 99)
        if c > 12:
            break
    return stem, blocks, draw(st.sampled_from(HEADS))
