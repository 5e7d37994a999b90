"""Channel rules for tensor ops: element-wise, concat, split, indexing, reshapes, pooling.

Every rule takes the analyzer and one `Call`, and returns the info of the node's result, or
raises `NotUnderstood`. Records in ``ax.rewrites`` tell `cut` which graph constants (slice
bounds, split sizes, view shapes) hold channel counts and must be recomputed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import fx

from anywidth.graph._analysis import (
    UNTRACKED,
    Analyzer,
    Call,
    Channels,
    LayerCost,
    NotUnderstood,
    ParamRef,
    Tracked,
)
from anywidth.graph._rewrites import ReshapeRewrite, SliceRewrite, SplitRewrite

__all__ = [
    "elementwise",
    "self_only",
    "cat",
    "split",
    "unbind",
    "getitem",
    "reshape",
    "permute",
    "transpose",
    "reduce",
    "softmax",
    "pool",
    "spatial",
    "pad",
    "no_tensor",
    "expand",
    "pixel_shuffle",
    "pixel_unshuffle",
    "matmul",
    "attention",
]


def _untracked(result: Any) -> Any:
    return UNTRACKED if isinstance(result, torch.Tensor) else None


def _self(ax: Analyzer, call: Call) -> tuple[Any, Any]:
    """(info, value) of the op's first tensor argument (``input`` or ``self``)."""
    node, value = call.pick(0, "input")
    if node is None:
        node, value = call.pick(0, "self")
    return ax.info(node), value


def tie(ax: Analyzer, call: Call, operands: list[tuple[Any, torch.Tensor]]) -> Any:
    """Broadcasting rule: tensors meeting entry by entry share channels.

    A tracked operand whose channel size matches the output's takes part; one that is
    broadcast along that dimension (size 1, e.g. a spatial attention map) or a scalar does
    not. A parameter of the same size there becomes a member; an untracked tensor of the
    same size fixes the group (its channel order is unknown). A 1-d tensor that lies along
    another dimension than the channels (a per-position bias) is not a channel operand.
    """
    out = call.result
    if not isinstance(out, torch.Tensor):
        raise NotUnderstood("the result is not a tensor")
    rank = out.dim()
    parts, rest = [], []
    for arg, value in operands:
        info, shift = ax.info(arg), rank - value.dim()
        if isinstance(info, Tracked) and value.shape[info.dim] == out.shape[info.dim + shift]:
            parts.append((info, info.dim + shift))
        else:
            rest.append((arg, info, value, shift))
    channels = {d for info, d in parts if not ax.table.is_provisional(info.slot)}
    if len(channels) == 1:
        for info, d in parts:
            if d not in channels:  # along a spatial or token dimension: keep it whole
                ax.table.fix(info.slot)
        parts = [(info, d) for info, d in parts if d in channels]
    if not parts:
        return UNTRACKED
    if len({d for _, d in parts}) > 1:
        raise NotUnderstood("its operands hold their channels on different dimensions")
    infos = common_block(ax, [info for info, _ in parts])
    parts = [(info, d) for info, (_, d) in zip(infos, parts, strict=True)]
    first, dim = parts[0]
    for info, _ in parts[1:]:
        ax.table.union(first.slot, info.slot)
    for arg, info, value, shift in rest:
        pos = dim - shift
        if pos < 0 or value.shape[pos] == 1:
            continue
        if isinstance(info, ParamRef):
            ax.bind(info.name, pos, first.slot, first.block)
        else:
            why = _bind_computed(ax, arg, pos, first)
            if why is not None:
                why = f"operand '{arg}' has channels anywidth cannot follow{why}"
                ax.warn(call, ax.table.fix(first.slot), why)
    return Tracked(dim, first.slot, first.block)


