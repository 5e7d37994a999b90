"""`SlimmableModel`: one network whose every width keeps the first channels of each group.

The slimmable counterpart of `anywidth.integral.IntegralModel` (universally slimmable
networks, Yu & Huang 2019): a width plan ``{group: size}`` keeps the first ``size``
channels of every resizable group, so all widths share their weights and are nested. Channels
are sorted by importance once, when the model is made (`to_slimmable`), so the first ones are
the ones worth keeping. The forward pass slices the full tensors to the current plan and
runs them through one width-agnostic skeleton (`anywidth.graph.width_agnostic`); `resample`
builds the ordinary smaller model through `anywidth.graph.Cutter`. Planning, `at`,
`set_sizes_` and `resample` come from the base class `anywidth.width.WidthModel`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call

from anywidth.compression.checks import warn_non_finite
from anywidth.graph import ChannelGroup, Cutter, channel_groups, keep_first, permute_channels
from anywidth.slim._private import slice_indices
from anywidth.width._plans import channel_importance
from anywidth.width.model import WidthModel

__all__ = ["SlimmableModel", "to_slimmable"]


class SlimmableModel(WidthModel):
    """A network that runs at any width plan by keeping the first channels; see `to_slimmable`.

    Args:
        model: the (channel-sorted) network; its parameters are this module's, under
            ``model.``.
        example_input: the input ``groups`` were traced with (budgets are counted for it).
        groups: ``channel_groups(model, example_input)``.
        permutation: ``{group: order}`` applied to the caller's model (new channel ``i`` is
            the caller's ``permutation[group][i]``).

    Example:
        >>> slim = to_slimmable(model, x)
        >>> with slim.at(0.5):
        ...     y = slim(x)                           # the first half of every group
        >>> small = slim.resample(target_macs=0.25)   # a plain smaller nn.Module
    """

    def __init__(
        self,
        model: nn.Module,
        example_input: torch.Tensor | tuple,
        groups: Iterable[ChannelGroup],
        permutation: Mapping[str, list[int]] | None = None,
    ) -> None:
        super().__init__(model, example_input, groups, permutation)
        self.model = model
        self._cutter = Cutter(model, example_input, groups=self.groups)
        self._indices: dict[tuple, dict[tuple[str, int], Tensor]] = {}

    def channel_importance(self) -> dict[str, Tensor]:
        """``{group: (size,) scores}``: per-channel L1 of the weights, mean 1 per group."""
        return channel_importance(self.groups, dict(self.model.named_parameters()))

    def forward(self, *inputs: Tensor) -> Tensor:
        """The model at the current sizes.

        At full width this is the model itself (in training, its BatchNorm running
        statistics are updated). At other widths the first channels of every tensor run
        through the skeleton; in training, their running-statistics updates land on the
        sliced copies and are discarded.
        """
        plan = self._sizes
        if all(plan[g.name] == g.size for g in self.resizable):
            return self.model(*inputs)
        return functional_call(self._skeleton(), self._sliced(plan, self._plan_key), inputs)

    def _sliced(self, plan: Mapping[str, int], key: tuple) -> dict[str, Tensor]:
        """Every parameter and buffer cut to ``plan`` (whose `plan_key` is ``key``), with
        autograd history."""
        if key not in self._indices:
            if len(self._indices) >= 256:
                self._indices.clear()
            self._indices[key] = slice_indices(self.groups, plan, self._tensors())
        out = self._tensors()
        if self.training:  # running-statistics updates must not reach the full buffers
            out.update({n: b.clone() for n, b in self.model.named_buffers()})
        for (name, dim), idx in self._indices[key].items():
            out[name] = out[name].index_select(dim, idx)
        return out

    def _tensors(self) -> dict[str, Tensor]:
        out = dict(self.model.named_parameters(remove_duplicate=False))
        out.update(self.model.named_buffers(remove_duplicate=False))
        return out

    def load_running_stats_(self, buffers: Mapping[str, Tensor]) -> None:
        """Copy full-width buffers (e.g. recalibrated BatchNorm statistics) into the model."""
        own = dict(self.model.named_buffers())
        with torch.no_grad():
            for name, value in buffers.items():
                own[name].copy_(value)

    def _resample(self, plan: dict[str, int]) -> nn.Module:
        """A copy of the model that keeps the first channels of each group, built by
        `anywidth.graph.Cutter` (the model's own class where that reproduces it).
        Recalibrate its BatchNorm statistics (`anywidth.train.recalibrate_bn`) before use."""
        return self._cutter(keep_first(self.groups, plan), method="slice")


def to_slimmable(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    *,
    fixed: Iterable[str] = (),
    sort: bool = True,
) -> SlimmableModel:
    """A slimmable copy of ``model``: channels sorted by importance, every width a prefix.

    Args:
        model: the trained network (not changed).
        example_input: a tensor (or tuple) of the shape the model expects.
        fixed: group names or globs never resized.
        sort: sort every group's channels by L1 importance (largest first), so that keeping
            the first ``k`` keeps the ``k`` most important; without it, the model's order.

    Returns:
        The `SlimmableModel`, in ``model``'s train/eval mode; at full width it computes what
        ``model`` computes.

    Example:
        >>> slim = to_slimmable(model, torch.randn(1, 3, 32, 32))
        >>> train_width_random_(slim, loaders, TrainConfig(epochs=5), WidthTrainConfig())
    """
    warn_non_finite(model)
    training = model.training
    groups = channel_groups(model.eval(), example_input, fixed=fixed)
    model.train(training)
    perms = {}
    if sort:
        scores = channel_importance(groups, dict(model.named_parameters()))
        perms = {name: torch.argsort(s, descending=True, stable=True) for name, s in scores.items()}
    sorted_model = permute_channels(model, groups, perms)
    slim = SlimmableModel(sorted_model, example_input, groups, permutation=perms)
    return slim.train(training)
