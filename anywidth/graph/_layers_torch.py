"""The `LayerSpec` of every torch.nn layer anywidth follows: one place per layer type.

Each spec says how the layer's tensors couple to channels (its rule), how `cut` updates its
attributes, its any-width form for `width_agnostic` (only where its forward would freeze a
channel count), and its MAC cost. Layers without parameters that act per element or per
position (activations, pooling, padding...) only need a rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from anywidth.graph import _rules_ops as ops
from anywidth.graph._affine import Form
from anywidth.graph._analysis import (
    UNTRACKED,
    Analyzer,
    Call,
    Channels,
    LayerCost,
    LayerIO,
    NotUnderstood,
    Tracked,
)
from anywidth.graph._dynamic_modules import (
    DepthwiseConv,
    DynamicInstanceNorm,
    DynamicLayerNorm,
    stock_or_error,
)
from anywidth.graph.layers import LayerSpec, register_layer

__all__: list[str] = []

Length = Callable[[Channels], int]
FormOf = Callable[[Channels], Form]


def _register(types: tuple[type, ...], spec: LayerSpec) -> None:
    for t in types:
        register_layer(t, spec, leaf=False)


def _x(call: Call) -> tuple[Any, torch.Tensor]:
    return call.node.args[0], call.args[0]


def _tie_blocks(ax: Analyzer, slot: int, parts: int) -> int:
    """Cut a slot into ``parts`` equal runs and tie them: channel k of every run is one."""
    runs = ax.table.split_equal(slot, parts)
    for run in runs[1:]:
        ax.table.union(runs[0], run)
    return runs[0]


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TRANSPOSES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _is_depthwise(m: nn.Module) -> bool:
    return 1 < m.groups == m.in_channels


def _conv(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    arg, x = _x(call)
    name, weight = call.node.target, f"{call.node.target}.weight"
    dim = x.dim() - len(m.kernel_size) - 1
    in_slot, in_block = ax.consume(call, arg, x, dim)
    groups = m.groups
    if groups == 1:
        out, out_block = ax.output_slot(weight, 0, m.out_channels, f"{name}:out"), 1
        ax.bind(weight, 1, in_slot, in_block)
    elif groups == m.in_channels:  # depthwise: output channel i*mult + j reads input i
        out, out_block = in_slot, in_block * (m.out_channels // m.in_channels)
    else:
        if (m.in_channels // groups) % in_block:
            raise NotUnderstood("a grouped conv reads flattened channels across its groups")
        ax.bind(weight, 1, _tie_blocks(ax, in_slot, groups), in_block)
        out, out_block = ax.output_slot(weight, 0, m.out_channels, f"{name}:out"), 1
        _tie_blocks(ax, out, groups)
    ax.bind(weight, 0, out, out_block)
    if m.bias is not None:
        ax.bind(f"{name}.bias", 0, out, out_block)
    ax.module_io[name] = LayerIO(Channels(in_slot, in_block), Channels(out, out_block))
    return Tracked(dim, out, out_block)


def _conv_cost(m: nn.Module, call: Call, io: LayerIO) -> LayerCost:
    y = call.result  # (B, C_out, *spatial)
    dim = y.dim() - len(m.kernel_size) - 1
    coef = math.prod(y.shape[:dim]) * math.prod(y.shape[dim + 1 :]) * math.prod(m.kernel_size)
    if _is_depthwise(m):
        return LayerCost(coef, (io.outputs,))
    return LayerCost(coef, (io.outputs, io.inputs), m.groups)


def _conv_resize(m: nn.Module, io: LayerIO, length: Length) -> None:
    new_in, new_out = length(io.inputs), length(io.outputs)
    if _is_depthwise(m):  # one group per channel
        m.groups = new_in
    m.in_channels, m.out_channels = new_in, new_out


def _conv_dynamic(m: nn.Module, io: LayerIO, form: FormOf) -> nn.Module | None:
    if not (_is_depthwise(m) and form(io.inputs).coefs):
        return None
    return DepthwiseConv(stock_or_error(m, _CONVS))


_register(_CONVS, LayerSpec(_conv, resize=_conv_resize, dynamic=_conv_dynamic, cost=_conv_cost))


def _conv_transpose(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    if m.groups != 1:
        raise NotUnderstood("grouped transposed convolutions are not followed")
    arg, x = _x(call)
    name, weight = call.node.target, f"{call.node.target}.weight"
    dim = x.dim() - len(m.kernel_size) - 1
    in_slot, in_block = ax.consume(call, arg, x, dim)
    out = ax.output_slot(weight, 1, m.out_channels, f"{name}:out")
    ax.bind(weight, 0, in_slot, in_block)
    ax.bind(weight, 1, out)
    if m.bias is not None:
        ax.bind(f"{name}.bias", 0, out)
    ax.module_io[name] = LayerIO(Channels(in_slot, in_block), Channels(out))
    return Tracked(dim, out)


def _conv_transpose_cost(m: nn.Module, call: Call, io: LayerIO) -> LayerCost:
    x = call.args[0]  # (B, C_in, *spatial): each input position scatters a kernel
    dim = x.dim() - len(m.kernel_size) - 1
    coef = math.prod(x.shape[:dim]) * math.prod(x.shape[dim + 1 :]) * math.prod(m.kernel_size)
    return LayerCost(coef, (io.inputs, io.outputs))


def _conv_transpose_resize(m: nn.Module, io: LayerIO, length: Length) -> None:
    m.in_channels, m.out_channels = length(io.inputs), length(io.outputs)


_register(
    _CONV_TRANSPOSES,
    LayerSpec(_conv_transpose, resize=_conv_transpose_resize, cost=_conv_transpose_cost),
)


def _linear(ax: Analyzer, call: Call, m: nn.Linear) -> Any:
    arg, x = _x(call)
    name, weight = call.node.target, f"{call.node.target}.weight"
    in_slot, in_block = ax.consume(call, arg, x, x.dim() - 1)
    out = ax.output_slot(weight, 0, m.out_features, f"{name}:out")
    ax.bind(weight, 0, out)
    ax.bind(weight, 1, in_slot, in_block)
    if m.bias is not None:
        ax.bind(f"{name}.bias", 0, out)
    ax.module_io[name] = LayerIO(Channels(in_slot, in_block), Channels(out))
    return Tracked(x.dim() - 1, out)


def _linear_cost(m: nn.Module, call: Call, io: LayerIO) -> LayerCost:
    return LayerCost(math.prod(call.args[0].shape[:-1]), (io.outputs, io.inputs))


def _linear_resize(m: nn.Module, io: LayerIO, length: Length) -> None:
    m.in_features, m.out_features = length(io.inputs), length(io.outputs)


_register((nn.Linear,), LayerSpec(_linear, resize=_linear_resize, cost=_linear_cost))


_NORM_TENSORS = ("weight", "bias", "running_mean", "running_var")


def _per_channel(ax: Analyzer, call: Call, m: nn.Module, dim: int, groups: int = 1) -> Any:
    """A layer with one value per channel along ``dim`` (norms, PReLU)."""
    arg, x = _x(call)
    if x.dim() <= dim:
        raise NotUnderstood("the input has no channel dimension")
    slot, block = ax.consume(call, arg, x, dim)
    if groups > 1:
        if (x.shape[dim] // groups) % block:
            raise NotUnderstood("a normalisation group cuts through a flattened channel")
        _tie_blocks(ax, slot, groups)
    for attr in _NORM_TENSORS:
        if isinstance(getattr(m, attr, None), torch.Tensor):
            ax.bind(f"{call.node.target}.{attr}", 0, slot, block)
    channels = Channels(slot, block)
    ax.module_io[call.node.target] = LayerIO(channels, channels)
    return Tracked(dim, slot, block)


def _set_length(attr: str) -> Callable[[nn.Module, LayerIO, Length], None]:
    """A resize that stores the channel length in one attribute (``num_features``...)."""

    def resize(m: nn.Module, io: LayerIO, length: Length) -> None:
        setattr(m, attr, length(io.inputs))

    return resize


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_register(
    _BATCH_NORMS,
    LayerSpec(lambda ax, call, m: _per_channel(ax, call, m, 1), resize=_set_length("num_features")),
)

_INSTANCE_NORMS = {nn.InstanceNorm1d: 1, nn.InstanceNorm2d: 2, nn.InstanceNorm3d: 3}


def _instance_norm(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    spatial = next(v for k, v in _INSTANCE_NORMS.items() if isinstance(m, k))
    return _per_channel(ax, call, m, call.args[0].dim() - spatial - 1)


def _instance_norm_dynamic(m: nn.Module, io: LayerIO, form: FormOf) -> nn.Module | None:
    if not form(io.inputs).coefs:
        return None  # its forward checks num_features: only a changing count needs this
    return DynamicInstanceNorm(stock_or_error(m, tuple(_INSTANCE_NORMS)))


_register(
    tuple(_INSTANCE_NORMS),
    LayerSpec(_instance_norm, resize=_set_length("num_features"), dynamic=_instance_norm_dynamic),
)


def _group_norm(ax: Analyzer, call: Call, m: nn.GroupNorm) -> Any:
    # Channel k of every normalisation group is tied: a cut keeps the same channels in
    # each group, so the groups stay equal in size and keep their original members.
    return _per_channel(ax, call, m, 1, groups=m.num_groups)


_register((nn.GroupNorm,), LayerSpec(_group_norm, resize=_set_length("num_channels")))


def _prelu(ax: Analyzer, call: Call, m: nn.PReLU) -> Any:
    if m.num_parameters == 1:
        return ops.elementwise(ax, call)
    return _per_channel(ax, call, m, 1)


_register((nn.PReLU,), LayerSpec(_prelu, resize=_set_length("num_parameters")))


def _embedding(ax: Analyzer, call: Call, m: nn.Embedding) -> Any:
    """A lookup table: its dimension 1 holds the output features; the ids carry none."""
    ids_node = call.node.args[0]
    ax.warn(call, ax.fix_info(ax.info(ids_node)), "its indices carry channels")
    weight = f"{call.node.target}.weight"
    out = ax.output_slot(weight, 1, m.embedding_dim, f"{call.node.target}:out")
    ax.bind(weight, 1, out)
    ax.module_io[call.node.target] = LayerIO(Channels(out), Channels(out))
    return Tracked(call.result.dim() - 1, out)


_register((nn.Embedding,), LayerSpec(_embedding, resize=_set_length("embedding_dim")))


def _layer_norm(ax: Analyzer, call: Call, m: nn.LayerNorm) -> Any:
    arg, x = _x(call)
    info = ax.info(arg)
    if not isinstance(info, Tracked):
        return UNTRACKED
    first = x.dim() - len(m.normalized_shape)
    if info.dim < first:  # channels are not normalised over: each is handled alone
        return info
    pos = info.dim - first
    for attr in ("weight", "bias"):
        if isinstance(getattr(m, attr, None), torch.Tensor):
            ax.bind(f"{call.node.target}.{attr}", pos, info.slot, info.block)
    channels = Channels(info.slot, info.block)
    ax.module_io[call.node.target] = LayerIO(channels, channels, position=pos)
    return info


def _layer_norm_resize(m: nn.Module, io: LayerIO, length: Length) -> None:
    shape = list(m.normalized_shape)
    shape[io.position] = length(io.inputs)
    m.normalized_shape = tuple(shape)


def _layer_norm_dynamic(m: nn.Module, io: LayerIO, form: FormOf) -> nn.Module | None:
    if not form(io.inputs).coefs:
        return None
    return DynamicLayerNorm(stock_or_error(m, (nn.LayerNorm,)))


_register(
    (nn.LayerNorm,),
    LayerSpec(_layer_norm, resize=_layer_norm_resize, dynamic=_layer_norm_dynamic),
)


_ELEMENTWISE_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.LogSigmoid,
    nn.Threshold,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


def _as(rule: Callable[..., Any]) -> LayerSpec:
    """The spec of a parameter-free layer that acts like the tensor op ``rule``."""
    return LayerSpec(lambda ax, call, m: rule(ax, call))


_register(_ELEMENTWISE_MODULES, _as(ops.elementwise))
_register(
    (nn.Softmax, nn.LogSoftmax, nn.Softmin),
    LayerSpec(lambda ax, call, m: ops.softmax(ax, call, dim=m.dim)),
)
_register((nn.Flatten,), _as(ops.reshape))
_register((nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d), _as(ops.spatial))
_register(
    (nn.PixelShuffle,),
    LayerSpec(lambda ax, call, m: ops.pixel_shuffle(ax, call, factor=m.upscale_factor)),
)
_register(
    (nn.PixelUnshuffle,),
    LayerSpec(lambda ax, call, m: ops.pixel_unshuffle(ax, call, factor=m.downscale_factor)),
)


def _by_dims(prefixes: tuple[str, ...]) -> dict[int, tuple[type, ...]]:
    """The torch.nn classes ``<prefix>{1,2,3}d`` that exist, by dimension count."""
    found: dict[int, tuple[type, ...]] = {}
    for d in (1, 2, 3):
        found[d] = tuple(getattr(nn, f"{p}{d}d") for p in prefixes if getattr(nn, f"{p}{d}d", None))
    return found


for _d, _types in _by_dims(
    ("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "LPPool")
).items():
    _register(_types, _as(ops.pool(_d)))
for _d, _types in _by_dims(
    ("ZeroPad", "ConstantPad", "ReflectionPad", "ReplicationPad", "CircularPad")
).items():
    _register(_types, LayerSpec(lambda ax, call, m, d=_d: ops.pad(ax, call, count=d)))
