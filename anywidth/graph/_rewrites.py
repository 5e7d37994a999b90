"""Graph constants that hold channel counts, and how to recompute them.

The analysis records one of these for every slice bound, split size or explicit view shape
written as a literal in ``forward`` (``out[:, :16]``, ``split(x, [4, 8])``,
``x.view(b, 64, -1)``). Each says which lengths it needs, as affine `Form`s of the group
sizes, and how to write new values into its node: `cut` writes integers, `width_agnostic`
writes the outputs of nodes that read the sizes from tensor shapes at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx

from anywidth.graph._affine import Form, FormOf

__all__ = [
    "Rewrite",
    "SliceRewrite",
    "SplitRewrite",
    "ReshapeRewrite",
    "ShapeArgRewrite",
    "CountArgRewrite",
]

Value = int | fx.Node


@dataclass(frozen=True)
class SliceRewrite:
    """``x[..., a:b, ...]`` on the channel dimension: ``a`` and ``b`` follow the cut.

    ``position`` is the index item's place in the written index tuple (-1: a bare slice);
    ``before`` are the channels in front of the slice, ``inside`` the sliced ones.
    """

    node: str
    position: int
    before: int | None
    inside: int
    block: int

    def forms(self, form_of: FormOf) -> list[Form]:
        start = form_of(self.before, self.block)
        return [start, start + form_of(self.inside, self.block)]

    def apply(self, node: fx.Node, values: Sequence[Value]) -> None:
        new = slice(values[0], values[1])
        if self.position != -1:
            index = node.args[1]
            new = tuple(new if i == self.position else item for i, item in enumerate(index))
        node.args = (node.args[0], new)


@dataclass(frozen=True)
class SplitRewrite:
    """``split``/``chunk``/``tensor_split`` along the channels: one size per piece."""

    node: str
    pieces: tuple[int, ...]
    block: int
    dim: int

    def forms(self, form_of: FormOf) -> list[Form]:
        return [form_of(piece, self.block) for piece in self.pieces]

    def apply(self, node: fx.Node, values: Sequence[Value]) -> None:
        source = node.args[0] if node.args else next(iter(node.kwargs.values()))
        node.op, node.target = "call_function", torch.split
        node.args = (source, list(values))
        node.kwargs = {"dim": self.dim}


@dataclass(frozen=True)
class ReshapeRewrite:
    """``view``/``reshape`` with an explicit shape whose entry ``dim`` holds the channels.

    The entry is replaced whether it is written out or read from a shape (``reshape(B, N,
    C)`` with ``B, N, C = x.shape``: ``x`` may be another tensor than the one reshaped, e.g.
    an attention block's input, whose width the cut does not change); ``-1`` stays.
    """

    node: str
    dim: int
    slot: int
    block: int

    def forms(self, form_of: FormOf) -> list[Form]:
        return [form_of(self.slot, self.block)]

    def apply(self, node: fx.Node, values: Sequence[Value]) -> None:
        rest = list(node.args[1:])
        packed = len(rest) == 1 and isinstance(rest[0], (tuple, list))
        shape = list(rest[0]) if packed else rest
        if self.dim < len(shape) and shape[self.dim] != -1:
            shape[self.dim] = values[0]
        node.args = (node.args[0], tuple(shape)) if packed else (node.args[0], *shape)


@dataclass(frozen=True)
class ShapeArgRewrite:
    """A shape list written as argument ``arg`` of an op whose entry ``entry`` holds the
    channels, e.g. ``normalized_shape`` of ATen ``layer_norm(x, [384], w, b, eps)``."""

    node: str
    arg: int
    entry: int
    slot: int
    block: int

    def forms(self, form_of: FormOf) -> list[Form]:
        return [form_of(self.slot, self.block)]

    def apply(self, node: fx.Node, values: Sequence[Value]) -> None:
        shape = list(node.args[self.arg])
        shape[self.entry] = values[0]
        args = list(node.args)
        args[self.arg] = shape
        node.args = tuple(args)


@dataclass(frozen=True)
class CountArgRewrite:
    """A channel count written as argument ``arg`` (position, else keyword ``keyword``) of
    an op, e.g. ``groups`` of a depthwise ``F.conv2d(x, w, b, 1, 1, 1, 16)``."""

    node: str
    arg: int
    keyword: str
    slot: int
    block: int

    def forms(self, form_of: FormOf) -> list[Form]:
        return [form_of(self.slot, self.block)]

    def apply(self, node: fx.Node, values: Sequence[Value]) -> None:
        if self.arg < len(node.args):
            args = list(node.args)
            args[self.arg] = values[0]
            node.args = tuple(args)
        else:
            node.kwargs = {**node.kwargs, self.keyword: values[0]}


Rewrite = SliceRewrite | SplitRewrite | ReshapeRewrite | ShapeArgRewrite | CountArgRewrite
