"""The mechanics of a cut: slice tensors, update layer attributes, rewrite graph constants."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping
from typing import Any

import torch
from torch import fx, nn
from torch.nn.utils import parametrize

from anywidth.graph._analysis import Analyzer
from anywidth.graph._types import ChannelGroup, PlanError

__all__ = [
    "Sizer",
    "check_replacements",
    "clone_other_tensors",
    "copy_structure",
    "cut_tensors",
    "install_tensors",
    "resize_modules",
    "rewrite_graph",
]


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


def cut_tensors(
    module: nn.Module,
    groups: Mapping[str, ChannelGroup],
    keep: Mapping[str, list[int]],
    skip: Collection[str] = (),
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[int, ...]]]:
    """The cut version of every parameter/buffer that holds channels of a cut group.

    Returns:
        ``(tensors, shapes)``: the sliced tensors, leaving out the names in ``skip`` (the
        caller replaces those), and the shape after the cut of every tensor that changes.
    """
    modules = dict(module.named_modules(remove_duplicate=False))

    def tensor_of(name: str) -> torch.Tensor:
        owner, _, attr = name.rpartition(".")
        return getattr(modules[owner], attr)

    shapes: dict[str, list[int]] = {}
    masks: dict[tuple[str, int], torch.Tensor] = {}
    for gname, kept in keep.items():
        group = groups[gname]
        for m in group.members:
            full = tensor_of(m.name).shape
            shape = shapes.setdefault(m.name, list(full))
            shape[m.dim] -= (group.size - len(kept)) * m.block  # shape after the cut
            if m.name in skip:
                continue
            mask = masks.setdefault((m.name, m.dim), torch.ones(full[m.dim], dtype=torch.bool))
            mask[m.offset : m.offset + group.size * m.block] = False
            mask[m.indices(kept)] = True
    out: dict[str, torch.Tensor] = {}
    for (name, dim), mask in masks.items():
        tensor = out.get(name, tensor_of(name))
        index = mask.nonzero().squeeze(1).to(tensor.device)
        out[name] = tensor.detach().index_select(dim, index)
    return out, {name: tuple(shape) for name, shape in shapes.items()}


def check_replacements(
    module: nn.Module, shapes: Mapping[str, tuple[int, ...]], replace: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Caller-supplied tensors, checked against the shapes after the cut (``shapes``, else
    the current shape) and cast to the dtype and device of the tensors they replace."""
    names = dict(module.named_parameters(remove_duplicate=False))
    names.update(module.named_buffers(remove_duplicate=False))
    out = {}
    for name, tensor in replace.items():
        if name not in names:
            from anywidth.graph.groups import _suggest

            raise PlanError(f"replacement for unknown tensor {name!r}{_suggest(name, list(names))}")
        old = names[name]
        expected = shapes.get(name, tuple(old.shape))
        if tuple(tensor.shape) != expected:
            raise PlanError(
                f"replacement for {name!r} has shape {tuple(tensor.shape)}, expected "
                f"{expected} after the cut"
            )
        out[name] = tensor.detach().to(dtype=old.dtype, device=old.device)
    return out


def install_tensors(module: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Put copies of new tensors in place, as parameters or buffers like the ones they replace."""
    for name, tensor in tensors.items():
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        old = getattr(owner, attr)
        if isinstance(old, nn.Parameter):
            owner._parameters[attr] = nn.Parameter(tensor.clone(), requires_grad=old.requires_grad)
        else:
            owner._buffers[attr] = tensor.clone()


def copy_structure(model: nn.Module) -> nn.Module:
    """A copy of ``model`` and of every submodule in it, sharing their tensors for now.

    Much faster than ``copy.deepcopy``: each module object is copied shallowly, with fresh
    dictionaries (parameters, buffers, children, hooks) and lists, so changing the copy's
    attributes or replacing its tensors leaves ``model`` alone. The tensors themselves are
    still the originals: replace or clone every one of them (`install_tensors`,
    `clone_other_tensors`). Models with parametrizations (``torch.nn.utils.parametrize``)
    are deep-copied instead.
    """
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        return copy.deepcopy(model)
    copies: dict[int, nn.Module] = {}

    def one(module: nn.Module) -> nn.Module:
        if id(module) in copies:  # a module used twice stays one module
            return copies[id(module)]
        new = object.__new__(type(module))
        state = {k: v.copy() if isinstance(v, (dict, list)) else v for k, v in vars(module).items()}
        state["_modules"] = {k: None if v is None else one(v) for k, v in module._modules.items()}
        object.__setattr__(new, "__dict__", state)
        copies[id(module)] = new
        return new

    return one(model)


def clone_other_tensors(module: nn.Module, done: Collection[str]) -> None:
    """Give ``module`` its own copy of every parameter and buffer not named in ``done``.

    Tensors shared by several modules (tied weights) stay shared, as one copy.
    """
    clones: dict[int, torch.Tensor] = {}
    for owner_name, owner in module.named_modules(remove_duplicate=False):
        prefix = f"{owner_name}." if owner_name else ""
        for table in (owner._parameters, owner._buffers):
            for attr, tensor in table.items():
                if tensor is None or f"{prefix}{attr}" in done:
                    continue
                if id(tensor) not in clones:
                    if isinstance(tensor, nn.Parameter):
                        clones[id(tensor)] = nn.Parameter(
                            tensor.detach().clone(), requires_grad=tensor.requires_grad
                        )
                    else:
                        clones[id(tensor)] = tensor.clone()
                table[attr] = clones[id(tensor)]


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


def resize_modules(root: nn.Module, ax: Analyzer, size: Sizer) -> None:
    """Update in/out channel attributes of every layer the analysis recorded."""
    for name, io in ax.module_io.items():
        module = root.get_submodule(name)
        for cls in type(module).__mro__:
            if cls in _RESIZERS:
                _RESIZERS[cls](module, io, size)
                break


def rewrite_graph(graph: fx.Graph, ax: Analyzer, size: Sizer) -> None:
    """Recompute graph constants that hold channel counts (slices, split sizes, shapes)."""
    nodes = {n.name: n for n in graph.nodes}
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


def _rewrite_shape(node: fx.Node, dim: int, slot: int, block: int, size: Sizer) -> None:
    rest = list(node.args[1:])
    packed = len(rest) == 1 and isinstance(rest[0], (tuple, list))
    shape = list(rest[0]) if packed else rest
    if dim < len(shape) and isinstance(shape[dim], int) and shape[dim] != -1:
        shape[dim] = size(slot, block)
    node.args = (node.args[0], tuple(shape)) if packed else (node.args[0], *shape)
