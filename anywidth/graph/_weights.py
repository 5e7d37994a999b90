"""Where the tensors of a functional layer come from: a module's parameters, maybe computed.

A functional layer call (``F.conv2d(x, w, b)``, ``F.batch_norm(x, rm, rv, w, b)``) may read a
module's parameters directly or compute its tensors from them: weight standardisation
(``F.batch_norm(self.weight.reshape(1, out, -1), None, None, gain.view(-1), training=True)
.reshape_as(self.weight)`` in timm's ``ScaledStdConv2d``), a concatenation of biases
(``torch.cat((q_bias, k_bias, v_bias))``), a scale (``self.weight * self.scale``). `sources`
follows one dimension of such a tensor back to the dimensions of the parameters and buffers
whose entries it takes index by index: those become members of the layer's channel group.
Statistics taken across other dimensions (the mean and variance of a standardised weight
over its input channels) are recomputed over the kept channels after a cut, as a GroupNorm's
are.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx

from anywidth.graph import _rules_ops as ops
from anywidth.graph._analysis import Analyzer, NotUnderstood, describe
from anywidth.graph._rewrites import ReshapeRewrite

__all__ = ["Piece", "Sources", "sources", "bind_sources", "parameter_only"]


@dataclass(frozen=True)
class Piece:
    """Channels ``start:stop`` of the followed dimension are dimension ``dim`` of ``name``,
    each channel owning ``block`` consecutive entries: a parameter or buffer, or for a
    reshape on the way the node whose written shape holds that dimension's length."""

    start: int
    stop: int
    name: str
    dim: int
    block: int


@dataclass
class Sources:
    """What `sources` found: parameter dimensions, and reshapes whose shapes `cut` rewrites."""

    members: list[Piece] = field(default_factory=list)
    reshapes: list[Piece] = field(default_factory=list)


