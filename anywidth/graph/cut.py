"""`cut`: build the physically smaller model for a set of kept channels.

This is the only code in anywidth that builds smaller layers; pruning, INN export and TAS
export all end here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import fx, nn

from anywidth.graph._analysis import Analyzer, analyze
from anywidth.graph._resize import (
    Sizer,
    check_replacements,
    cut_tensors,
    install_tensors,
    resize_modules,
    rewrite_graph,
)
from anywidth.graph._trace import as_inputs, graph_module
from anywidth.graph._types import ChannelGroup, PlanError
from anywidth.graph.groups import collect, lookup, resolve_groups

__all__ = ["cut"]


def cut(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    keep: Mapping[str, Sequence[int] | torch.Tensor],
    *,
    groups: Iterable[ChannelGroup] | None = None,
    replace: Mapping[str, torch.Tensor] | None = None,
) -> fx.GraphModule:
    """A new, smaller model that keeps only the given channels of each named group.

    Every parameter and buffer holding a cut group's channels is sliced (kept channels stay
    in ascending order, whatever order ``keep`` lists them in), layer attributes follow
    (``in_channels``, ``out_channels``, ``groups`` of a depthwise conv, ``num_features``,
    ``normalized_shape``...), and graph constants that hold channel counts (slice bounds
    such as ``out[:, :c]``, split sizes, explicit ``view`` shapes) are recomputed. Its
    output equals the original's with the removed channels zeroed wherever they appear,
    except where a layer normalises across channels (LayerNorm over channels, GroupNorm),
    whose statistics are then taken over the kept channels.

    The result is a ``torch.fx.GraphModule`` traced from a deep copy of ``model`` (in eval
    mode): its submodules are the deep-copied originals (``nn.Conv2d``, ``nn.Sequential``...)
    with smaller weights, under the same names, so ``small.layer1[0].conv1`` and the
    ``state_dict`` keys are unchanged. Python-level code of ``forward`` is frozen as traced:
    branches on ``self.training`` take their eval path, and channel counts written in it
    (``out[:, :self.c_in]``) are replaced by the new ones. Methods other than ``forward``
    are not carried over. The caller's model is not changed.

    Args:
        model: the network to cut.
        example_input: a tensor (or tuple) of the shape the model expects.
        keep: ``{group name: kept channel indices}``; groups not listed stay whole.
        groups: the result of `channel_groups` for this model and input, e.g. with extra
            ``fixed`` groups; computed when omitted.
        replace: ``{parameter or buffer name: tensor}`` to use instead of the sliced tensor
            (INN resampling supplies these); each must have the shape after the cut.

    Returns:
        The smaller model, in the caller's model's train/eval mode.

    Raises:
        PlanError: unknown or fixed group, empty keep-set, index out of range or repeated,
            replacement of the wrong shape or for an unknown tensor.
        GraphError: the model cannot be traced.

    Example:
        >>> model, x = anywidth.create_model("resnet20"), torch.randn(1, 3, 32, 32)
        >>> groups = channel_groups(model, x)
        >>> small = cut(model, x, keep_first(groups, {"layer1.0.conv1:out": 8}))
        >>> small.layer1[0].conv1.out_channels
        8
    """
    ax = analyze(model, example_input, quiet=groups is not None)
    collected = collect(ax)
    by_name = resolve_groups(collected, groups)
    plan = _check_keep(by_name, keep)
    new = graph_module(copy.deepcopy(model), copy.deepcopy(ax.gm.graph))
    tensors = cut_tensors(new, by_name, plan)
    install_tensors(new, check_replacements(new, tensors, replace or {}))
    sizer = Sizer(ax, collected.name_of_root, {name: len(idx) for name, idx in plan.items()})
    resize_modules(new, ax, sizer)
    rewrite_graph(new, ax, sizer)
    _check_runs(new, example_input, ax)
    new.training = model.training
    return new


def _check_keep(
    by_name: Mapping[str, ChannelGroup], keep: Mapping[str, Sequence[int] | torch.Tensor]
) -> dict[str, list[int]]:
    """Validated keep-sets, each sorted ascending."""
    plan = {}
    for name, indices in keep.items():
        group = lookup(by_name, name)
        if isinstance(indices, torch.Tensor):
            indices = indices.tolist()
        kept = [int(i) for i in indices]
        if group.fixed:
            if sorted(kept) == list(range(group.size)):
                continue
            raise PlanError(
                f"channel group {name!r} is fixed (model input/output, an op anywidth cannot "
                "follow, or fixed by the caller) and cannot be cut; leave it out of keep"
            )
        if not kept:
            raise PlanError(
                f"keep-set for channel group {name!r} is empty; keep at least one channel, "
                "or leave the group out of keep to keep it whole"
            )
        bad = sorted({i for i in kept if not 0 <= i < group.size})
        if bad:
            raise PlanError(
                f"keep-set for channel group {name!r} has index(es) {bad[:5]} out of range "
                f"0..{group.size - 1}"
            )
        if len(set(kept)) != len(kept):
            repeated = sorted({i for i in kept if kept.count(i) > 1})
            raise PlanError(f"keep-set for channel group {name!r} repeats index(es) {repeated[:5]}")
        plan[name] = sorted(kept)
    return plan


@torch.no_grad()
def _check_runs(gm: fx.GraphModule, example_input, ax: Analyzer) -> None:
    """Run the cut model once: its outputs must have the original shapes."""
    modes = {m: m.training for m in gm.modules()}
    gm.eval()
    try:
        inputs = tuple(
            t.clone() if isinstance(t, torch.Tensor) else t for t in as_inputs(example_input)
        )
        out = gm(*inputs)
    except Exception as exc:
        raise RuntimeError(f"anywidth internal error: the cut model does not run: {exc}") from exc
    finally:
        for m, mode in modes.items():
            m.training = mode
    shapes: list[tuple[int, ...]] = []
    fx.node.map_aggregate(
        out, lambda v: shapes.append(tuple(v.shape)) if isinstance(v, torch.Tensor) else None
    )
    if shapes != ax.output_shapes:
        raise RuntimeError(
            f"anywidth internal error: cut changed the output shapes {ax.output_shapes} to {shapes}"
        )
