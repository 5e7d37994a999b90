"""`cut`: build the physically smaller model for a set of kept channels.

This is the only code in anywidth that builds smaller layers; pruning, INN export and TAS
export all end here.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import fx, nn

from anywidth.graph._resize import (
    Sizer,
    check_replacements,
    clone_other_tensors,
    copy_structure,
    cut_tensors,
    install_tensors,
    resize_modules,
    rewrite_graph,
)
from anywidth.graph._trace import (
    as_inputs,
    check_runs,
    graph_module,
    lifted,
    output_shapes,
    run_once,
)
from anywidth.graph._types import ChannelGroup, PlanError
from anywidth.graph.groups import analyze_groups, channel_groups, keep_first, lookup
from anywidth.record import add_step_, input_spec, zeros_like_spec

__all__ = ["Cutter", "cut", "replay_cut"]

logger = logging.getLogger("anywidth.graph")
_WHAT = "the cut model"


def cut(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    keep: Mapping[str, Sequence[int] | torch.Tensor],
    *,
    groups: Iterable[ChannelGroup] | None = None,
    replace: Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """A new, smaller model that keeps only the given channels of each named group.

    Every parameter and buffer holding a cut group's channels is sliced (kept channels stay
    in ascending order, whatever order ``keep`` lists them in), layer attributes follow
    (``in_channels``, ``out_channels``, ``groups`` of a depthwise conv, ``num_features``,
    ``normalized_shape``...), and graph constants that hold channel counts (slice bounds
    such as ``out[:, :c]``, split sizes, explicit ``view`` shapes) are recomputed. Its
    output equals the original's with the removed channels zeroed wherever they appear,
    except where a layer normalises across channels (LayerNorm over channels, GroupNorm, a
    conv weight standardised over its input channels as in timm's ``StdConv2d``), whose
    statistics are then taken over the kept channels. Layers called in functional form on
    a module's own tensors (``F.batch_norm(x, ..., self.weight, self.bias)`` in timm's
    ``BatchNormAct2d``) are cut like the module form, and that module's attributes follow.

    The result is a copy of ``model`` of its own class (``type(small) is type(model)``):
    every submodule is a copy of the original (``nn.Conv2d``, ``nn.Sequential``...) that
    shares no tensor with it, with smaller weights, under the same names, so
    ``small.layer1[0].conv1`` and the ``state_dict`` keys are unchanged, and its own
    ``forward`` and other methods run as written. That copy is returned only when it
    reproduces the traced cut on ``example_input``; a forward that writes channel counts
    (``out[:, :self.c_in]``, ``split(x, [4, 8])``) cannot, and then the result is a
    ``torch.fx.GraphModule`` whose graph constants hold the new counts, with a logged
    warning: its forward is frozen as traced (``if self.training`` takes its eval path) and
    it has no other methods. Reading counts from shapes (``x.shape[1]``) avoids that.

    The smaller model carries the `anywidth.record.ModelRecord` of ``model`` with one more
    step (the new group sizes), so ``save_checkpoint(path, small)`` and ``load_model(path)``
    need no further arguments for a zoo model. The caller's model is not changed.
    To cut one model to many plans, make a `Cutter` once: it keeps the trace and analysis
    that every call of `cut` redoes.

    Args:
        model: the network to cut.
        example_input: a tensor (or tuple) of the shape the model expects.
        keep: ``{group name: kept channel indices}``; groups not listed stay whole.
        groups: the result of `channel_groups` for this model and input, e.g. with extra
            ``fixed`` groups, or its `Analysis` (`analyze_channels`: no new trace);
            computed when omitted.
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
    return Cutter(model, example_input, groups=groups)(keep, replace=replace)