# Statistics over the dimensions they are given: entries along the others stay aligned.
_STATISTICS = {
    torch.mean, torch.sum, torch.std, torch.var, torch.std_mean, torch.var_mean, torch.norm,
    torch.amax, torch.amin, torch.linalg.vector_norm,
}  # fmt: skip
_STATISTIC_METHODS = {"mean", "sum", "std", "var", "norm", "amax", "amin"}
# Normalisations of a tensor computed from parameters: (channel dimension, tensor args).
_NORMS = {
    F.batch_norm: (1, ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias"))),
    F.instance_norm: (1, ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias"))),
    # torch.export's ATen form: (input, weight, bias, running_mean, running_var, training...)
    torch.ops.aten.batch_norm.default: (
        1,
        ((1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")),
    ),
}


def sources(ax: Analyzer, node: Any, dim: int, block: int, what: str) -> Sources:
    """The parameter dimensions that hold the entries of dimension ``dim`` of ``node``.

    Args:
        ax: the analysis (its node shapes are known up to the current node).
        node: the graph argument a layer reads (``None``: the layer has no such tensor).
        dim: the dimension followed.
        block: entries of that dimension per channel.
        what: how the layer calls the tensor (``"weight"``), for messages.

    Raises:
        NotUnderstood: the tensor is computed from the model input, read from a constant,
            or by an op whose entries anywidth cannot follow; the message names it.
    """
    found = Sources()
    if node is None:
        return found
    try:
        if _shape(node)[dim] % block:
            raise NotUnderstood("does not hold whole channels")
        _walk(ax, node, dim, block, 0, found)
    except NotUnderstood as exc:
        raise NotUnderstood(
            f"its {what} {exc}, so anywidth cannot tell which parameters hold its channels "
            "(register the module that calls it with anywidth.graph.register_layer)"
        ) from None
    return found


def bind_sources(ax: Analyzer, found: Sources, slot: int) -> None:
    """Bind the parameter dimensions `sources` found to ``slot`` (or their part of it), and
    have `cut` rewrite the reshapes on the way."""
    for piece in found.members:
        ax.bind(piece.name, piece.dim, _part(ax, slot, piece.start, piece.stop), piece.block)
    for piece in found.reshapes:
        part = _part(ax, slot, piece.start, piece.stop)
        ax.rewrites.append(ReshapeRewrite(piece.name, piece.dim, part, piece.block))


def _part(ax: Analyzer, slot: int, start: int, stop: int) -> int:
    if (start, stop) == (0, ax.table.size[slot]):
        return slot
    return ax.table.slice(slot, start, stop)[1]


def parameter_only(node: fx.Node) -> bool:
    """Whether the tensor ``node`` is computed from parameters, buffers and constants alone.

    Sizes read from the input (``view(n, n, -1)`` with ``n = x.shape[1]``) do not count:
    only tensor arguments carry values.
    """
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n.op == "placeholder":
            return False
        for parent in n.all_input_nodes:
            if parent not in seen and "tensor_meta" in parent.meta:
                seen.add(parent)
                stack.append(parent)
    return True


def _shape(node: Any) -> tuple[int, ...]:
    """A node's shape; for a pair of equal shapes (``std_mean``), the first one's."""
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    if _is_pair(meta):
        meta = meta[0]
    if meta is None or not hasattr(meta, "shape"):
        raise NotUnderstood(f"reads '{node}', which is not a tensor")
    return tuple(meta.shape)


def _is_pair(meta: Any) -> bool:
    """Whether a node's metadata is that of several tensors (a `TensorMetadata` is a tuple)."""
    return isinstance(meta, (tuple, list)) and bool(meta) and not hasattr(meta, "shape")


def _walk(ax: Analyzer, node: Any, dim: int, block: int, start: int, found: Sources) -> None:
    """Add the pieces of ``node``'s dimension ``dim`` (channels ``start:...``) to ``found``."""
    if not isinstance(node, fx.Node):
        raise NotUnderstood("is not a tensor of the model")
    if node.op == "get_attr":
        if node.target not in ax.tensor_names:
            raise NotUnderstood(f"reads the constant '{node.target}'")
        stop = start + _shape(node)[dim] // block
        found.members.append(Piece(start, stop, node.target, dim, block))
        return
    if node.op == "placeholder":
        raise NotUnderstood("is computed from the model input")
    if node.op not in ("call_function", "call_method"):
        raise NotUnderstood(f"is computed by {describe(node, ax.gm)}")
    for source, source_dim, source_block, source_start in _steps(ax, node, dim, block, start):
        _walk(ax, source, source_dim, source_block, source_start, found)
    if _is_view(ax, node):  # an explicit shape: its entry for these channels is rewritten
        stop = start + _shape(node)[dim] // block
        found.reshapes.append(Piece(start, stop, node.name, dim, block))


Step = tuple[Any, int, int, int]  # (node, dimension, block, first channel)


def _steps(ax: Analyzer, node: fx.Node, dim: int, block: int, start: int) -> list[Step]:
    """Where dimension ``dim`` of ``node`` comes from: one step per tensor argument."""
    from anywidth.graph._rules import rule_for  # the rules import this module

    if node.target is operator.getitem:
        return [_getitem(node, dim, block, start)]
    if node.target in _NORMS:
        return _norm(node, dim, block, start)
    if node.target in _STATISTICS or (
        node.op == "call_method" and node.target in _STATISTIC_METHODS
    ):
        return [(_first(node), _statistic_input_dim(node, dim), block, start)]
    rule, _ = rule_for(node, ax.gm)
    if rule in (ops.elementwise, ops.self_only):
        return _elementwise(node, dim, block, start, first_only=rule is ops.self_only)
    if rule in (ops.reshape, ops.view):
        mapped = ops.map_reshape(_shape(node), dim, block, _shape(_first(node)))
        if mapped is None:
            raise NotUnderstood("is reshaped so that its channels mix with another dimension")
        return [(_first(node), mapped[0], mapped[1], start)]
    if rule in (ops.permute, ops.transpose):
        return [(_first(node), _permuted_input_dim(node, dim), block, start)]
    if rule is ops.cat:
        return _cat(node, dim, block, start)
    raise NotUnderstood(f"is computed by {describe(node, ax.gm)}")


def _is_view(ax: Analyzer, node: fx.Node) -> bool:
    from anywidth.graph._rules import rule_for  # the rules import this module

    return node.target is not operator.getitem and rule_for(node, ax.gm)[0] is ops.view


def _first(node: fx.Node) -> fx.Node:
    """The tensor a method or function works on (its first argument)."""
    if node.args:
        return node.args[0]
    return next(v for k, v in node.kwargs.items() if k in ("input", "self", "x"))


def _elementwise(node: fx.Node, dim: int, block: int, start: int, first_only: bool) -> list:
    out = _shape(node)
    operands = [node.args[0]] if first_only else [*node.args, *node.kwargs.values()]
    steps = []
    for arg in operands:
        if not isinstance(arg, fx.Node) or "tensor_meta" not in arg.meta:
            continue  # a Python number
        shape = _shape(arg)
        pos = dim - (len(out) - len(shape))
        if pos < 0 or shape[pos] == 1 < out[dim]:
            continue  # broadcast along the channels: one value for all of them
        steps.append((arg, pos, block, start))
    return steps


def _norm(node: fx.Node, dim: int, block: int, start: int) -> list[Step]:
    """F.batch_norm / F.instance_norm of a tensor computed from parameters."""
    channel_dim, params = _NORMS[node.target]
    steps = [(_first(node), dim, block, start)]
    if dim == channel_dim:
        for index, name in params:
            arg = node.args[index] if index < len(node.args) else node.kwargs.get(name)
            if isinstance(arg, fx.Node):
                steps.append((arg, 0, block, start))
    return steps


def _cat(node: fx.Node, dim: int, block: int, start: int) -> list[Step]:
    tensors = node.args[0] if node.args else node.kwargs["tensors"]
    cat_dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if cat_dim % len(_shape(node)) != dim:
        return [(tensor, dim, block, start) for tensor in tensors]
    steps = []
    for tensor in tensors:  # each input is a run of the channels
        size = _shape(tensor)[dim]
        if size % block:
            raise NotUnderstood("joins parts that cut through a channel")
        steps.append((tensor, dim, block, start))
        start += size // block
    return steps


def _getitem(node: fx.Node, dim: int, block: int, start: int) -> Step:
    source, index = node.args
    if _is_pair(source.meta.get("tensor_meta")):  # one of std_mean's (std, mean)
        return source, dim, block, start
    if isinstance(index, fx.Node):  # table[index]: a gather along dimension 0
        gathered = len(_shape(index))
        if dim < gathered:
            raise NotUnderstood("gathers entries along its channels")
        return source, dim - gathered + 1, block, start
    return source, _index_input_dim(index, dim, _shape(source)), block, start


def _index_input_dim(index: Any, dim: int, shape: Sequence[int]) -> int:
    """The dimension of an indexed tensor that becomes dimension ``dim`` of ``x[index]``
    (only whole slices, ``None`` and ``...``: e.g. ``gamma[:, None, None]``)."""
    in_d = out_d = 0
    for _, item in ops._expand_index(index, len(shape)):
        if item is None:
            if out_d == dim:
                raise NotUnderstood("holds its channels on a new axis")
            out_d += 1
            continue
        if isinstance(item, int):
            in_d += 1
            continue
        if not isinstance(item, slice) or item.indices(shape[in_d]) != (0, shape[in_d], 1):
            raise NotUnderstood("takes part of a parameter")
        if out_d == dim:
            return in_d
        in_d, out_d = in_d + 1, out_d + 1
    return in_d + dim - out_d


def _statistic_input_dim(node: fx.Node, dim: int) -> int:
    """The dimension of a reduction's input that becomes its output dimension ``dim``."""
    out, src = _shape(node), _shape(_first(node))
    if len(out) == len(src):  # keepdim
        if out[dim] != src[dim]:
            raise NotUnderstood("is reduced over its channels")
        return dim
    at = 2 if node.target in (torch.norm, torch.linalg.vector_norm, "norm") else 1  # after p
    dims = node.args[at] if len(node.args) > at else node.kwargs.get("dim")
    if dims is None or isinstance(dims, fx.Node):
        raise NotUnderstood("is reduced over its channels")
    dims = {d % len(src) for d in (dims if isinstance(dims, (tuple, list)) else [dims])}
    return [d for d in range(len(src)) if d not in dims][dim]


def _permuted_input_dim(node: fx.Node, dim: int) -> int:
    rank = len(_shape(node))
    if node.target in ("t", torch.t):
        return {0: rank - 1, rank - 1: 0}.get(dim, dim)
    rest = list(node.args[1:]) or [node.kwargs.get("dims")]
    if node.target in ("permute", torch.permute):
        order = list(rest[0]) if len(rest) == 1 and isinstance(rest[0], Sequence) else rest
        return order[dim] % rank
    d0 = (rest[0] if rest else node.kwargs["dim0"]) % rank
    d1 = (rest[1] if len(rest) > 1 else node.kwargs["dim1"]) % rank
    return {d0: d1, d1: d0}.get(dim, dim)
