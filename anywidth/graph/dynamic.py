"""One model for every width plan: `width_agnostic`, and `plan_shapes` to validate tensors.

`cut` builds a new model per width plan. Training that samples a new width for every
channel group at every step (Integral Neural Networks) needs the opposite: one traced
module that runs at whatever width its tensors have. `width_agnostic` returns that
skeleton; run it with ``torch.func.functional_call(skeleton, tensors, (x,))``, where
``tensors`` has the shapes of some cut of the model (e.g. resampled weights carrying
autograd history).

Everything in the cut model that encodes a channel count is read from the tensors instead:

- layer attributes: depthwise convs, LayerNorm and InstanceNorm are replaced by small
  modules with the same parameter and buffer names that derive their counts from shapes
  (`anywidth.graph._dynamic_modules`); other layers already do;
- graph constants `cut` recomputes (slice bounds like ReXNet's ``out[:, :c_in]``, split and
  chunk sizes, explicit ``view`` sizes) become values of a ``width_plan`` submodule, which
  solves the group sizes from the shapes of the parameters and buffers it is given
  (`anywidth.graph._dynamic_plan`).
"""

from __future__ import annotations

import copy
import logging
import operator
from collections.abc import Iterable, Mapping
from dataclasses import replace

import torch
from torch import fx, nn

from anywidth.graph._affine import Form, FormOf, form_maker
from anywidth.graph._analysis import Analyzer
from anywidth.graph._dynamic_modules import make_modules_dynamic
from anywidth.graph._dynamic_plan import build_reader, unread_groups
from anywidth.graph._trace import check_runs, graph_module, lifted
from anywidth.graph._types import ChannelGroup, PlanError
from anywidth.graph.groups import (
    Analysis,
    Collected,
    analyze_groups,
    channel_groups,
    check_sizes,
)

__all__ = ["width_agnostic", "fix_unreadable", "plan_shapes"]

logger = logging.getLogger("anywidth.graph")


def width_agnostic(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    groups: Iterable[ChannelGroup] | None = None,
    *,
    check: bool = True,
) -> fx.GraphModule:
    """A traced copy of ``model`` that runs at the width plan its tensors have.

    For any keep-sets ``keep`` (of the groups that are not fixed),
    ``torch.func.functional_call(skeleton, tensors, (x,))`` with
    ``tensors = cut(model, x, keep).state_dict()`` (or other tensors of the same shapes,
    e.g. ones with autograd history) returns what ``cut(model, x, keep)(x)`` returns, in the
    same train/eval mode, and gradients flow to ``tensors`` (in training mode BatchNorm
    updates the running statistics in ``tensors``, as the cut model updates its own).
    Called plainly, the skeleton runs the full-width model with its own (copied) tensors.

    Parameter and buffer names are those of the model and of `cut` results. Python code of
    ``forward`` is frozen as traced, exactly as in `cut` (eval branches of
    ``if self.training``). Depthwise convs, LayerNorm and InstanceNorm reading a resizable
    group are replaced by modules that take their counts from their tensors. When the graph
    holds channel counts (slice bounds, split sizes, view shapes), or with ``check``, a
    ``width_plan`` submodule (no tensors of its own) reads the group sizes from the tensors
    at every call. A plain conv net (e.g. resnet20) with ``check=False`` is just the traced
    copy of the model. A group whose size the graph needs but no tensor shape determines
    is kept whole, with a logged warning (see `fix_unreadable`).

    Args:
        model: the network (not changed).
        example_input: a tensor (or tuple) of the shape the model expects.
        groups: the result of `channel_groups` for this model and input, e.g. with extra
            ``fixed`` groups (those must then keep their size), or its `Analysis`
            (`analyze_channels`: no new trace); computed when omitted.
        check: at every call, check that all parameters and buffers have the shapes of one
            width plan, raising `PlanError` naming the tensor that does not fit. Costs a
            Python loop over the tensors' shapes per call; without it, tensors of wrong
            shapes still fail in the layer that reads them (a torch ``RuntimeError``) unless
            they happen to fit together, e.g. a smaller classifier output.

    Returns:
        The skeleton, a ``torch.fx.GraphModule`` in ``model``'s train/eval mode.

    Raises:
        GraphError: the model cannot be traced, or a layer that needs a dynamic channel
            count has a custom ``forward``.
        PlanError: ``groups`` do not belong to this model and input.

    Example:
        >>> model = anywidth.create_model("rexnet_100", num_classes=10, small_input=True)
        >>> x = torch.randn(2, 3, 32, 32)
        >>> groups = channel_groups(model.eval(), x)
        >>> skeleton = width_agnostic(model, x, groups)  # once
        >>> for size in (40, 20, 7):  # a new width plan at every step
        ...     small = cut(model, x, keep_first(groups, {"blocks.1.expand.0:out": size}))
        ...     y = torch.func.functional_call(skeleton, dict(small.state_dict()), (x,))
        ...     assert torch.allclose(y, small(x))
    """
    ax, collected, by_name = analyze_groups(model, example_input, groups)
    free = _fix_unreadable(model, ax, collected, by_name)
    form = form_maker(ax.table, collected.name_of_root, {g.name: i for i, g in enumerate(free)})
    skeleton = graph_module(copy.deepcopy(model), copy.deepcopy(ax.gm.graph), lifted(ax.gm))
    make_modules_dynamic(skeleton, ax, form)
    _make_constants_dynamic(skeleton, ax, form, free, check)
    check_runs(skeleton, example_input, ax.output_shapes, "the skeleton")
    skeleton.training = model.training
    return skeleton


