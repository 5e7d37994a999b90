"""Channel rules for ATen ops: the graphs of the `torch.export` front end.

`torch.export` records ``aten.linear(x, weight, bias)``, ``aten.layer_norm(x, [384], w, b,
eps)``, ``aten.embedding(weight, ids)`` and the tensor ops (views, transposes, softmax,
``scaled_dot_product_attention``...) as function calls whose parameters are ``get_attr``
nodes named as in the model (``encoder.layer.0.attention.self.query.weight``). The layers
are followed here from those names, with the same slots, bindings, costs and `LayerIO`
records as the module rules of `anywidth.graph._layers_torch`, so one analysis and one `cut`
serve both front ends; the tensor ops reuse the rules of `anywidth.graph._rules_ops`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

from anywidth.graph import _rules_functional as functional
from anywidth.graph import _rules_ops as ops
from anywidth.graph._analysis import (
    UNTRACKED,
    Analyzer,
    Call,
    Channels,
    LayerCost,
    LayerIO,
    NotUnderstood,
    Tracked,
    untracked_like,
)
from anywidth.graph._rewrites import ShapeArgRewrite

__all__ = ["ATEN_RULES"]

Rule = Callable[[Analyzer, Call], Any]
aten = torch.ops.aten


def _param(ax: Analyzer, call: Call, index: int, name: str) -> str | None:
    """The model tensor an argument reads (its qualified name), None when absent.

    Raises:
        NotUnderstood: the argument is a computed tensor, not a parameter or buffer.
    """
    node, value = call.pick(index, name)
    if not isinstance(value, torch.Tensor):
        return None
    if isinstance(node, fx.Node) and node.op == "get_attr" and node.target in ax.tensor_names:
        return node.target
    raise NotUnderstood(f"its {name} is computed in forward, not a parameter")


def _owner(ax: Analyzer, tensor: str, kind: type) -> str | None:
    """The module holding ``tensor``, when it is a ``kind`` (whose attributes `cut` resizes)."""
    owner = tensor.rpartition(".")[0]
    try:
        module = ax.gm.get_submodule(owner)
    except AttributeError:
        return None
    return owner if isinstance(module, kind) else None


def linear(ax: Analyzer, call: Call) -> Any:
    """``aten.linear(x, weight, bias)``: weight (out, in), features last."""
    x_node, x = call.pick(0, "input")
    weight = _param(ax, call, 1, "weight")
    bias = _param(ax, call, 2, "bias")
    if weight is None or x.dim() < 1:
        raise NotUnderstood("a linear without weight")
    module = weight.rpartition(".")[0]
    in_slot, in_block = ax.consume(call, x_node, x, x.dim() - 1)
    size = int(call.result.shape[-1])
    out = ax.output_slot(weight, 0, size, f"{module}:out")
    ax.bind(weight, 0, out)
    ax.bind(weight, 1, in_slot, in_block)
    if bias is not None:
        ax.bind(bias, 0, out)
    io = LayerIO(Channels(in_slot, in_block), Channels(out))
    owner = _owner(ax, weight, nn.Linear)
    if owner is not None:
        ax.module_io[owner] = io
    ax.layers.append(LayerCost(math.prod(x.shape[:-1]), (io.outputs, io.inputs)))
    ax.layer_names.append(module)
    return Tracked(call.result.dim() - 1, out)


def layer_norm(ax: Analyzer, call: Call) -> Any:
    """``aten.layer_norm(x, normalized_shape, weight, bias, eps)``."""
    x_node, x = call.pick(0, "input")
    shape_arg, shape = call.pick(1, "normalized_shape")
    info = ax.info(x_node)
    if not isinstance(info, Tracked):
        return UNTRACKED
    first = x.dim() - len(shape)
    if info.dim < first:  # channels are not normalised over: each is handled alone
        return info
    pos = info.dim - first
    names = [_param(ax, call, 2, "weight"), _param(ax, call, 3, "bias")]
    for name in names:
        if name is not None:
            ax.bind(name, pos, info.slot, info.block)
    if isinstance(shape_arg, (list, tuple)) and isinstance(shape_arg[pos], int):
        ax.rewrites.append(ShapeArgRewrite(call.node.name, 1, pos, info.slot, info.block))
    channels = Channels(info.slot, info.block)
    owner = next((_owner(ax, n, nn.LayerNorm) for n in names if n is not None), None)
    if owner is not None:
        ax.module_io[owner] = LayerIO(channels, channels, position=pos)
    return info


def embedding(ax: Analyzer, call: Call) -> Any:
    """``aten.embedding(weight, ids)``: the table's dimension 1 holds the output features."""
    weight = _param(ax, call, 0, "weight")
    if weight is None:
        raise NotUnderstood("an embedding without a table")
    ids_node, _ = call.pick(1, "indices")
    ax.warn(call, ax.fix_info(ax.info(ids_node)), "its indices carry channels")
    out = ax.output_slot(weight, 1, int(call.result.shape[-1]), f"{weight.rpartition('.')[0]}:out")
    ax.bind(weight, 1, out)
    owner = _owner(ax, weight, nn.Embedding)
    if owner is not None:
        ax.module_io[owner] = LayerIO(Channels(out), Channels(out))
    return Tracked(call.result.dim() - 1, out)


