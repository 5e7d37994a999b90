"""Channel rules for functional layers: ``F.conv2d``, ``F.linear``, ``F.batch_norm``...

A module may hold a layer's tensors and call the functional form in its own ``forward``:
timm's ``BatchNormAct2d`` (a BatchNorm2d subclass calling ``F.batch_norm`` on its own
weight, bias and running statistics, then an activation), ``ScaledStdConv2d`` (a
weight-standardised ``F.conv2d``), ``GroupNormAct``, ``LayerNorm2d`` (a permute around
``F.layer_norm``), or a user's own class. Such a call couples, is cut and costed like the
module form. Its tensors are followed back to the module's parameters and buffers
(`anywidth.graph._weights.sources`), and the module that owns the layer's main tensor is
recorded as a `FunctionalLayer`, so `cut` updates that module's attributes where it has
them (``in_channels``, ``out_channels``, ``groups``, ``num_features``, ``num_channels``,
``normalized_shape``, ``in_features``, ``embedding_dim``): the smaller model is still the
user's class. A count written into the call (``normalized_shape``, a depthwise ``groups``)
is rewritten in the graph as well.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from anywidth.graph._analysis import (
    UNTRACKED,
    Analyzer,
    Call,
    Channels,
    FunctionalLayer,
    LayerCost,
    LayerIO,
    NotUnderstood,
    Tracked,
)
from anywidth.graph._rewrites import CountArgRewrite, ShapeArgRewrite
from anywidth.graph._weights import Sources, bind_sources, parameter_only, sources

__all__ = ["BATCH_NORMS", "FUNCTIONAL_RULES", "conv", "per_channel"]

Length = Callable[[Channels], int]


def _tensor_arg(call: Call, index: int, name: str) -> Any:
    """The graph node of a tensor argument, or None when it is absent or None."""
    node, value = call.pick(index, name)
    return node if isinstance(value, torch.Tensor) else None


def _record(ax: Analyzer, kind: type, parts: list[Sources], io: LayerIO, resize) -> None:
    """Record the layer for `cut` to resize the module that owns its first tensor.

    Only a module that is this layer: an instance of the torch layer ``kind`` (timm's
    ``BatchNormAct2d`` is a BatchNorm2d) or one whose own tensors are all read by this call
    (a user's norm); a container holding several layers' tensors keeps its attributes.
    """
    names = {piece.name for found in parts for piece in found.members}
    if not names:
        return
    owner = parts[0].members[0].name.rpartition(".")[0]
    module = ax.gm.get_submodule(owner)
    prefix = f"{owner}." if owner else ""
    own = {prefix + n for n, _ in module.named_parameters(recurse=False)}
    own |= {prefix + n for n, _ in module.named_buffers(recurse=False)}
    if isinstance(module, kind) or own <= names:
        ax.functional.append(FunctionalLayer(owner, io, resize))


def _set(module: nn.Module, attr: str, value: Any) -> None:
    """Update an attribute the owner has (a user's class may have none)."""
    if isinstance(getattr(module, attr, None), int):
        setattr(module, attr, value)


def _input(ax: Analyzer, call: Call) -> tuple[Any, torch.Tensor]:
    node, x = call.pick(0, "input")
    if not isinstance(x, torch.Tensor):
        raise NotUnderstood("its input is not a tensor")
    return node, x


# -- convolution -----------------------------------------------------------------------


def _conv_resize(m: nn.Module, io: LayerIO, length: Length, depthwise: bool) -> None:
    _set(m, "in_channels", length(io.inputs))
    _set(m, "out_channels", length(io.outputs))
    if depthwise:
        _set(m, "groups", length(io.inputs))


def conv(ax: Analyzer, call: Call) -> Any:
    """``F.conv1d/2d/3d(x, weight, bias, stride, padding, dilation, groups)``."""
    x_node, x = _input(ax, call)
    w_node, w = call.pick(1, "weight")
    if not isinstance(w, torch.Tensor):
        raise NotUnderstood("a convolution without a weight tensor")
    groups_arg, groups = call.pick(6, "groups", 1)
    dim = x.dim() - (w.dim() - 2) - 1
    in_slot, in_block = ax.consume(call, x_node, x, dim)
    n_in, n_out = int(x.shape[dim]), int(w.shape[0])
    depthwise = 1 < groups == n_in
    out_block = in_block * (n_out // n_in) if depthwise else 1
    found = sources(ax, w_node, 0, out_block, "weight")
    if not found.members:
        raise NotUnderstood("its weight holds no parameter")
    first = found.members[0]
    layer = first.name.rpartition(".")[0] or first.name  # a model's own tensor: its name
    bias = sources(ax, _tensor_arg(call, 2, "bias"), 0, out_block, "bias")
    inputs = Sources()
    if depthwise:  # output channel i*mult + j reads input channel i
        out = in_slot
        if isinstance(groups_arg, int):
            ax.rewrites.append(CountArgRewrite(call.node.name, 6, "groups", in_slot, in_block))
    else:
        if (n_in // groups) % in_block:
            raise NotUnderstood("a grouped conv reads flattened channels across its groups")
        inputs = sources(ax, w_node, 1, in_block, "weight")
        bind_sources(ax, inputs, _tie_blocks(ax, in_slot, groups) if groups > 1 else in_slot)
        out = ax.output_slot(first.name, first.dim, n_out, f"{layer}:out")
        if groups > 1:
            _tie_blocks(ax, out, groups)
    bind_sources(ax, found, out)
    bind_sources(ax, bias, out)
    io = LayerIO(Channels(in_slot, in_block), Channels(out, out_block))
    resize = functools.partial(_conv_resize, depthwise=depthwise)
    _record(ax, nn.modules.conv._ConvNd, [found, inputs, bias], io, resize)
    y = call.result  # (B, C_out, *spatial)
    coef = math.prod(y.shape[:dim]) * math.prod(y.shape[dim + 1 :]) * math.prod(w.shape[2:])
    factors = (io.outputs,) if depthwise else (io.outputs, io.inputs)
    ax.layers.append(LayerCost(coef, factors, 1 if depthwise else groups))
    ax.layer_names.append(layer)
    return Tracked(dim, out, out_block)


def _tie_blocks(ax: Analyzer, slot: int, parts: int) -> int:
    """Cut a slot into ``parts`` equal runs and tie them: channel k of every run is one."""
    runs = ax.table.split_equal(slot, parts)
    for run in runs[1:]:
        ax.table.union(runs[0], run)
    return runs[0]


# -- linear and embedding --------------------------------------------------------------


def _linear_resize(m: nn.Module, io: LayerIO, length: Length) -> None:
    _set(m, "in_features", length(io.inputs))
    _set(m, "out_features", length(io.outputs))


def linear(ax: Analyzer, call: Call) -> Any:
    """``F.linear(x, weight, bias)``: weight (out, in), features last."""
    x_node, x = _input(ax, call)
    w_node = _tensor_arg(call, 1, "weight")
    if w_node is None:
        raise NotUnderstood("a linear without a weight tensor")
    in_slot, in_block = ax.consume(call, x_node, x, x.dim() - 1)
    found = sources(ax, w_node, 0, 1, "weight")
    if not found.members:
        raise NotUnderstood("its weight holds no parameter")
    first = found.members[0]
    layer = first.name.rpartition(".")[0] or first.name  # a model's own tensor: its name
    out = ax.output_slot(first.name, first.dim, int(call.result.shape[-1]), f"{layer}:out")
    inputs = sources(ax, w_node, 1, in_block, "weight")
    bias = sources(ax, _tensor_arg(call, 2, "bias"), 0, 1, "bias")
    bind_sources(ax, found, out)
    bind_sources(ax, inputs, in_slot)
    bind_sources(ax, bias, out)
    io = LayerIO(Channels(in_slot, in_block), Channels(out))
    _record(ax, nn.Linear, [found, inputs, bias], io, _linear_resize)
    ax.layers.append(LayerCost(math.prod(x.shape[:-1]), (io.outputs, io.inputs)))
    ax.layer_names.append(layer)
    return Tracked(call.result.dim() - 1, out)


def _embedding_resize(m: nn.Module, io: LayerIO, length: Length) -> None:
    _set(m, "embedding_dim", length(io.outputs))


def embedding(ax: Analyzer, call: Call) -> Any:
    """``F.embedding(ids, weight)``: the table's dimension 1 holds the output features."""
    ids_node, _ = call.pick(0, "input")
    ax.warn(call, ax.fix_info(ax.info(ids_node)), "its indices carry channels")
    found = sources(ax, _tensor_arg(call, 1, "weight"), 1, 1, "weight")
    if not found.members:
        raise NotUnderstood("an embedding without a table")
    first = found.members[0]
    layer = first.name.rpartition(".")[0] or first.name  # a model's own tensor: its name
    out = ax.output_slot(first.name, first.dim, int(call.result.shape[-1]), f"{layer}:out")
    bind_sources(ax, found, out)
    _record(ax, nn.Embedding, [found], LayerIO(Channels(out), Channels(out)), _embedding_resize)
    return Tracked(call.result.dim() - 1, out)


# -- normalisation ---------------------------------------------------------------------


def _norm_input(ax: Analyzer, call: Call) -> tuple[Any, torch.Tensor] | None:
    """The input of a norm, or None when it is computed from parameters alone (a weight
    being standardised: the layer that reads the result follows it back)."""
    node, x = _input(ax, call)
    if isinstance(node, fx.Node) and not isinstance(ax.info(node), Tracked):
        if parameter_only(node):
            return None
    return node, x


def per_channel(
    ax: Analyzer, call: Call, kind: type, tensors: tuple[tuple[int, str], ...], groups: int = 1
) -> Any:
    """A norm with one value per channel along dimension 1 (batch, instance, group), of
    the torch class ``kind``."""
    given = _norm_input(ax, call)
    if given is None:
        return UNTRACKED
    node, x = given
    if x.dim() < 2:
        raise NotUnderstood("the input has no channel dimension")
    slot, block = ax.consume(call, node, x, 1)
    if groups > 1:
        if (x.shape[1] // groups) % block:
            raise NotUnderstood("a normalisation group cuts through a flattened channel")
        _tie_blocks(ax, slot, groups)
    found = Sources()
    for index, name in tensors:
        part = sources(ax, _tensor_arg(call, index, name), 0, block, name)
        found.members += part.members
        found.reshapes += part.reshapes
    bind_sources(ax, found, slot)
    channels = Channels(slot, block)
    _record(ax, kind, [found], LayerIO(channels, channels), _NORM_RESIZES[kind])
    return Tracked(1, slot, block)


def _set_length(attr: str):
    def resize(m: nn.Module, io: LayerIO, length: Length) -> None:
        _set(m, attr, length(io.inputs))

    return resize


BATCH_NORMS = nn.modules.batchnorm._NormBase  # batch and instance norms
_NORM_RESIZES = {
    BATCH_NORMS: _set_length("num_features"),
    nn.GroupNorm: _set_length("num_channels"),
}


_STATS = ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias"))


def batch_norm(ax: Analyzer, call: Call) -> Any:
    """``F.batch_norm`` / ``F.instance_norm(x, running_mean, running_var, weight, bias...)``."""
    return per_channel(ax, call, BATCH_NORMS, _STATS)


def group_norm(ax: Analyzer, call: Call) -> Any:
    """``F.group_norm(x, num_groups, weight, bias, eps)``: channel k of every group is tied,
    so a cut keeps the same channels in each and ``num_groups`` stays valid."""
    _, groups = call.pick(1, "num_groups")
    tensors = ((2, "weight"), (3, "bias"))
    return per_channel(ax, call, nn.GroupNorm, tensors, groups=groups)


def _layer_norm_resize(m: nn.Module, io: LayerIO, length: Length, position: int) -> None:
    shape = getattr(m, "normalized_shape", None)
    if isinstance(shape, (tuple, list)) and position < len(shape):
        new = list(shape)
        new[position] = length(io.inputs)
        m.normalized_shape = tuple(new)


def layer_norm(ax: Analyzer, call: Call) -> Any:
    """``F.layer_norm(x, normalized_shape, weight, bias, eps)``: channels normalised over
    are one of the last dimensions; ``normalized_shape`` is rewritten when written out."""
    given = _norm_input(ax, call)
    if given is None:
        return UNTRACKED
    node, x = given
    info = ax.info(node)
    shape_arg, shape = call.pick(1, "normalized_shape")
    if not isinstance(info, Tracked):
        return UNTRACKED
    first = x.dim() - len(shape)
    if info.dim < first:  # channels are not normalised over: each is handled alone
        return info
    pos = info.dim - first
    written = isinstance(shape_arg, (list, tuple)) and isinstance(shape_arg[pos], int)
    if written and len(call.node.args) < 2:
        raise NotUnderstood("its normalized_shape is a keyword argument")
    found = Sources()
    for index, name in ((2, "weight"), (3, "bias")):
        part = sources(ax, _tensor_arg(call, index, name), pos, info.block, name)
        found.members += part.members
        found.reshapes += part.reshapes
    bind_sources(ax, found, info.slot)
    if written:
        ax.rewrites.append(ShapeArgRewrite(call.node.name, 1, pos, info.slot, info.block))
    channels = Channels(info.slot, info.block)
    resize = functools.partial(_layer_norm_resize, position=pos)
    _record(ax, nn.LayerNorm, [found], LayerIO(channels, channels, position=pos), resize)
    return info


FUNCTIONAL_RULES: dict[Any, Callable[[Analyzer, Call], Any]] = {
    F.conv1d: conv,
    F.conv2d: conv,
    F.conv3d: conv,
    F.linear: linear,
    F.embedding: embedding,
    F.batch_norm: batch_norm,
    F.instance_norm: batch_norm,
    F.group_norm: group_norm,
    F.layer_norm: layer_norm,
}
