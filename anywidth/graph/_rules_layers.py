"""Channel rules for torch.nn layers, registered per module type.

A layer rule binds the module's parameters and buffers to slots (they become group
members), records the module's channel counts for `cut` (``ax.module_io``) and, for convs
and linears, their MAC cost for `plan_macs`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from anywidth.graph import _rules_ops as ops
from anywidth.graph._analysis import (
    UNTRACKED,
    Analyzer,
    Call,
    LayerCost,
    NotUnderstood,
    Tracked,
)

__all__ = ["MODULE_RULES", "module_rule"]

ModuleRule = Callable[[Analyzer, Call, nn.Module], Any]
MODULE_RULES: dict[type, ModuleRule] = {}


def module_rule(*types: type) -> Callable[[ModuleRule], ModuleRule]:
    """Register a rule for these module types (subclasses included)."""

    def register(fn: ModuleRule) -> ModuleRule:
        for t in types:
            MODULE_RULES[t] = fn
        return fn

    return register


def _x(call: Call) -> tuple[Any, torch.Tensor]:
    return call.node.args[0], call.args[0]


def _tie_blocks(ax: Analyzer, slot: int, parts: int) -> int:
    """Cut a slot into ``parts`` equal runs and tie them: channel k of every run is one."""
    runs = ax.table.split_equal(slot, parts)
    for run in runs[1:]:
        ax.table.union(runs[0], run)
    return runs[0]


@module_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def _conv(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    arg, x = _x(call)
    name, weight = call.node.target, f"{call.node.target}.weight"
    dim = x.dim() - len(m.kernel_size) - 1
    in_slot, in_block = ax.consume(call, arg, x, dim)
    groups = m.groups
    if groups == 1:
        out, out_block = ax.output_slot(weight, 0, m.out_channels, f"{name}:out"), 1
        ax.bind(weight, 1, in_slot, in_block)
        factors = [(out, 1), (in_slot, in_block)]
    elif groups == m.in_channels:  # depthwise: output channel i*mult + j reads input i
        out, out_block = in_slot, in_block * (m.out_channels // m.in_channels)
        factors = [(out, out_block)]
    else:
        if (m.in_channels // groups) % in_block:
            raise NotUnderstood("a grouped conv reads flattened channels across its groups")
        ax.bind(weight, 1, _tie_blocks(ax, in_slot, groups), in_block)
        out, out_block = ax.output_slot(weight, 0, m.out_channels, f"{name}:out"), 1
        _tie_blocks(ax, out, groups)
        factors = [(out, 1), (in_slot, in_block)]
    ax.bind(weight, 0, out, out_block)
    if m.bias is not None:
        ax.bind(f"{name}.bias", 0, out, out_block)
    ax.module_io[name] = {"in": (in_slot, in_block), "out": (out, out_block)}
    y = call.result
    coef = math.prod(y.shape[:dim]) * math.prod(y.shape[dim + 1 :]) * math.prod(m.kernel_size)
    ax.layers.append(LayerCost(coef, factors, groups if len(factors) == 2 else 1))
    return Tracked(dim, out, out_block)


@module_rule(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
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
    ax.module_io[name] = {"in": (in_slot, in_block), "out": (out, 1)}
    coef = math.prod(x.shape[:dim]) * math.prod(x.shape[dim + 1 :]) * math.prod(m.kernel_size)
    ax.layers.append(LayerCost(coef, [(in_slot, in_block), (out, 1)]))
    return Tracked(dim, out)


@module_rule(nn.Linear)
def _linear(ax: Analyzer, call: Call, m: nn.Linear) -> Any:
    arg, x = _x(call)
    name, weight = call.node.target, f"{call.node.target}.weight"
    in_slot, in_block = ax.consume(call, arg, x, x.dim() - 1)
    out = ax.output_slot(weight, 0, m.out_features, f"{name}:out")
    ax.bind(weight, 0, out)
    ax.bind(weight, 1, in_slot, in_block)
    if m.bias is not None:
        ax.bind(f"{name}.bias", 0, out)
    ax.module_io[name] = {"in": (in_slot, in_block), "out": (out, 1)}
    ax.layers.append(LayerCost(math.prod(x.shape[:-1]), [(out, 1), (in_slot, in_block)]))
    return Tracked(x.dim() - 1, out)


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
    ax.module_io[call.node.target] = {"features": (slot, block)}
    return Tracked(dim, slot, block)


@module_rule(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
def _batch_norm(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    return _per_channel(ax, call, m, 1)


_SPATIAL = {
    nn.InstanceNorm1d: 1,
    nn.InstanceNorm2d: 2,
    nn.InstanceNorm3d: 3,
}


@module_rule(*_SPATIAL)
def _instance_norm(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    spatial = next(v for k, v in _SPATIAL.items() if isinstance(m, k))
    return _per_channel(ax, call, m, call.args[0].dim() - spatial - 1)


@module_rule(nn.GroupNorm)
def _group_norm(ax: Analyzer, call: Call, m: nn.GroupNorm) -> Any:
    # Channel k of every normalisation group is tied: a cut keeps the same channels in
    # each group, so the groups stay equal in size and keep their original members.
    return _per_channel(ax, call, m, 1, groups=m.num_groups)


@module_rule(nn.PReLU)
def _prelu(ax: Analyzer, call: Call, m: nn.PReLU) -> Any:
    if m.num_parameters == 1:
        return ops.elementwise(ax, call)
    return _per_channel(ax, call, m, 1)


@module_rule(nn.LayerNorm)
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
    ax.module_io[call.node.target] = {"shape": (pos, info.slot, info.block)}
    return info


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


@module_rule(*_ELEMENTWISE_MODULES)
def _elementwise(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    return ops.elementwise(ax, call)


@module_rule(nn.Softmax, nn.LogSoftmax, nn.Softmin)
def _softmax(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    return ops.softmax(ax, call, dim=m.dim)


@module_rule(nn.Flatten)
def _flatten(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    return ops.reshape(ax, call)


@module_rule(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def _upsample(ax: Analyzer, call: Call, m: nn.Module) -> Any:
    return ops.spatial(ax, call)


def _register_by_dims(prefixes: tuple[str, ...], rule_for_dims) -> None:
    for prefix in prefixes:
        for d in (1, 2, 3):
            cls = getattr(nn, f"{prefix}{d}d", None)
            if cls is not None:
                module_rule(cls)(rule_for_dims(d))


def _pool_rule(d: int) -> ModuleRule:
    pooled = ops.pool(d)
    return lambda ax, call, m: pooled(ax, call)


def _pad_rule(d: int) -> ModuleRule:
    return lambda ax, call, m: ops.pad(ax, call, count=d)


_register_by_dims(
    ("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "LPPool"), _pool_rule
)
_register_by_dims(
    ("ZeroPad", "ConstantPad", "ReflectionPad", "ReplicationPad", "CircularPad"), _pad_rule
)