def batch_norm(ax: Analyzer, call: Call) -> Any:
    """``aten.batch_norm(x, weight, bias, running_mean, running_var, training, ...)``: the
    functional rule, with ATen's order of arguments."""
    tensors = ((1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var"))
    return functional.per_channel(ax, call, functional.BATCH_NORMS, tensors)


def constant(ax: Analyzer, call: Call) -> Any:
    """Ops that build tensors from shapes and numbers (``arange``, ``meshgrid``, ``full``:
    anchor grids): no channels flow through them unless a tracked tensor goes in."""
    inputs: list[Any] = []
    fx.node.map_aggregate(
        (call.node.args, call.node.kwargs),
        lambda a: inputs.append(ax.info(a)) if isinstance(a, fx.Node) else a,
    )
    if any(isinstance(i, Tracked) for i in inputs):
        raise NotUnderstood("it builds a tensor from a tensor that carries channels")
    return untracked_like(call.result)


def new_tensor(ax: Analyzer, call: Call) -> Any:
    """``x.new_full(size, value)`` and kin: only ``x``'s dtype and device are read."""
    return untracked_like(call.result)


def slice_(ax: Analyzer, call: Call) -> Any:
    """``aten.slice(x, dim, start, end)``: passes channels held by another dimension."""
    info, value = ops._self(ax, call)
    if not isinstance(info, Tracked):
        return UNTRACKED
    dim = call.pick(1, "dim", 0)[1] % value.dim()
    if dim == info.dim and call.result.shape[dim] != value.shape[dim]:
        raise NotUnderstood("it slices the channel dimension")
    return info


def select(ax: Analyzer, call: Call) -> Any:
    """``aten.select(x, dim, index)``: drops a dimension that does not hold channels."""
    info, value = ops._self(ax, call)
    if not isinstance(info, Tracked):
        return UNTRACKED
    dim = call.pick(1, "dim")[1] % value.dim()
    if dim == info.dim:
        raise NotUnderstood("it picks a single channel")
    return Tracked(info.dim - (dim < info.dim), info.slot, info.block)


def transpose(ax: Analyzer, call: Call) -> Any:
    info, value = ops._self(ax, call)
    if not isinstance(info, Tracked):
        return UNTRACKED
    d0 = call.pick(1, "dim0")[1] % value.dim()
    d1 = call.pick(2, "dim1")[1] % value.dim()
    return Tracked({d0: d1, d1: d0}.get(info.dim, info.dim), info.slot, info.block)


_ELEMENTWISE = [
    "add", "sub", "rsub", "mul", "div", "neg", "abs", "exp", "sqrt", "rsqrt", "pow", "erf",
    "relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "hardtanh",
    "leaky_relu", "elu", "mish", "softplus", "dropout", "clamp", "clamp_min", "clamp_max",
    "maximum", "minimum", "where",
]  # fmt: skip
_ELEMENTWISE += [
    name + "_"
    for name in (
        "add",
        "sub",
        "mul",
        "div",
        "clamp",
        "hardtanh",
        "silu",
        "sigmoid",
        "hardswish",
        "gelu",
        "leaky_relu",
    )
]
_SELF_ONLY = ["clone", "contiguous", "to", "_to_copy", "detach", "alias", "type_as"]

ATEN_RULES: dict[Any, Rule] = {}
for _name in _ELEMENTWISE:
    ATEN_RULES[getattr(aten, _name)] = ops.elementwise
for _name in _SELF_ONLY:
    ATEN_RULES[getattr(aten, _name)] = ops.self_only
for _name in ("unsqueeze", "squeeze", "flatten", "reshape_as", "view_as"):
    ATEN_RULES[getattr(aten, _name)] = ops.reshape
for _name in ("view", "reshape", "_unsafe_view"):
    ATEN_RULES[getattr(aten, _name)] = ops.view
for _name in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
    ATEN_RULES[getattr(aten, _name)] = ops.softmax
for _name in ("mean", "sum", "amax", "amin"):
    ATEN_RULES[getattr(aten, _name)] = ops.reduce
for _name in ("matmul", "bmm", "mm"):
    ATEN_RULES[getattr(aten, _name)] = ops.matmul
for _name in ("conv1d", "conv2d", "conv3d"):  # the argument order of F.conv2d
    ATEN_RULES[getattr(aten, _name)] = functional.conv
for _dims in (1, 2, 3):
    for _name in ("max_pool", "avg_pool", "adaptive_avg_pool"):
        ATEN_RULES[getattr(aten, f"{_name}{_dims}d")] = ops.pool(_dims)
for _name in ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
              "upsample_bilinear2d", "upsample_bicubic2d", "upsample_linear1d"):  # fmt: skip
    ATEN_RULES[getattr(aten, _name)] = ops.spatial
for _name in ("arange", "meshgrid", "full", "zeros", "ones", "item", "stack",
              "scalar_tensor", "lift_fresh_copy"):  # fmt: skip
    ATEN_RULES[getattr(aten, _name)] = constant
for _name in ("new_full", "new_zeros", "new_ones", "new_empty"):
    ATEN_RULES[getattr(aten, _name)] = new_tensor
ATEN_RULES.update(
    {
        aten.linear: linear,
        aten.layer_norm: layer_norm,
        aten.embedding: embedding,
        aten.batch_norm: batch_norm,
        aten.pad: ops.pad,
        aten.constant_pad_nd: ops.pad,
        aten.chunk: ops.split,
        aten.split: ops.split,
        aten.split_with_sizes: ops.split,
        aten.unbind: ops.unbind,
        aten.scaled_dot_product_attention: ops.attention,
        aten.permute: ops.permute,
        aten.transpose: transpose,
        aten.cat: ops.cat,
        aten.slice: slice_,
        aten.select: select,
        aten.expand: ops.expand,
    }
)