def fix_unreadable(
    model: nn.Module, example_input: torch.Tensor | tuple, groups: Iterable[ChannelGroup]
) -> list[ChannelGroup]:
    """``groups`` with those `width_agnostic` cannot resize marked fixed, with a warning.

    A skeleton reads a group's size from a tensor dimension in which it is the only group
    of unknown size. When the graph holds a channel count (a slice bound, split or view
    size) that depends on groups no tensor shape determines that way (they only ever
    appear together), they are kept whole one at a time, the smallest first, until the
    others can be read. A logged warning (logger ``anywidth.graph``) names the groups
    fixed; every other group stays as it is. Call it on the groups of a model that will be
    resampled through a skeleton, so that no plan resizes a group the skeleton cannot read.

    Args:
        model: the network (not changed).
        example_input: a tensor (or tuple) of the shape the model expects.
        groups: the result of `channel_groups` for this model and input, or its
            `Analysis` (`analyze_channels`: no new trace).

    Returns:
        The groups, in the same order, some of them now fixed.

    Raises:
        PlanError: ``groups`` do not belong to this model and input.

    Example:
        >>> groups = fix_unreadable(model, x, channel_groups(model, x))
        >>> skeleton = width_agnostic(model, x, groups)  # fixes (and warns about) nothing more
    """
    if not isinstance(groups, Analysis):
        groups = list(groups)  # read twice below
    ax, collected, by_name = analyze_groups(model, example_input, groups)  # reuses an Analysis
    _fix_unreadable(model, ax, collected, by_name)
    return [by_name[g.name] for g in groups]


def _fix_unreadable(
    model: nn.Module, ax: Analyzer, collected: Collected, by_name: dict[str, ChannelGroup]
) -> list[ChannelGroup]:
    """Fix, in ``by_name``, groups the graph needs but no shape gives; return the free ones.

    One at a time, the smallest first: fixing a group turns its size into a constant, which
    can make the groups it appeared with readable.
    """
    shapes = {n: tuple(t.shape) for n, t in _named_tensors(model).items()}
    fixed = []
    while True:
        free = [g for g in by_name.values() if not g.fixed]
        form = form_maker(ax.table, collected.name_of_root, {g.name: i for i, g in enumerate(free)})
        forms = _plan_forms(rewrite.forms(form) for rewrite in ax.rewrites)
        missing = unread_groups(shapes, free, forms)
        if not missing:
            break
        group = min((free[i] for i in missing), key=lambda g: g.size)
        by_name[group.name] = replace(group, fixed=True)
        fixed.append(group.name)
    if fixed:
        logger.warning(
            "fixing channel group(s) %s, which will not be resized: the graph needs their "
            "size (a slice bound, split or view size), but no parameter or buffer shape "
            "determines it (they only appear together with other groups)",
            ", ".join(repr(name) for name in fixed),
        )
    return free