class Cutter:
    """`cut` for one model, many times: the trace and channel analysis are done once, here.

    Use it where one model is cut to many plans (budget searches, INN resampling). Each call
    copies the model's tensors as they are at that call, so weights may change between
    calls; the model's structure (its modules and forward) must not.

    Args:
        model: the network to cut.
        example_input: a tensor (or tuple) of the shape the model expects.
        groups: the result of `channel_groups` for this model and input, or its
            `Analysis` (`analyze_channels`: no new trace); computed when omitted.

    Raises:
        GraphError: the model cannot be traced.
        PlanError: ``groups`` do not belong to this model and input.

    Example:
        >>> cutter = Cutter(model, x)
        >>> smalls = [cutter(keep_first(groups, plan)) for plan in plans]
    """

    def __init__(
        self,
        model: nn.Module,
        example_input: torch.Tensor | tuple,
        *,
        groups: Iterable[ChannelGroup] | None = None,
    ) -> None:
        self.model, self.example_input = model, example_input
        self._ax, self._collected, self._by_name = analyze_groups(model, example_input, groups)

    def __call__(
        self,
        keep: Mapping[str, Sequence[int] | torch.Tensor],
        *,
        replace: Mapping[str, torch.Tensor] | None = None,
        method: str = "cut",
    ) -> nn.Module:
        """The smaller model for ``keep``; arguments and result as in `cut`.

        ``method`` names what chose the plan (``"prune"``, ``"resample"``...) in the
        record the smaller model carries.
        """
        root, sizer = self._resized_copy(keep, replace)
        graph = copy.deepcopy(self._ax.gm.graph)
        rewrite_graph(graph, self._ax, sizer)
        traced = graph_module(root, graph, lifted(self._ax.gm))  # root's own resized modules
        expected = check_runs(traced, self.example_input, self._ax.output_shapes, _WHAT)
        small: nn.Module = root
        why = _differs(root, self.example_input, expected)
        if why:
            logger.warning(
                "cut: a resized copy of %s does not reproduce the traced model (%s), so a "
                "torch.fx GraphModule is returned: its forward is frozen as traced and it "
                "has no other methods. Read channel counts from tensor shapes in forward "
                "(e.g. x.shape[1]) to get your own class back.",
                type(self.model).__name__,
                why,
            )
            small = traced
        small.training = self.model.training
        step = {
            "kind": "cut",
            "method": method,
            "sizes": sizer.changed,
            "inputs": input_spec(as_inputs(self.example_input)),
        }
        add_step_(small, self.model, step)
        return small

    def eager(
        self,
        keep: Mapping[str, Sequence[int] | torch.Tensor],
        *,
        replace: Mapping[str, torch.Tensor] | None = None,
    ) -> nn.Module | None:
        """The smaller model as a copy of the model's own class, running its own forward.

        Cheaper to call than the GraphModule of `__call__` (no fx dispatch, which costs
        10–15% at batch 1 on small inputs) and it keeps Python branches such as ``if
        self.training``. Possible only when no channel count is written in the forward
        (slice bounds, split sizes, view shapes: the graph rewrite of `cut` changes those);
        otherwise None. Checked to run with the original output shapes, not for equal
        outputs: compare it with the GraphModule before relying on it.
        """
        if self._ax.rewrites:
            return None
        root, _ = self._resized_copy(keep, replace)
        try:
            check_runs(root, self.example_input, self._ax.output_shapes, _WHAT)
        except RuntimeError:
            return None  # the forward relies on something the analysis does not resize
        return root

    def _resized_copy(
        self,
        keep: Mapping[str, Sequence[int] | torch.Tensor],
        replace: Mapping[str, torch.Tensor] | None,
    ) -> tuple[nn.Module, Sizer]:
        """A copy of the model with cut (or replaced) tensors and resized layers."""
        plan = _check_keep(self._by_name, keep)
        replace = replace or {}
        root = copy_structure(self.model)
        tensors, shapes = cut_tensors(root, self._by_name, plan, skip=set(replace))
        tensors.update(check_replacements(root, shapes, replace))
        install_tensors(root, tensors)
        clone_other_tensors(root, set(tensors))
        sizes = {name: len(kept) for name, kept in plan.items()}
        sizer = Sizer(self._ax, self._collected.groups, self._collected.name_of_root, sizes)
        resize_modules(root, self._ax, sizer)
        return root, sizer


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


def replay_cut(model: nn.Module, step: Mapping[str, Any]) -> nn.Module:
    """Redo a recorded ``"cut"`` step on a fresh ``model`` (what `load_model` does).

    The model is traced on zeros of the recorded input shapes and cut to the recorded group
    sizes, keeping the first channels: the saved weights of the cut model then fit it.
    """
    inputs = zeros_like_spec(step["inputs"])
    example = inputs[0] if len(inputs) == 1 else inputs
    groups = channel_groups(model.eval(), example)
    keep = keep_first(groups, step["sizes"])
    return Cutter(model, example, groups=groups)(keep, method=step.get("method", "cut"))


def _differs(module: nn.Module, example_input, expected: Any) -> str:
    """Why ``module`` does not reproduce ``expected`` on the example input ('' if it does)."""
    try:
        out = run_once(module, example_input)
    except Exception as exc:  # its forward relies on a channel count the cut changed
        return f"its forward fails: {str(exc).splitlines()[0] if str(exc) else exc!r}"
    got, want = [], []
    fx.node.map_aggregate(out, lambda v: got.append(v) if isinstance(v, torch.Tensor) else v)
    fx.node.map_aggregate(expected, lambda v: want.append(v) if isinstance(v, torch.Tensor) else v)
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want, strict=False)):
        return f"its outputs have shapes {output_shapes(out)}, not {output_shapes(expected)}"
    for g, w in zip(got, want, strict=True):
        if not torch.allclose(g, w, rtol=1e-4, atol=1e-5, equal_nan=True):
            return f"its outputs differ by up to {(g - w).abs().max().item():.3g}"
    return ""