def common_block(ax: Analyzer, infos: list[Tracked]) -> list[Tracked]:
    """The same channels re-read with one block size, the largest among ``infos``.

    A depthwise conv with a channel multiplier ``m`` (PiT's pooling) gives channels in
    blocks of ``m`` (each input channel makes ``m`` outputs); where they meet channels of
    block 1 (a linear layer's, added or concatenated), those are re-read in blocks of ``m``
    too (`Analyzer.coarsen`), so that both are cut ``m`` channels at a time.
    """
    block = max(info.block for info in infos)
    moved: dict[int, Tracked] = {}
    out = []
    for info in infos:
        if info.block == block:
            out.append(info)
            continue
        factor = block // info.block
        if block % info.block or ax.table.size[info.slot] % factor:
            raise NotUnderstood("it joins flattened features of different block sizes")
        if info.slot not in moved:
            try:
                moved[info.slot] = Tracked(info.dim, ax.coarsen(info.slot, factor), block)
            except NotUnderstood:
                raise NotUnderstood(
                    f"it joins channels in blocks of {info.block} and {block} (a channel "
                    f"multiplier), and the first are tied to other tensors already"
                ) from None
        out.append(replace(moved[info.slot], dim=info.dim))
    return out


def _bind_computed(ax: Analyzer, arg: Any, dim: int, channels: Tracked) -> str | None:
    """Tie the parameters that a tensor computed from them alone takes its dimension
    ``dim`` from (a relative-position bias gathered from its table) to ``channels``.

    Returns:
        None when done; else '' for a tensor computed from the input, or why the
        parameters cannot be found, as a clause to append to a message.
    """
    from anywidth.graph._weights import bind_sources, parameter_only, sources  # they use ops

    if not isinstance(arg, fx.Node) or not parameter_only(arg):
        return ""
    try:
        found = sources(ax, arg, dim, channels.block, "value")
    except NotUnderstood as exc:
        return f": {exc}"
    bind_sources(ax, found, channels.slot)
    return None


def elementwise(ax: Analyzer, call: Call) -> Any:
    """add/sub/mul/div, activations, dropout...: every tensor argument is an operand."""
    return tie(ax, call, call.tensor_operands())


def self_only(ax: Analyzer, call: Call) -> Any:
    """``contiguous``, ``to``, ``type_as``...: same entries as the first argument."""
    info, _ = _self(ax, call)
    return info if isinstance(info, Tracked) else _untracked(call.result)


def expand(ax: Analyzer, call: Call) -> Any:
    """``x.expand(B, -1, -1)`` / ``expand_as``: the entries stay; a parameter expanded over
    the batch (a ViT's class token, ``cls_token.expand(B, -1, -1)``) stays that parameter,
    whose channels the next op (the ``cat`` with the patch tokens) binds."""
    info, value = _self(ax, call)
    out = call.result
    shift = out.dim() - value.dim()
    if isinstance(info, ParamRef):
        return info if shift == 0 else _untracked(out)
    if not isinstance(info, Tracked):
        return _untracked(out)
    if call.node.op == "call_method" and call.node.target == "expand_as":
        return Tracked(info.dim + shift, info.slot, info.block)
    rest = call.args[1:]
    sizes = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest
    written = sizes[info.dim + shift] if info.dim + shift < len(sizes) else -1
    if written != -1 and value.shape[info.dim] != 1:
        raise NotUnderstood("it writes the channel count as a constant")
    return Tracked(info.dim + shift, info.slot, info.block)


def no_tensor(ax: Analyzer, call: Call) -> Any:
    """Shape queries (``size``, ``dim``, ``x.shape``): no channels flow through."""
    if isinstance(call.result, torch.Tensor):
        raise NotUnderstood("an attribute read returned a tensor")
    return None


