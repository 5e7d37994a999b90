"""The mechanics of a cut: slice tensors, update layer attributes, rewrite graph constants."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import fx, nn

from anywidth.graph._analysis import Analyzer
from anywidth.graph._types import ChannelGroup, PlanError

__all__ = ["Sizer", "cut_tensors", "install_tensors", "resize_modules", "rewrite_graph"]


class Sizer:
    """New sizes of slots once some groups keep fewer channels."""

    def __init__(self, ax: Analyzer, name_of_root: Mapping[int, str], sizes: Mapping[str, int]):
        self._ax, self._names, self._sizes = ax, name_of_root, sizes

    def __call__(self, slot: int | None, block: int = 1) -> int:
        table = self._ax.table
        total = 0
        for leaf in table.leaves(slot):
            name = self._names.get(table.find(leaf))
            total += self._sizes.get(name, table.size[leaf]) if name else table.size[leaf]
        return total * block


def get_tensor(module: nn.Module, name: str) -> torch.Tensor:
    owner, _, attr = name.rpartition(".")
    return getattr(module.get_submodule(owner) if owner else module, attr)


def cut_tensors(
    module: nn.Module, groups: Mapping[str, ChannelGroup], keep: Mapping[str, list[int]]
) -> dict[str, torch.Tensor]:
    """The cut version of every parameter/buffer that holds channels of a cut group."""
    masks: dict[tuple[str, int], torch.Tensor] = {}
    for gname, kept in keep.items():
        group = groups[gname]
        for m in group.members:
            length = get_tensor(module, m.name).shape[m.dim]
            mask = masks.setdefault((m.name, m.dim), torch.ones(length, dtype=torch.bool))
            mask[m.offset : m.offset + group.size * m.block] = False
            mask[m.indices(kept)] = True
    out: dict[str, torch.Tensor] = {}
    for (name, dim), mask in masks.items():
        tensor = out.get(name, get_tensor(module, name))
        index = mask.nonzero().squeeze(1).to(tensor.device)
        out[name] = tensor.detach().index_select(dim, index)
    return out


def check_replacements(
    module: nn.Module, cut: dict[str, torch.Tensor], replace: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Validate caller-supplied tensors against the shapes the cut gives; merge them in."""
    names = dict(module.named_parameters(remove_duplicate=False))
    names.update(module.named_buffers(remove_duplicate=False))
    out = dict(cut)
    for name, tensor in replace.items():
        if name not in names:
            from anywidth.graph.groups import _suggest

            raise PlanError(f"replacement for unknown tensor {name!r}{_suggest(name, list(names))}")
        old = names[name]
        expected = tuple(out[name].shape) if name in out else tuple(old.shape)
        if tuple(tensor.shape) != expected:
            raise PlanError(
                f"replacement for {name!r} has shape {tuple(tensor.shape)}, expected "
                f"{expected} after the cut"
            )
        out[name] = tensor.detach().to(dtype=old.dtype, device=old.device)
    return out


def install_tensors(module: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Put new tensors in place, as parameters or buffers like the ones they replace."""
    for name, tensor in tensors.items():
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        old = getattr(owner, attr)
        if isinstance(old, nn.Parameter):
            setattr(owner, attr, nn.Parameter(tensor.clone(), requires_grad=old.requires_grad))
        else:
            owner._buffers[attr] = tensor.clone()


Resizer = Callable[[nn.Module, dict[str, Any], Sizer], None]
_RESIZERS: dict[type, Resizer] = {}


def _resizer(*types: type) -> Callable[[Resizer], Resizer]:
    def register(fn: Resizer) -> Resizer:
        for t in types:
            _RESIZERS[t] = fn
        return fn

    return register


@_resizer(
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d
)
def _conv(m: nn.Module, io: dict[str, Any], size: Sizer) -> None:
    new_in, new_out = size(*io["in"]), size(*io["out"])
    if m.groups == m.in_channels and m.groups > 1:  # depthwise: one group per channel
        m.groups = new_in
    m.in_channels, m.out_channels = new_in, new_out


@_resizer(nn.Linear)
def _linear(m: nn.Module, io: dict[str, Any], size: Sizer) -> None:
    m.in_features, m.out_features = size(*io["in"]), size(*io["out"])


@_resizer(
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)
def _norm(m: nn.Module, io: dict[str, Any], size: Sizer) -> None:
    m.num_features = size(*io["features"])


@_resizer(nn.GroupNorm)
def _group_norm(m: nn.Module, io: dict[str, Any], size: Sizer) -> None:
    m.num_channels = size(*io["features"])


@_resizer(nn.PReLU)
def _prelu(m: nn.Module, io: dict[str, Any], size: Sizer) -> None:
    m.num_parameters = size(*io["features"])


@_resizer(nn.LayerNorm)
def _layer_norm(m: nn.Module, io: dict[str, Any], size: Sizer) -> None:
    pos, slot, block = io["shape"]
    shape = list(m.normalized_shape)
    shape[pos] = size(slot, block)
    m.normalized_shape = tuple(shape)


def resize_modules(gm: fx.GraphModule, ax: Analyzer, size: Sizer) -> None:
    """Update in/out channel attributes of every layer the analysis recorded."""
    for name, io in ax.module_io.items():
        module = gm.get_submodule(name)
        for cls in type(module).__mro__:
            if cls in _RESIZERS:
                _RESIZERS[cls](module, io, size)
                break


def rewrite_graph(gm: fx.GraphModule, ax: Analyzer, size: Sizer) -> None:
    """Recompute graph constants that hold channel counts (slices, split sizes, shapes)."""
    nodes = {n.name: n for n in gm.graph.nodes}
    for kind, name, *data in ax.rewrites:
        node = nodes[name]
        if kind == "slice":
            pos, before, inside, block = data
            start = size(before, block)
            new = slice(start, start + size(inside, block))
            index = node.args[1]
            if pos != -1:
                new = tuple(new if i == pos else item for i, item in enumerate(index))
            node.args = (node.args[0], new)
        elif kind == "split":
            slots, block, dim = data
            source = node.args[0] if node.args else next(iter(node.kwargs.values()))
            node.op, node.target = "call_function", torch.split
            node.args = (source, [size(s, block) for s in slots])
            node.kwargs = {"dim": dim}
        elif kind == "reshape":
            _rewrite_shape(node, *data, size=size)
    gm.recompile()


def _rewrite_shape(node: fx.Node, dim: int, slot: int, block: int, size: Sizer) -> None:
    rest = list(node.args[1:])
    packed = len(rest) == 1 and isinstance(rest[0], (tuple, list))
    shape = list(rest[0]) if packed else rest
    if dim < len(shape) and isinstance(shape[dim], int) and shape[dim] != -1:
        shape[dim] = size(slot, block)
    node.args = (node.args[0], tuple(shape)) if packed else (node.args[0], *shape)
