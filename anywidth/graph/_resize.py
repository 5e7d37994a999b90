"""The mechanics of a cut: slice tensors, update layer attributes, rewrite graph constants."""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence

import torch
from torch import fx, nn
from torch.nn.utils import parametrize

from anywidth.graph._affine import form_maker
from anywidth.graph._analysis import Analyzer, Channels
from anywidth.graph._types import ChannelGroup, PlanError
from anywidth.graph.layers import spec_for

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
    """New lengths of slots once some groups keep fewer channels.

    ``sizer(slot, block)`` (or ``sizer.form(slot, block).value(sizer.sizes)``) is the
    slot's length after the cut: the affine `Form` of `anywidth.graph._affine` evaluated at
    the new group sizes.
    """

    def __init__(
        self, ax: Analyzer, groups: Sequence[ChannelGroup], name_of_root: Mapping[int, str],
        sizes: Mapping[str, int],
    ) -> None:  # fmt: skip
        index = {g.name: i for i, g in enumerate(groups)}
        self.form = form_maker(ax.table, name_of_root, index)
        self.sizes = [sizes.get(g.name, g.size) for g in groups]
        self.changed = dict(sizes)  # {group: new size} of the groups that were cut

    def __call__(self, slot: int | None, block: int = 1) -> int:
        return self.form(slot, block).value(self.sizes)

    def channels(self, channels: Channels) -> int:
        return self(channels.slot, channels.block)


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
    held = dict(module.named_parameters(remove_duplicate=False))
    held.update(module.named_buffers(remove_duplicate=False))
    skipped = {id(held[n]) for n in skip if n in held}  # replaced under this or another name
    for gname, kept in keep.items():
        group = groups[gname]
        for m in group.members:
            full = tensor_of(m.name).shape
            shape = shapes.setdefault(m.name, list(full))
            shape[m.dim] -= (group.size - len(kept)) * m.block  # shape after the cut
            if id(tensor_of(m.name)) in skipped:
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
    # a tensor held under several names (a shared module) is cut under one of them
    by_tensor = {id(names[n]): shape for n, shape in shapes.items() if n in names}
    out = {}
    for name, tensor in replace.items():
        if name not in names:
            from anywidth.graph.groups import _suggest

            raise PlanError(f"replacement for unknown tensor {name!r}{_suggest(name, list(names))}")
        old = names[name]
        expected = shapes.get(name, by_tensor.get(id(old), tuple(old.shape)))
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

    Tensors shared by several modules (tied weights) stay shared, as one copy; a tensor in
    ``done`` stays as it is under every name it has (a module shared by several parents,
    as CoaT's position encodings).
    """
    tables = [
        (f"{owner_name}." if owner_name else "", table)
        for owner_name, owner in module.named_modules(remove_duplicate=False)
        for table in (owner._parameters, owner._buffers)
    ]
    kept = {
        id(tensor)
        for prefix, table in tables
        for attr, tensor in table.items()
        if tensor is not None and f"{prefix}{attr}" in done
    }
    # Each entry holds the original too, so that its id cannot be reused while we run.
    clones: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for _, table in tables:
        for attr, tensor in table.items():
            if tensor is None or id(tensor) in kept:
                continue
            if id(tensor) not in clones:
                if isinstance(tensor, nn.Parameter):
                    copy_ = nn.Parameter(
                        tensor.detach().clone(), requires_grad=tensor.requires_grad
                    )
                else:
                    copy_ = tensor.clone()
                clones[id(tensor)] = (tensor, copy_)
            table[attr] = clones[id(tensor)][1]


def resize_modules(root: nn.Module, ax: Analyzer, size: Sizer) -> None:
    """Update the channel attributes of every layer the analysis recorded (`LayerSpec.resize`),
    and of the modules whose tensors a functional layer call reads (``F.batch_norm(x, ...,
    self.weight, self.bias)``)."""
    for name, io in ax.module_io.items():
        module = root.get_submodule(name)
        spec = spec_for(module)
        if spec is not None and spec.resize is not None:
            spec.resize(module, io, size.channels)
    for layer in ax.functional:
        layer.resize(root.get_submodule(layer.owner), layer.io, size.channels)


def rewrite_graph(graph: fx.Graph, ax: Analyzer, size: Sizer) -> None:
    """Recompute graph constants that hold channel counts (slices, split sizes, shapes)."""
    nodes = {n.name: n for n in graph.nodes}
    for rewrite in ax.rewrites:
        forms = rewrite.forms(size.form)
        rewrite.apply(nodes[rewrite.node], [f.value(size.sizes) for f in forms])