def cat(ax: Analyzer, call: Call) -> Any:
    """``torch.cat``: along the channel dimension each input becomes a segment."""
    nodes, values = call.pick(0, "tensors")
    _, dim = call.pick(1, "dim", 0)
    dim %= call.result.dim()
    infos = [ax.info(n) for n in nodes]
    tracked = [i for i in infos if isinstance(i, Tracked)]
    if not tracked or any(i.dim != dim for i in tracked):
        return tie(ax, call, list(zip(nodes, values, strict=True)))
    common = iter(common_block(ax, tracked))
    infos = [next(common) if isinstance(i, Tracked) else i for i in infos]
    block = next(i.block for i in infos if isinstance(i, Tracked))
    segments = []
    for k, (info, value) in enumerate(zip(infos, values, strict=True)):
        if isinstance(info, Tracked):
            segments.append(info.slot)
            continue
        size = int(value.shape[dim]) if value.dim() > dim else 0
        if size % block:
            raise NotUnderstood("an input's size is not a whole number of channels")
        if size:
            segments.append(ax.fresh(size // block, f"{call.node.name}:in{k}", fixed=True))
    return Tracked(dim, ax.table.composite(segments), block)


def split(ax: Analyzer, call: Call) -> Any:
    """split/chunk/tensor_split: pieces along the channel dimension are slices."""
    info, value = _self(ax, call)
    pieces = call.result
    _, dim = call.pick(2, "dim", 0)
    if not isinstance(info, Tracked):
        return tuple(UNTRACKED for _ in pieces)
    dim %= value.dim()
    if dim != info.dim:
        return tuple(info for _ in pieces)
    slots, pos, block = [], 0, info.block
    for piece in pieces:
        size = int(piece.shape[dim])
        if size == 0 or pos % block or size % block:
            raise NotUnderstood("a piece is empty or cuts through a flattened channel")
        slots.append(ax.table.slice(info.slot, pos // block, (pos + size) // block)[1])
        pos += size
    if not _computed(call.pick(1, "split_size_or_sections")[0]):
        ax.rewrites.append(SplitRewrite(call.node.name, tuple(slots), block, dim))
    return tuple(Tracked(dim, s, block) for s in slots)


def unbind(ax: Analyzer, call: Call) -> Any:
    """``unbind`` (``q, k, v = qkv.unbind(0)``): every piece keeps the other dimensions."""
    info, value = _self(ax, call)
    _, dim = call.pick(1, "dim", 0)
    pieces = call.result
    if not isinstance(info, Tracked):
        return tuple(UNTRACKED for _ in pieces)
    dim %= value.dim()
    if dim == info.dim:
        raise NotUnderstood("it splits the channels into single channels")
    return tuple(Tracked(info.dim - (dim < info.dim), info.slot, info.block) for _ in pieces)


def _computed(written: Any) -> bool:
    """Whether a graph argument is computed by the graph (e.g. from ``x.shape``): it then
    follows a cut by itself and holds no channel count for `cut` to rewrite."""
    found = []
    fx.node.map_aggregate(written, lambda a: found.append(a) if isinstance(a, fx.Node) else a)
    return bool(found)


def getitem(ax: Analyzer, call: Call) -> Any:
    """``x[...]`` on a tensor, or picking one output of a multi-output op."""
    container, index = call.args[0], call.args[1]
    info = ax.info(call.node.args[0])
    if isinstance(container, torch.Tensor):
        return _index_tensor(ax, call, info, container, index)
    if isinstance(info, tuple):
        return info[index]
    return _untracked(call.result)


def _expand_index(index: Any, rank: int) -> list[tuple[int | None, Any]]:
    """Index items as (position in the written index or None, item), Ellipsis expanded."""
    items = index if isinstance(index, tuple) else (index,)
    gathers = [it for it in items if isinstance(it, torch.Tensor)]
    if len(gathers) > 1 or any(t.dtype == torch.bool for t in gathers):
        raise NotUnderstood("advanced indexing with several or boolean tensors")
    if gathers and any(isinstance(it, int) for it in items):  # they broadcast together
        raise NotUnderstood("advanced indexing with a tensor and integers")
    for item in items:
        if isinstance(item, (bool, list)):
            raise NotUnderstood("advanced (list or boolean) indexing")
    used = sum(1 for it in items if it is not None and it is not Ellipsis)
    out: list[tuple[int | None, Any]] = []
    for pos, item in enumerate(items):
        if item is Ellipsis:
            out.extend((None, slice(None)) for _ in range(rank - used))
        else:
            out.append((pos if isinstance(index, tuple) else -1, item))
    return out


def _index_tensor(ax: Analyzer, call: Call, info: Any, x: torch.Tensor, index: Any) -> Any:
    if not isinstance(info, Tracked):
        return _untracked(call.result)
    in_d = out_d = 0
    for pos, item in _expand_index(index, x.dim()):
        if item is None:
            out_d += 1
            continue
        if isinstance(item, torch.Tensor):  # one index tensor gathers along its dimension
            if in_d == info.dim:
                raise NotUnderstood("an index tensor gathers along the channels")
            in_d, out_d = in_d + 1, out_d + item.dim()
            continue
        if in_d == info.dim:
            return _slice_channels(ax, call, info, x, item, pos, out_d)
        in_d += 1
        out_d += 0 if isinstance(item, int) else 1
    return Tracked(out_d + info.dim - in_d, info.slot, info.block)


def _slice_channels(ax, call, info: Tracked, x, item, pos, out_dim: int) -> Tracked:
    if not isinstance(item, slice):
        raise NotUnderstood("an integer index picks a single channel")
    size = int(x.shape[info.dim])
    start, stop, step = item.indices(size)
    if step != 1:
        raise NotUnderstood("a strided slice of the channels")
    if (start, stop) == (0, size):
        return Tracked(out_dim, info.slot, info.block)
    block = info.block
    if stop <= start or start % block or stop % block:
        raise NotUnderstood("an empty slice or one that cuts through a flattened channel")
    before, inside = ax.table.slice(info.slot, start // block, stop // block)
    written = call.node.args[1] if pos == -1 else call.node.args[1][pos]
    if not _computed((written.start, written.stop)):
        ax.rewrites.append(SliceRewrite(call.node.name, pos, before, inside, block))
    return Tracked(out_dim, inside, block)


def map_reshape(src: Sequence[int], dim: int, block: int, dst: Sequence[int]):
    """Where a channel dimension lands after a row-major reshape, as (dim, block), or None.

    Channel ``c`` owns the entries ``[c*U, (c+1)*U)`` of the suffix that starts at ``dim``
    (``U = block * prod(src[dim+1:])``); it stays a clean block of an output dimension ``e``
    when the output suffix from ``e`` has the same size and ``U`` divides into it.
    """
    suffix = math.prod(src[dim:])
    unit = block * math.prod(src[dim + 1 :])
    for e in range(len(dst)):
        inner = math.prod(dst[e + 1 :])
        if math.prod(dst[e:]) == suffix and inner and unit % inner == 0:
            return e, unit // inner
    return None


def map_split(src: Sequence[int], dim: int, block: int, dst: Sequence[int]):
    """Where a channel dimension lands when a reshape splits it into (heads, rest): as
    (output dim, channels per output index), or None.

    ``(B, T, H * D) -> (B, T, H, D)``: each of the ``H`` output indices along dimension 2
    holds ``D`` whole input channels, so the input's channels are really ``H`` channels of
    ``D`` entries each (attention heads).
    """
    suffix = math.prod(src[dim:])
    unit = block * math.prod(src[dim + 1 :])
    for e in range(len(dst)):
        inner = math.prod(dst[e + 1 :])
        if math.prod(dst[e:]) == suffix and inner > unit and inner % unit == 0:
            factor = inner // unit
            if src[dim] % factor == 0:
                return e, factor
    return None


def reshape(ax: Analyzer, call: Call, rewrite: bool = False) -> Any:
    """view/reshape/flatten/squeeze/unsqueeze (and nn.Flatten), from the two shapes.

    A reshape that splits the channels into (heads, head_dim) re-reads the producer's
    channels as whole heads (`Analyzer.coarsen`): the head is the unit that is kept or
    dropped, the head dimension is not cut.
    """
    info, value = _self(ax, call)
    if not isinstance(info, Tracked):
        if rewrite:
            _freeze_read_widths(ax, call)
        return _untracked(call.result)
    src, dst = list(value.shape), list(call.result.shape)
    mapped = map_reshape(src, info.dim, info.block, dst)
    if mapped is not None:
        dim, block = mapped
        slot = info.slot
    else:
        split = map_split(src, info.dim, info.block, dst)
        if split is None:
            raise NotUnderstood("the reshape mixes the channel dimension with another")
        dim, factor = split
        slot, block = ax.coarsen(info.slot, factor), 1
    if rewrite:
        ax.rewrites.append(ReshapeRewrite(call.node.name, dim, slot, block))
        _freeze_read_widths(ax, call, channel_entry=dim)
    return Tracked(dim, slot, block)


def _freeze_read_widths(ax: Analyzer, call: Call, channel_entry: int | None = None) -> None:
    """A reshape may read its sizes from another tensor whose width a cut changes: of a
    tensor whose width stays (edgenext's ``reshape(B, N, C)`` with ``B, N, C = x.shape``),
    or in an entry other than the channels' (CaiT's head size ``C // num_heads``, kept
    whole when heads are cut). Such an entry is rewritten to the size it has now."""
    rest = list(call.node.args[1:])
    packed = len(rest) == 1 and isinstance(rest[0], (tuple, list))
    for k, entry in enumerate(list(rest[0]) if packed else rest):
        if k == channel_entry:
            continue
        for source, dim in _shape_reads(entry):
            info, meta = ax.info(source), source.meta.get("tensor_meta")
            rank = len(getattr(meta, "shape", ()))
            if isinstance(info, Tracked) and rank and dim % rank == info.dim:
                size = int(call.result.shape[k])
                kept = ax.fresh(size, f"{call.node.name}:entry{k}", fixed=True)
                ax.rewrites.append(ReshapeRewrite(call.node.name, k, kept, 1))
                break


_ARITHMETIC = (operator.floordiv, operator.mul, operator.add, operator.sub)


def _shape_reads(entry: Any) -> list[tuple[fx.Node, int]]:
    """Every ``x.shape[dim]`` a reshape entry is computed from: the read itself, or integer
    arithmetic on reads (CaiT's ``C // self.num_heads``)."""
    read = _shape_read(entry)
    if read is not None:
        return [read]
    if isinstance(entry, fx.Node) and entry.op == "call_function" and entry.target in _ARITHMETIC:
        return [r for arg in entry.args for r in _shape_reads(arg)]
    return []


def _shape_read(entry: Any) -> tuple[fx.Node, int] | None:
    """(tensor, dim) when a graph value is ``x.shape[dim]`` or ``x.size(dim)``."""
    if not isinstance(entry, fx.Node):
        return None
    if entry.op == "call_method" and entry.target == "size" and len(entry.args) == 2:
        return entry.args[0], entry.args[1]
    if entry.op == "call_function" and entry.target is operator.getitem:
        holder, dim = entry.args
        shape_of = isinstance(holder, fx.Node) and (
            (holder.op == "call_function" and holder.target is getattr
             and holder.args[1] == "shape")
            or (holder.op == "call_method" and holder.target == "size" and len(holder.args) == 1)
        )  # fmt: skip
        if shape_of and isinstance(dim, int):
            return holder.args[0], dim
    return None


def view(ax: Analyzer, call: Call) -> Any:
    """``view``/``reshape`` with an explicit shape: the channel entry is recomputed by cut."""
    return reshape(ax, call, rewrite=True)


def permute(ax: Analyzer, call: Call) -> Any:
    info, value = _self(ax, call)
    if not isinstance(info, Tracked):
        return _untracked(call.result)
    rest = list(call.args[1:]) or [call.kwargs.get("dims")]
    dims = list(rest[0]) if len(rest) == 1 and isinstance(rest[0], Sequence) else rest
    dims = [d % value.dim() for d in dims]
    return Tracked(dims.index(info.dim), info.slot, info.block)


def transpose(ax: Analyzer, call: Call) -> Any:
    info, value = _self(ax, call)
    if not isinstance(info, Tracked):
        return _untracked(call.result)
    if call.node.target in ("t", torch.t):
        d0, d1 = 0, value.dim() - 1
    else:
        d0 = call.pick(1, "dim0")[1] % value.dim()
        d1 = call.pick(2, "dim1")[1] % value.dim()
    dim = {d0: d1, d1: d0}.get(info.dim, info.dim)
    return Tracked(dim, info.slot, info.block)


def reduce(ax: Analyzer, call: Call) -> Any:
    """mean/sum/amax/amin over some dimensions; over the channels it is not followed."""
    info, value = _self(ax, call)
    if not isinstance(info, Tracked):
        return _untracked(call.result)
    _, dims = call.pick(1, "dim", None)
    _, keepdim = call.pick(2, "keepdim", False)
    if dims is None or dims == () or dims == []:
        raise NotUnderstood("it reduces over every dimension, channels included")
    dims = {d % value.dim() for d in (dims if isinstance(dims, Sequence) else [dims])}
    if info.dim in dims:
        raise NotUnderstood("it reduces over the channel dimension")
    dim = info.dim if keepdim else info.dim - sum(d < info.dim for d in dims)
    return Tracked(dim, info.slot, info.block)


def softmax(ax: Analyzer, call: Call, dim: Any = "arg") -> Any:
    info, value = _self(ax, call)
    if dim == "arg":
        dim = call.pick(1, "dim")[1]
    if not isinstance(info, Tracked):
        return _untracked(call.result)
    if dim is None or dim % value.dim() == info.dim:
        raise NotUnderstood("it normalises across the channels")
    return info


def _untouched_dims(ax: Analyzer, call: Call, count: int, why: str) -> Any:
    """The op works on the last ``count`` dimensions only; channels pass if not among them."""
    info, value = _self(ax, call)
    if not isinstance(call.result, torch.Tensor):
        raise NotUnderstood("it returns several tensors (e.g. return_indices=True)")
    if not isinstance(info, Tracked):
        return _untracked(call.result)
    if info.dim >= value.dim() - count or call.result.dim() != value.dim():
        raise NotUnderstood(why)
    return info


def pool(spatial_dims: int):
    """Rule for a pooling op over the last ``spatial_dims`` dimensions."""

    def rule(ax: Analyzer, call: Call) -> Any:
        return _untouched_dims(ax, call, spatial_dims, "it pools over the channel dimension")

    return rule


def spatial(ax: Analyzer, call: Call) -> Any:
    """interpolate/upsample: every dimension after the first two is spatial."""
    _, value = _self(ax, call)
    return _untouched_dims(ax, call, value.dim() - 2, "it resamples the channel dimension")


def pad(ax: Analyzer, call: Call, count: int | None = None) -> Any:
    """F.pad (and padding modules): pads the last ``len(pad) // 2`` dimensions."""
    if count is None:
        count = len(call.pick(1, "pad")[1]) // 2
    return _untouched_dims(ax, call, count, "it pads the channel dimension")


def _shuffle_input(ax: Analyzer, call: Call, factor: int | None) -> tuple[Tracked | None, int]:
    """(info of a pixel (un)shuffle's input, r²), or (None, r²) when it carries no channels."""
    info, value = _self(ax, call)
    if factor is None:
        factor = call.pick(1, "upscale_factor")[1]
        if factor is None:
            factor = call.pick(1, "downscale_factor")[1]
    if not isinstance(info, Tracked):
        return None, factor * factor
    if info.dim != value.dim() - 3:
        raise NotUnderstood("its channels are not the dimension before height and width")
    return info, factor * factor


def pixel_shuffle(ax: Analyzer, call: Call, factor: int | None = None) -> Any:
    """``pixel_shuffle``: input channel ``c * r² + j`` becomes a pixel of output channel ``c``.

    The producer's ``C * r²`` channels are coupled in blocks of ``r²``: the output group has
    ``C`` channels and every tensor of the input owns ``r²`` entries per channel.
    """
    info, r2 = _shuffle_input(ax, call, factor)
    if info is None:
        return _untracked(call.result)
    if info.block % r2 == 0:  # the input's channels already own whole blocks of r² entries
        return Tracked(info.dim, info.slot, info.block // r2)
    if info.block != 1:
        raise NotUnderstood("its blocks of r² channels cut through the input's channels")
    return Tracked(info.dim, ax.coarsen(info.slot, r2), 1)


def pixel_unshuffle(ax: Analyzer, call: Call, factor: int | None = None) -> Any:
    """``pixel_unshuffle``: input channel ``c`` becomes output channels ``c * r² + j``."""
    info, r2 = _shuffle_input(ax, call, factor)
    if info is None:
        return _untracked(call.result)
    return Tracked(info.dim, info.slot, info.block * r2)


def _matmul_side(info: Any, value: torch.Tensor, out_rank: int, right: bool) -> tuple[str, int]:
    """Where a tracked operand of a matmul keeps its channels: ("out", output dim),
    ("contract", -1) for the summed dimension, or ("none", -1)."""
    if not isinstance(info, Tracked):
        return "none", -1
    rank = value.dim()
    contracted = rank - 2 if right else rank - 1
    if rank == 1 or info.dim == contracted:
        return "contract", -1
    if right and info.dim == rank - 1:
        return "out", out_rank - 1
    if not right and info.dim == rank - 2:
        return "out", out_rank - 2
    return "out", info.dim + out_rank - rank  # a batch dimension, aligned from the right


def matmul(ax: Analyzer, call: Call) -> Any:
    """``a @ b`` (matmul, bmm, mm): batch and free dimensions pass, the contracted one ties.

    Attention's ``softmax(Q Kᵀ) V`` couples the head dimension of Q, K and V: it is a batch
    dimension of both products.
    """
    operands = call.tensor_operands()
    if len(operands) != 2 or not isinstance(call.result, torch.Tensor):
        raise NotUnderstood("a matrix product needs two tensor operands and one result")
    (na, a), (nb, b) = operands
    out = call.result
    ia, ib = ax.info(na), ax.info(nb)
    sa, da = _matmul_side(ia, a, out.dim(), right=False)
    sb, db = _matmul_side(ib, b, out.dim(), right=True)
    if "contract" in (sa, sb):
        if sa == sb == "contract" and ia.block == ib.block:
            ax.table.union(ia.slot, ib.slot)
        else:
            why = "it sums over channels that only one operand tracks"
            ax.warn(call, ax.fix_info(ia if sa == "contract" else ib), why)
    tracked = [
        (i, d)
        for i, s, d, v in ((ia, sa, da, a), (ib, sb, db, b))
        if s == "out" and v.shape[i.dim] == out.shape[d]  # not broadcast from size 1
    ]
    for info, d in tracked:
        _fix_if_other_batch_untracked(ax, call, info, d, [(ia, a), (ib, b)])
    contracted = ia if sa == "contract" and sb == "contract" else None
    if not tracked:
        _product_cost(ax, call, int(a.shape[-1]), None, contracted)
        return UNTRACKED
    first, dim = tracked[0]
    for info, d in tracked[1:]:
        if d == dim and info.block == first.block:
            ax.table.union(first.slot, info.slot)
        else:
            ax.warn(call, ax.table.fix(info.slot), "its operands hold channels on different dims")
    _product_cost(ax, call, int(a.shape[-1]), (first, dim), contracted)
    return Tracked(dim, first.slot, first.block)


def _fix_if_other_batch_untracked(
    ax: Analyzer, call: Call, info: Tracked, dim: int, operands: list[tuple[Any, torch.Tensor]]
) -> None:
    """Channels on a batch dimension of a matrix product (CaiT's talking heads, mixed by a
    linear layer between ``Q Kᵀ`` and ``V``) must meet the same channels in the other
    operand; where that one holds the dimension untracked and whole, they stay."""
    rank = call.result.dim()
    if dim >= rank - 2:
        return
    for other, value in operands:
        if isinstance(other, Tracked):  # this operand, or one whose channels tie or warn
            continue
        pos = dim - (rank - value.dim())
        if 0 <= pos < value.dim() - 2 and value.shape[pos] != 1:
            why = "the other operand holds the same batch dimension whole (untracked)"
            ax.warn(call, ax.table.fix(info.slot), why)


def _product_cost(ax: Analyzer, call: Call, inner: int, kept: tuple | None, summed: Any) -> None:
    """Record the MACs of a matrix product, ``numel(out) * inner``, as a function of the
    channels it keeps (``(info, output dim)``) and of the channels it sums over."""
    out = call.result
    macs, factors, full = out.numel() * inner, [], 1
    if kept is not None:
        info, dim = kept
        factors.append(Channels(info.slot, info.block))
        full *= int(out.shape[dim])
    if isinstance(summed, Tracked):
        factors.append(Channels(summed.slot, summed.block))
        full *= inner
    ax.add_cost(call.node, LayerCost(macs, tuple(factors), full))


def attention(ax: Analyzer, call: Call) -> Any:
    """``scaled_dot_product_attention(q, k, v, mask)``: the heads (dimension -3) of q, k, v
    and of a per-head mask are one group; the head dimension and tokens are not followed."""
    parts = [call.pick(i, name) for i, name in enumerate(("query", "key", "value"))]
    infos = [ax.info(n) for n, _ in parts]
    out = call.result
    heads = out.dim() - 3
    pairs = zip(infos, parts, strict=True)
    if any(isinstance(i, Tracked) and i.dim != v.dim() - 3 for i, (_, v) in pairs):
        raise NotUnderstood("its query, key or value holds channels outside the head dimension")
    if len({int(v.shape[-3]) for _, v in parts}) > 1:
        raise NotUnderstood("grouped-query attention (fewer key/value heads) is not followed")
    tracked = [i for i in infos if isinstance(i, Tracked)]
    if not tracked:
        return UNTRACKED
    first = tracked[0]
    for info in tracked[1:]:
        ax.table.union(first.slot, info.slot)
    if len(tracked) < 3:
        ax.warn(call, ax.table.fix(first.slot), "some of query, key, value have unknown heads")
    q, v = parts[0][1], parts[2][1]  # (..., H, L, E), (..., H, S, Ev)
    macs = out.numel() // out.shape[-1] * int(v.shape[-2]) * (int(q.shape[-1]) + int(v.shape[-1]))
    ax.add_cost(call.node, LayerCost(macs, (Channels(first.slot, first.block),), out.shape[heads]))
    mask_node, mask = call.pick(3, "attn_mask")
    if isinstance(mask, torch.Tensor) and mask.dim() >= 3 and mask.shape[-3] > 1:
        info = ax.info(mask_node)
        if isinstance(info, Tracked) and info.dim == mask.dim() - 3:
            ax.table.union(first.slot, info.slot)
        else:
            ax.warn(call, ax.table.fix(first.slot), "its mask has heads anywidth cannot follow")
    return Tracked(heads, first.slot, first.block)