def plan_shapes(
    model: nn.Module,
    example_input: torch.Tensor | tuple | None,
    groups: Iterable[ChannelGroup] | None,
    sizes: Mapping[str, int],
) -> dict[str, torch.Size]:
    """The shape of every parameter and buffer of ``model`` cut to ``sizes``.

    A member ``(dim, offset, block)`` of a group resized from ``n`` to ``m`` channels
    shortens that dimension by ``(n - m) * block``. With ``groups`` given nothing is traced,
    so this is cheap enough to validate tensors at every training step.

    Args:
        model: the full-width network (only its tensors' shapes are read).
        example_input: the input to find the groups on; unused when ``groups`` is given.
        groups: the model's `channel_groups`; computed when None.
        sizes: ``{group name: size}``; groups not named keep their size.

    Returns:
        ``{name: shape}`` for every parameter and buffer (shared ones under each name),
        equal to the shapes in ``cut(model, x, keep_first(groups, sizes)).state_dict()``.

    Raises:
        PlanError: unknown or fixed group, size outside ``1..size``, or groups that do not
            belong to this model.

    Example:
        >>> groups = channel_groups(model, x)
        >>> plan_shapes(model, x, groups, {"conv1:out": 8})["conv1.weight"]
        torch.Size([8, 3, 3, 3])
    """
    if groups is None:
        groups = channel_groups(model, example_input)
    groups = list(groups)
    new_sizes = check_sizes(groups, sizes)
    shapes = {n: list(t.shape) for n, t in _named_tensors(model).items()}
    for group in groups:
        if group.name not in new_sizes:
            continue
        for m in group.members:
            if m.name not in shapes or m.dim >= len(shapes[m.name]):
                raise PlanError(
                    f"channel group {group.name!r} names {m.name!r} dimension {m.dim}, which "
                    "this model does not have; pass the model's own channel_groups"
                )
            shapes[m.name][m.dim] -= (group.size - new_sizes[group.name]) * m.block
    return {name: torch.Size(shape) for name, shape in shapes.items()}


def _named_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    out = dict(module.named_parameters(remove_duplicate=False))
    out.update(module.named_buffers(remove_duplicate=False))
    return out


def _make_constants_dynamic(
    gm: fx.GraphModule, ax: Analyzer, form: FormOf, free: list[ChannelGroup], check: bool
) -> None:
    """Compute the channel counts `cut` rewrites (slices, splits, views) from tensor shapes."""
    needed = [(rewrite, rewrite.forms(form)) for rewrite in ax.rewrites]
    forms = _plan_forms(fs for _, fs in needed)
    if not forms and not check:
        return
    tensors = {n: tuple(t.shape) for n, t in _named_tensors(gm).items()}
    reader = build_reader(tensors, free, forms, check)
    values = _insert_reader(gm, reader)
    nodes = {n.name: n for n in gm.graph.nodes}
    for rewrite, fs in needed:
        new = [values[forms.index(f)] if f.coefs else f.const for f in fs]
        rewrite.apply(nodes[rewrite.node], new)
    gm.recompile()


def _plan_forms(form_lists: Iterable[list[Form]]) -> list[Form]:
    """The distinct forms that depend on the plan, in first-seen order."""
    return list(dict.fromkeys(f for fs in form_lists for f in fs if f.coefs))


def _insert_reader(gm: fx.GraphModule, reader: nn.Module) -> list[fx.Node]:
    """Call ``reader`` on its tensors right after the placeholders; one node per value."""
    name = "width_plan"
    while hasattr(gm, name):
        name += "_"
    gm.add_submodule(name, reader.train(gm.training))
    graph = gm.graph
    first = next(n for n in graph.nodes if n.op != "placeholder")
    with graph.inserting_before(first):
        args = tuple(graph.get_attr(t) for t in reader.names)
        plan = graph.call_module(name, args)
        return [graph.call_function(operator.getitem, (plan, i)) for i in range(len(reader.forms))]
