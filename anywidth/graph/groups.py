"""Find the channel groups of a model: `channel_groups`, and width plans over them.

A channel group is a set of tensor dimensions, across layers, that must keep the same size
and the same channel order: a conv's output channels, the BN after it, the next conv's
input channels, every branch of a residual add, one segment of a concatenation, a
depthwise conv's in = out channels, an SE gate. Everything else in anywidth refers to
groups by name.

How the harder cases are handled:

- **Slicing** (``x[:, :c]``, ``split``, ``chunk``): the sliced channels become groups of
  their own; every tensor tied to the sliced one is split at the same place, so ReXNet's
  ``cat([out[:, :c] + x, out[:, c:]])`` gives one group for ``x`` and the first ``c``
  outputs, and one for the rest. `cut` recomputes slice bounds and split sizes.
- **Grouped conv** (``1 < groups < channels``): channel ``k`` of every conv group is tied
  into one channel, so a cut keeps the same channels in each group and ``groups`` stays
  valid. GroupNorm is handled the same way. A depthwise conv ties its input and output.
- **Flatten into a Linear**: after flattening ``(C, H, W)``, channel ``c`` owns the
  ``H * W`` features ``c*H*W ...``; the member records that as ``block``. Any reshape
  (``flatten``, ``view``, ``reshape``, ``squeeze``...) is followed from its input and output
  shapes, in function, method or module form.
- **Functional layers** (``F.batch_norm``, ``F.conv2d``, ``F.linear``, ``F.layer_norm``,
  ``F.group_norm``, ``F.embedding`` on a module's own tensors, as in timm's ``BatchNormAct2d``
  or ``LayerNorm2d``) couple like the module form; their tensors may be computed from the
  module's parameters (weight standardisation, a concatenation of biases).
- **Constants and buffers** that no layer's channels flow through (a relative-position
  index, a mask, a tensor made in ``forward``) are never groups of their own.
- **Anything else**: an op without a rule fixes the groups that touch it, with a warning.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from anywidth.graph._analysis import Analyzer, analyze
from anywidth.graph._types import ChannelGroup, GraphError, Member, PlanError
from anywidth.record import input_spec

__all__ = [
    "Analysis",
    "ChannelGroup",
    "Member",
    "GraphError",
    "PlanError",
    "analyze_channels",
    "channel_groups",
    "group_sizes",
    "keep_first",
    "match_names",
]


def channel_groups(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    fixed: Iterable[str] = (),
) -> list[ChannelGroup]:
    """Trace ``model`` and return its channel groups, in graph order.

    The model is traced with torch.fx and run once on ``example_input`` (in eval mode, no
    gradients; the caller's model is not changed) to learn every tensor's shape. Groups
    touching an op whose channel semantics anywidth does not know are fixed, with a logged
    warning naming the node; so are the model's input channels and its outputs.

    Args:
        model: the network to analyse.
        example_input: a tensor (or tuple of tensors) of the shape the model expects.
        fixed: names or glob patterns of further groups to keep whole, e.g.
            ``["layer3.*", "fc:out"]``.

    Returns:
        One `ChannelGroup` per set of coupled channels that has parameters or buffers.

    Raises:
        GraphError: the model cannot be traced; the message names the module and the fix.
        PlanError: a ``fixed`` pattern matches no group.

    Example:
        >>> model = anywidth.create_model("resnet20")
        >>> groups = channel_groups(model, torch.randn(1, 3, 32, 32), fixed=["layer3.*"])
        >>> [(g.name, g.size, g.fixed) for g in groups][:3]
        [('input:x', 3, True), ('conv1:out', 16, False), ('layer1.0.conv1:out', 16, False)]
    """
    return analyze_channels(model, example_input, fixed).groups


@dataclass
class Analysis:
    """One trace and channel analysis of a model, reusable by everything that needs it.

    `channel_groups` returns only the groups; pass an `Analysis` as ``groups=`` to `cut`,
    `Cutter`, `WidthCost` and `width_agnostic` to skip their own trace of the same model.

    Attributes:
        groups: the channel groups, as `channel_groups` returns them.

    Example:
        >>> analysis = analyze_channels(model, x, fixed=["fc:out"])
        >>> cost = WidthCost(model, x, analysis)
        >>> small = cut(model, x, keep, groups=analysis)
    """

    model: nn.Module
    inputs: list[dict]  # `anywidth.record.input_spec` of the example input
    groups: list[ChannelGroup]
    ax: Analyzer
    collected: Collected

    def __iter__(self) -> Iterator[ChannelGroup]:
        """An analysis stands for its groups wherever a list of groups is expected."""
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)


def analyze_channels(
    model: nn.Module, example_input: torch.Tensor | tuple, fixed: Iterable[str] = ()
) -> Analysis:
    """Trace ``model`` once and find its channel groups: `channel_groups`, keeping the work.

    Args and raises as in `channel_groups`.
    """
    ax = analyze(model, example_input)
    collected = collect(ax)
    groups = _apply_fixed(collected.groups, fixed)
    return Analysis(model, input_spec(example_input), groups, ax, collected)


@dataclass
class Collected:
    """Groups of an analysed model, and which slot classes they came from."""

    groups: list[ChannelGroup]
    name_of_root: dict[int, str]

    @property
    def by_name(self) -> dict[str, ChannelGroup]:
        return {g.name: g for g in self.groups}


def collect(ax: Analyzer, fixed: Iterable[str] = ()) -> Collected:
    """Turn the analyzer's slot classes into named groups with their members."""
    table = ax.table
    members: dict[int, list[Member]] = {}
    for (name, dim), (slot, block) in ax.bindings.items():
        offset = 0
        for leaf in table.leaves(slot):
            member = Member(name, dim, offset * block, block)
            bucket = members.setdefault(table.find(leaf), [])
            if member not in bucket:
                bucket.append(member)
            offset += table.size[leaf]
    classes = table.classes()
    # A class of provisional leaves alone (a 1-d index, mask or constant table) holds no
    # layer's channels; a group is named after its first producer, not such a tensor.
    live = [root for root in members if not table.is_provisional(root)]
    first = {
        root: min(classes[root], key=lambda m: (table.provisional[m], table.key[m]))
        for root in live
    }  # the leaf that `SlotTable.class_name` names the class after
    groups, name_of_root, seen = [], {}, set()
    for root in sorted(live, key=lambda r: table.key[first[r]]):
        base = name = table.leaf_name(first[root])
        while name in seen:
            name = f"{base}#{len([n for n in seen if n.startswith(base)]) + 1}"
        seen.add(name)
        name_of_root[root] = name
        size = table.size[first[root]]
        groups.append(ChannelGroup(name, size, table.is_fixed(root), tuple(members[root])))
    return Collected(_apply_fixed(groups, fixed), name_of_root)


def match_names(patterns: Iterable[str], names: Sequence[str], owner: str, noun: str) -> set[str]:
    """The names that the patterns (exact names or globs) pick; each must pick one.

    An exact name wins over a glob: names such as ``"stem:out[0:3]"`` contain brackets.

    Raises:
        PlanError: "<owner> pattern 'p' matches no <noun>", with close names suggested.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen: set[str] = set()
    for pattern in patterns:
        matched = [pattern] if pattern in names else fnmatch.filter(names, pattern)
        if not matched:
            raise PlanError(
                f"{owner} pattern {pattern!r} matches no {noun}{_suggest(pattern, names)}"
            )
        chosen.update(matched)
    return chosen


def _apply_fixed(groups: list[ChannelGroup], patterns: Iterable[str]) -> list[ChannelGroup]:
    names = [g.name for g in groups]
    chosen = match_names(patterns, names, "fixed", "channel group")
    return [replace(g, fixed=True) if g.name in chosen else g for g in groups]


def _suggest(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if close:
        return f"; did you mean {', '.join(map(repr, close))}?"
    sample = ", ".join(repr(n) for n in names[:4])
    return f"; names are like {sample}" if names else "; the model has none"


def lookup(by_name: Mapping[str, ChannelGroup], name: str) -> ChannelGroup:
    """The group called ``name``, or a `PlanError` suggesting close names."""
    if name not in by_name:
        raise PlanError(f"unknown channel group {name!r}{_suggest(name, list(by_name))}")
    return by_name[name]


def group_sizes(groups: Iterable[ChannelGroup]) -> dict[str, int]:
    """The width plan that keeps every group whole: ``{name: size}``.

    Example:
        >>> sizes = group_sizes(groups)
        >>> half = {n: max(1, s // 2) for n, s in sizes.items()}
    """
    return {g.name: g.size for g in groups}


def check_sizes(groups: Iterable[ChannelGroup], sizes: Mapping[str, int]) -> dict[str, int]:
    """Validate a size plan; returns the sizes of the groups that change."""
    by_name = {g.name: g for g in groups}
    out = {}
    for name, size in sizes.items():
        group = lookup(by_name, name)
        size = int(size)
        if size == group.size:
            continue
        if group.fixed:
            raise PlanError(f"channel group {name!r} is fixed and cannot be resized")
        if not 1 <= size <= group.size:
            raise PlanError(
                f"size {size} for channel group {name!r} is outside 1..{group.size}; "
                "a group keeps at least one channel and cannot grow"
            )
        out[name] = size
    return out


def keep_first(groups: Iterable[ChannelGroup], sizes: Mapping[str, int]) -> dict[str, list[int]]:
    """Keep-sets that keep the first ``sizes[name]`` channels of each named group.

    Groups whose size does not change are left out (`cut` leaves them whole).

    Example:
        >>> keep = keep_first(groups, {"layer1.0.conv1:out": 8})
        >>> small = cut(model, x, keep)
    """
    return {name: list(range(size)) for name, size in check_sizes(groups, sizes).items()}


def analyze_groups(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    groups: Iterable[ChannelGroup] | Analysis | None = None,
) -> tuple[Analyzer, Collected, dict[str, ChannelGroup]]:
    """Trace and analyse ``model``: the analysis, its named groups, and the groups by name.

    The groups by name are the caller's ``groups`` (checked against the analysis) when given,
    else the fresh ones; unknown-op warnings are then quiet, the caller has seen them. An
    `Analysis` of this model and input shape is used as it is, without tracing again.
    """
    if isinstance(groups, Analysis):
        if groups.model is not model or groups.inputs != input_spec(example_input):
            raise PlanError(
                "the Analysis passed as groups was made for another model or input shape; "
                "call analyze_channels(model, example_input) for this one"
            )
        return groups.ax, groups.collected, {g.name: g for g in groups.groups}
    ax = analyze(model, example_input, quiet=groups is not None)
    collected = collect(ax)
    return ax, collected, resolve_groups(collected, groups)


def resolve_groups(
    collected: Collected, groups: Iterable[ChannelGroup] | None
) -> dict[str, ChannelGroup]:
    """The caller's groups (checked against a fresh analysis), or the fresh ones."""
    fresh = collected.by_name
    if groups is None:
        return fresh
    out = {}
    for group in groups:
        found = fresh.get(group.name)
        if found is None or found.members != group.members or found.size != group.size:
            raise PlanError(
                f"channel group {group.name!r} does not belong to this model and input; "
                "call channel_groups(model, example_input) again and pass its result"
            )
        out[group.name] = group if group.fixed or not found.fixed else found
    return out
