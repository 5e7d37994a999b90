"""The TAS supernet: one copy of the model whose layers mix candidate widths and depths.

Every searched channel group keeps its full size in the tensors; at the modules that write
its channels the output is replaced by the mix of the sampled candidates:
``Σ_j w_j · CWI(N_j(O[:, :C_j]), C_max)``, zero-padded from ``C_max`` (the largest sampled
width) to the full size, where ``N_j`` is candidate ``j``'s own BatchNorm (a BatchNorm
writing the group becomes one per candidate, initialised from its leading channels) or
the identity (a conv or linear writing the group with no BatchNorm right after it). The
zero channels are what a narrower layer's missing channels contribute downstream, so with
one candidate of weight 1 per group (the argmax) the supernet computes the cut model.

A run of skippable blocks outputs ``Σ_k w_k · O_k``, ``O_k`` the output after its first
``k`` blocks (CWI is the identity: the blocks keep their shape); blocks past the largest
sampled ``k`` are not run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from anywidth.graph import ChannelGroup
from anywidth.search.ops import cwi

__all__ = ["Choices", "GroupSite", "sites_of", "build_supernet"]

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PRODUCERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

Pick = list[tuple[int, torch.Tensor | float]]


@dataclass
class Choices:
    """The candidates in use, per searched group and per run, with their weights."""

    widths: list[Pick] = field(default_factory=list)
    depths: list[Pick] = field(default_factory=list)
    outputs: dict[int, list[torch.Tensor]] = field(default_factory=dict)


@dataclass
class GroupSite:
    """Where a group's channels are written: BatchNorms (mixed with their own statistics)
    and convs/linears not followed by one of those (mixed as they are), each with the
    number of copies of the group its channel dimension holds (several when a grouped
    conv ties channel ``k`` of every conv group: copy ``i`` is ``[i·C, (i+1)·C)``)."""

    norms: dict[str, int]
    producers: dict[str, int]


def _module_of(member_name: str) -> str:
    return member_name.rpartition(".")[0]


def _copies(offsets: set[int], size: int, length: int) -> int | None:
    """How many whole copies of a ``size``-channel group fill ``length`` at ``offsets``."""
    n, rest = divmod(length, size)
    return n if not rest and offsets == {i * size for i in range(n)} else None


def sites_of(model: nn.Module, gm: fx.GraphModule, group: ChannelGroup) -> GroupSite | str:
    """The modules that write ``group``, or why the search cannot resize it."""
    writes: dict[str, set[int]] = {}
    for m in group.members:
        name = _module_of(m.name)
        module = model.get_submodule(name)
        if m.block != 1 and m.dim == 0:
            return f"module {name!r} holds it in blocks"
        if isinstance(module, _NORMS) or (isinstance(module, _PRODUCERS) and m.dim == 0):
            writes.setdefault(name, set()).add(m.offset)
        elif not isinstance(module, _PRODUCERS):
            return f"module {name!r} ({type(module).__name__}) holds its channels"
    norms, producers = {}, {}
    for name, offsets in writes.items():
        module = model.get_submodule(name)
        length = module.num_features if isinstance(module, _NORMS) else module.weight.shape[0]
        copies = _copies(offsets, group.size, length)
        if copies is None:
            what = type(module).__name__
            return f"{what} {name!r} writes it together with other channels"
        (norms if isinstance(module, _NORMS) else producers)[name] = copies
    # A producer whose every call feeds only a BatchNorm of the group is mixed there.
    calls: dict[str, list[fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target in producers:
            calls.setdefault(node.target, []).append(node)
    for name, nodes in calls.items():
        users = [u for n in nodes for u in n.users]
        if len(users) == len(nodes) and all(
            u.op == "call_module" and u.target in norms for u in users
        ):
            del producers[name]
    return GroupSite(norms, producers)


def _mix(outs: list[tuple[torch.Tensor, torch.Tensor | float]], full: int, dim: int):
    """``Σ w · CWI(o, C_max)``, zero-padded to ``full`` channels along ``dim``."""
    widest = max(o.shape[dim] for o, _ in outs)
    mixed = None
    for out, weight in outs:
        term = cwi(out, widest, dim) * weight
        mixed = term if mixed is None else mixed + term
    if widest < full:
        shape = list(mixed.shape)
        shape[dim] = full - widest
        mixed = torch.cat([mixed, mixed.new_zeros(shape)], dim)
    return mixed


def _narrow_norm(norm: nn.Module, size: int, copies: int) -> nn.Module:
    """A copy of ``norm`` keeping the first ``size`` channels of each of its copies."""
    full = norm.num_features // copies
    index = torch.tensor([i * full + k for i in range(copies) for k in range(size)])
    new = copy.deepcopy(norm)
    new.num_features = len(index)
    for name in ("weight", "bias"):
        if getattr(norm, name) is not None:
            setattr(new, name, nn.Parameter(getattr(norm, name).detach()[index].clone()))
    for name in ("running_mean", "running_var"):
        if getattr(norm, name) is not None:
            setattr(new, name, getattr(norm, name)[index].clone())
    return new


def _split(x: torch.Tensor, dim: int, copies: int) -> torch.Tensor:
    """``dim`` (length ``copies·C``) as ``(copies, C)``; the channels are then ``dim + 1``."""
    dim = dim % x.dim()
    return x.unflatten(dim, (copies, x.shape[dim] // copies))


class MixedNorm(nn.Module):
    """A BatchNorm with one copy per candidate width, mixing the sampled ones."""

    def __init__(
        self, norm: nn.Module, sizes: list[int], slot: int, copies: int, choices: Choices
    ) -> None:
        super().__init__()
        self.norms = nn.ModuleList(_narrow_norm(norm, size, copies) for size in sizes)
        self.sizes, self.slot, self.copies = sizes, slot, copies
        self.choices = [choices]  # a list, so the shared state is not a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, copies·C, *)
        picks = self.choices[0].widths[self.slot]
        parts = _split(x, 1, self.copies)  # (B, copies, C, *)
        outs = []
        for j, w in picks:
            kept = parts[:, :, : self.sizes[j]].flatten(1, 2)  # (B, copies·C_j, *)
            outs.append((_split(self.norms[j](kept), 1, self.copies), w))
        return _mix(outs, parts.shape[2], 2).flatten(1, 2)


class MixedOutput(nn.Module):
    """A conv or linear whose output channels mix the sampled candidate widths."""

    def __init__(
        self, module: nn.Module, sizes: list[int], slot: int, copies: int, choices: Choices
    ) -> None:
        super().__init__()
        self.module, self.sizes, self.slot, self.copies = module, sizes, slot, copies
        self.linear = isinstance(module, nn.Linear)
        self.choices = [choices]

    def forward(self, *args, **kwargs) -> torch.Tensor:
        y = self.module(*args, **kwargs)  # (B, copies·C, *) or (*, copies·C)
        dim = y.dim() - 1 if self.linear else 1
        parts = _split(y, dim, self.copies)  # channels at dim + 1
        picks = self.choices[0].widths[self.slot]
        outs = [(parts.narrow(dim + 1, 0, self.sizes[j]), w) for j, w in picks]
        return _mix(outs, parts.shape[dim + 1], dim + 1).flatten(dim, dim + 1)


class RunBlock(nn.Module):
    """Block ``position`` of a run; the last one returns the mix of the sampled depths."""

    def __init__(self, block: nn.Module, run: int, position: int, length: int, choices) -> None:
        super().__init__()
        self.block, self.run, self.position, self.length = block, run, position, length
        self.choices = [choices]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        choices = self.choices[0]
        picks = choices.depths[self.run]
        if self.position == 0:
            choices.outputs[self.run] = [x]
        outputs = choices.outputs[self.run]
        deepest = max(k for k, _ in picks)
        y = self.block(x) if self.position < deepest else x
        outputs.append(y)
        if self.position < self.length - 1:
            return y
        mixed = None
        for k, w in picks:
            term = outputs[k] * w
            mixed = term if mixed is None else mixed + term
        del choices.outputs[self.run]
        return mixed


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    owner, _, attr = name.rpartition(".")
    setattr(model.get_submodule(owner) if owner else model, attr, new)


def build_supernet(
    model: nn.Module,
    sites: list[GroupSite],
    candidates: list[list[int]],
    runs: list[list[str]],
    choices: Choices,
) -> nn.Module:
    """A copy of ``model`` with its writing modules mixed and its runs made shallow-able."""
    net = copy.deepcopy(model)
    # Runs first: their names are those of the model; mixed modules live inside blocks.
    for r, run in enumerate(runs):
        for i, name in enumerate(run):
            _replace(net, name, RunBlock(net.get_submodule(name), r, i, len(run), choices))
    rename = {name: f"{name}.block" for run in runs for name in run}

    def moved(name: str) -> str:
        for old, new in rename.items():
            if name == old or name.startswith(old + "."):
                return new + name[len(old) :]
        return name

    for slot, (site, sizes) in enumerate(zip(sites, candidates, strict=True)):
        for name, copies in site.norms.items():
            target = moved(name)
            old = net.get_submodule(target)
            _replace(net, target, MixedNorm(old, sizes, slot, copies, choices))
        for name, copies in site.producers.items():
            target = moved(name)
            old = net.get_submodule(target)
            _replace(net, target, MixedOutput(old, sizes, slot, copies, choices))
    return net
