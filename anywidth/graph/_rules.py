"""Which rule follows the channels of a node: tables for functions, methods and modules.

An op is listed only when its channel semantics are certain; anything else is unknown and
fixes the groups that touch it.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx

import anywidth.graph._layers_torch  # noqa: F401  registers the torch.nn layer specs
from anywidth.graph import _rules_ops as ops
from anywidth.graph._analysis import Analyzer, Call
from anywidth.graph._rules_aten import ATEN_RULES
from anywidth.graph._rules_functional import FUNCTIONAL_RULES
from anywidth.graph.layers import LayerSpec, spec_for

__all__ = ["rule_for", "FUNCTION_RULES", "METHOD_RULES"]

Rule = Callable[[Analyzer, Call], Any]

_ELEMENTWISE_FUNCTIONS = [
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pos,
    operator.pow, operator.gt, operator.ge, operator.lt, operator.le,
    torch.add, torch.sub, torch.subtract, torch.mul, torch.multiply, torch.div, torch.divide,
    torch.true_divide, torch.maximum, torch.minimum, torch.neg, torch.negative, torch.abs,
    torch.exp, torch.sqrt, torch.rsqrt, torch.square, torch.sigmoid, torch.tanh, torch.relu,
    torch.clamp, torch.clip, torch.where,
    F.relu, F.relu_, F.relu6, F.silu, F.gelu, F.sigmoid, F.tanh, F.hardswish, F.hardsigmoid,
    F.hardtanh, F.leaky_relu, F.elu, F.selu, F.celu, F.mish, F.softplus, F.softsign,
    F.logsigmoid, F.tanhshrink, F.threshold, F.dropout, F.dropout1d, F.dropout2d,
    F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
]  # fmt: skip

_ELEMENTWISE_METHODS = [
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "neg", "abs", "exp", "sqrt",
    "rsqrt", "square", "pow", "sigmoid", "sigmoid_", "tanh", "tanh_", "relu", "relu_",
    "clamp", "clamp_", "clamp_min", "clamp_max", "clip", "maximum", "minimum",
]  # fmt: skip

_SELF_ONLY_METHODS = [
    "contiguous", "clone", "detach", "float", "double", "half", "bfloat16", "to", "type_as",
    "cpu", "cuda",
]  # fmt: skip

FUNCTION_RULES: dict[Any, Rule] = {fn: ops.elementwise for fn in _ELEMENTWISE_FUNCTIONS}

# Functions of optional packages, by module and name (so the graph never imports them).
# torchvision's stochastic depth drops whole samples or the whole batch: channels pass.
FUNCTIONS_BY_NAME: dict[str, Rule] = {
    "torchvision.ops.stochastic_depth.stochastic_depth": ops.self_only,
}
FUNCTION_RULES.update(
    {
        operator.getitem: ops.getitem,
        getattr: ops.no_tensor,
        torch.cat: ops.cat,
        torch.concat: ops.cat,
        torch.concatenate: ops.cat,
        torch.split: ops.split,
        torch.chunk: ops.split,
        torch.tensor_split: ops.split,
        torch.unbind: ops.unbind,
        torch.flatten: ops.reshape,
        torch.squeeze: ops.reshape,
        torch.unsqueeze: ops.reshape,
        torch.reshape: ops.view,
        torch.permute: ops.permute,
        torch.transpose: ops.transpose,
        torch.swapaxes: ops.transpose,
        torch.swapdims: ops.transpose,
        torch.t: ops.transpose,
        torch.mean: ops.reduce,
        torch.sum: ops.reduce,
        torch.amax: ops.reduce,
        torch.amin: ops.reduce,
        torch.softmax: ops.softmax,
        torch.log_softmax: ops.softmax,
        F.softmax: ops.softmax,
        F.log_softmax: ops.softmax,
        F.interpolate: ops.spatial,
        F.pad: ops.pad,
        operator.matmul: ops.matmul,
        torch.matmul: ops.matmul,
        torch.bmm: ops.matmul,
        torch.mm: ops.matmul,
        F.scaled_dot_product_attention: ops.attention,
        F.pixel_shuffle: ops.pixel_shuffle,
        F.pixel_unshuffle: ops.pixel_unshuffle,
        torch.pixel_shuffle: ops.pixel_shuffle,
        torch.pixel_unshuffle: ops.pixel_unshuffle,
    }
)
FUNCTION_RULES.update(FUNCTIONAL_RULES)
for _d in (1, 2, 3):
    for _name in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "lp_pool"):
        _fn = getattr(F, f"{_name}{_d}d", None)
        if _fn is not None:
            FUNCTION_RULES[_fn] = ops.pool(_d)

METHOD_RULES: dict[str, Rule] = {name: ops.elementwise for name in _ELEMENTWISE_METHODS}
METHOD_RULES.update({name: ops.self_only for name in _SELF_ONLY_METHODS})
METHOD_RULES.update(
    {
        "size": ops.no_tensor,
        "dim": ops.no_tensor,
        "numel": ops.no_tensor,
        "split": ops.split,
        "chunk": ops.split,
        "tensor_split": ops.split,
        "unbind": ops.unbind,
        "expand": ops.expand,
        "expand_as": ops.expand,
        "flatten": ops.reshape,
        "squeeze": ops.reshape,
        "unsqueeze": ops.reshape,
        "view_as": ops.reshape,
        "reshape_as": ops.reshape,
        "view": ops.view,
        "reshape": ops.view,
        "permute": ops.permute,
        "transpose": ops.transpose,
        "swapaxes": ops.transpose,
        "swapdims": ops.transpose,
        "t": ops.transpose,
        "mean": ops.reduce,
        "sum": ops.reduce,
        "amax": ops.reduce,
        "amin": ops.reduce,
        "softmax": ops.softmax,
        "log_softmax": ops.softmax,
        "matmul": ops.matmul,
        "bmm": ops.matmul,
        "mm": ops.matmul,
    }
)


def _layer_rule(spec: LayerSpec, module, ax: Analyzer, call: Call) -> Any:
    """A layer's `LayerSpec`: couple its channels, then record its cost."""
    info = spec.couple(ax, call, module)
    io = ax.module_io.get(call.node.target)
    if spec.cost is not None and io is not None:
        cost = spec.cost(module, call, io)
        if cost is not None:
            ax.layers.append(cost)
            ax.layer_names.append(call.node.target)
    return info


def rule_for(node: fx.Node, gm: fx.GraphModule) -> tuple[Rule | None, str]:
    """The rule for a call node, or (None, why it is unknown)."""
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        spec = spec_for(module)
        if spec is not None:
            return functools.partial(_layer_rule, spec, module), ""
        return None, (
            f"no channel rule for {type(module).__name__} modules (make it resizable with "
            "anywidth.graph.register_layer)"
        )
    if node.op == "call_method":
        return METHOD_RULES.get(node.target), "no channel rule for this tensor method"
    if isinstance(node.target, torch._ops.OpOverload):  # a torch.export graph
        return ATEN_RULES.get(node.target.overloadpacket), (
            "no channel rule for this ATen op (the model was traced with torch.export, as "
            "torch.fx could not trace it; make the module holding it traceable, or register "
            "it with anywidth.graph.register_layer and make the rest of forward traceable)"
        )
    try:
        rule = FUNCTION_RULES.get(node.target)
    except TypeError:  # an unhashable callable
        rule = None
    if rule is None:
        name = f"{getattr(node.target, '__module__', '')}.{getattr(node.target, '__name__', '')}"
        rule = FUNCTIONS_BY_NAME.get(name)
    return rule, "no channel rule for this function"
