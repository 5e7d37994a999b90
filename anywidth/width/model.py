"""`WidthModel`: the base of every network that runs, and exports, at any width plan.

A width model holds one set of weights for every width plan ``{group: size}`` of its
source's resizable channel groups. Planning is the same for every kind and lives here:
`WidthModel.width_plan` turns a `PlanRequest` (a plan, a ratio or a MAC/parameter budget)
into a full plan, `WidthModel.at` and `WidthModel.set_sizes_` choose the width the forward
pass runs at, and `WidthModel.resample` plans and then asks the subclass for the plain model
at that plan. What a width *is* belongs to the subclass:

- `anywidth.integral.IntegralModel` samples weight functions at the plan;
- `anywidth.slim.SlimmableModel` keeps the first channels of every group.

Both run their narrower widths through one width-agnostic skeleton of the source
(`anywidth.graph.width_agnostic`), which is kept here too. `anywidth.train.width` trains any
width model with random widths.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor, fx, nn

from anywidth.graph import ChannelGroup, group_rank_ratios
from anywidth.width._plans import Planner, plan_key
from anywidth.width._skeleton import Skeletons
from anywidth.width.request import PlanRequest, PlanSpec

__all__ = ["WidthModel"]

_M = TypeVar("_M", bound="WidthModel")


class WidthModel(nn.Module, abc.ABC):
    """A network that runs at any width plan of its source's resizable channel groups.

    Subclasses implement `_resample` (the plain model at a full, validated plan: the one
    step of `resample` that differs between them), `channel_importance` (the scores of
    ``allocation="global"``), `load_running_stats_` and ``forward`` (at `sizes`); they may
    override `loss_weight`.

    Args:
        source: the (channel-permuted) source network; its structure is planned and traced.
        example_input: the input ``groups`` were traced with (budgets are counted for it).
        groups: the source's channel groups, fixed ones included, in graph order.
        permutation: ``{group: order}`` that was applied to the caller's model (new channel
            ``i`` of a group is the caller's channel ``permutation[group][i]``).

    Attributes:
        groups: as given, as a tuple.
        permutation: as given, ``{group: list of int}``.

    Example:
        >>> isinstance(to_slimmable(model, x), WidthModel)
        True
        >>> with wide.at(0.5):
        ...     y = wide(x)                          # half of every resizable group
        >>> small = wide.resample(target_macs=0.25)  # a plain smaller nn.Module
    """

    def __init__(
        self,
        source: nn.Module,
        example_input: torch.Tensor | tuple,
        groups: Iterable[ChannelGroup],
        permutation: Mapping[str, Iterable[int]] | None = None,
    ) -> None:
        super().__init__()
        self.groups = tuple(groups)
        self.permutation = {k: [int(i) for i in v] for k, v in (permutation or {}).items()}
        self._planner = Planner(source, example_input, self.groups)
        self._skeletons = Skeletons(source, example_input, list(self.groups))
        self._set_sizes(self._planner.full())

    # -- what subclasses implement --------------------------------------------------------
    @abc.abstractmethod
    def _resample(self, plan: dict[str, int]) -> nn.Module:
        """The plain model at ``plan`` (full, validated), built with `anywidth.graph.cut`;
        `resample` sets its train/eval mode."""

    @abc.abstractmethod
    def channel_importance(self) -> dict[str, Tensor]:
        """``{group: (size,) scores}`` of every resizable group at full width, mean 1 per
        group; ``allocation="global"`` uses how many channels of each group rank above a
        common threshold."""

    @abc.abstractmethod
    def load_running_stats_(self, buffers: Mapping[str, Tensor]) -> None:
        """Make the full width's buffers (e.g. recalibrated BatchNorm statistics) these."""

    def loss_weight(self, plan: Mapping[str, int], power: float = 2.0) -> float:
        """How much a width-random step at ``plan`` weighs next to the full width's: 1.

        Keeping the first channels trains every width at the discrete pace as it is;
        `anywidth.integral.IntegralModel.loss_weight` corrects an INN's narrower widths.
        """
        return 1.0

    # -- plans ------------------------------------------------------------------------------
    @property
    def resizable(self) -> list[ChannelGroup]:
        """The groups that can be resized (not fixed), in graph order."""
        return [g for g in self.groups if not g.fixed]

    @property
    def example_input(self) -> torch.Tensor | tuple:
        """The input the channel groups were traced with (budgets are counted for it)."""
        return self._planner.example_input

    @property
    def sizes(self) -> dict[str, int]:
        """The current width plan: ``{resizable group: size}`` (default: every group whole)."""
        return dict(self._sizes)

    def width_plan(self, request: PlanRequest | PlanSpec = None, **fields: Any) -> dict[str, int]:
        """Resolve a plan, a ratio or a budget into a full, validated plan.

        A group may take any size from 1 to its original width.

        Args:
            request: a `PlanRequest`; or its ``plan`` (``{group: size}``, a ratio in (0, 1],
                or None: the current sizes) with its other fields as keywords.
            **fields: ``target_macs``, ``target_params``, ``allocation``, ``tolerance``,
                ``round_to``, ``data``: see `PlanRequest`.

        Returns:
            ``{group: size}`` for every resizable group.

        Raises:
            PlanError: unknown or fixed group, a size below 1 or above the original width,
                a bad ratio, or a budget that cannot be met.
            ValueError: a bad request (see `PlanRequest`).
            TypeError: a `PlanRequest` together with keywords, or an unknown keyword.

        Example:
            >>> wide.width_plan(0.5)["layer1.0.conv1:out"]          # resnet20
            8
            >>> plan = wide.width_plan(target_macs=0.5, allocation="global")
            >>> plan == wide.width_plan(PlanRequest(target_macs=0.5, allocation="global"))
            True
        """
        return self._planner.resolve(
            PlanRequest.of(request, **fields),
            self._sizes,
            importance=self.channel_importance,
            rank_ratios=self._rank_ratios,
        )

    def _rank_ratios(self, data: Any) -> dict[str, float]:
        """Output rank ratio of every resizable group, at full width, on ``data``."""
        with torch.no_grad():
            full = self._resample(self._planner.full())
        return group_rank_ratios(full, data, self.groups)

    def set_sizes_(self, plan: PlanSpec) -> None:
        """Choose the width the module runs at: a plan, a ratio, or None for full width."""
        self._set_sizes(self._planner.full() if plan is None else self.width_plan(plan))

    @contextlib.contextmanager
    def at(self: _M, plan: PlanSpec) -> Iterator[_M]:
        """Run at a plan (or ratio) inside a ``with`` block; the previous sizes come back after.

        Example:
            >>> with wide.at({"layer1.0.conv1:out": 8}):
            ...     y = wide(x)
        """
        before = self._sizes
        self.set_sizes_(plan)
        try:
            yield self
        finally:
            self._set_sizes(before)

    def _set_sizes(self, plan: dict[str, int]) -> None:
        """Make ``plan`` (full, validated) current; its cache key is computed once, here."""
        self._sizes = plan
        self._plan_key = plan_key(plan)

    def _skeleton(self, *, batch_stats: bool = False) -> fx.GraphModule:
        """The width-agnostic skeleton, in this module's train/eval mode (``batch_stats``:
        BatchNorm layers in training mode whatever the mode)."""
        return self._skeletons.get(self._sizes, training=self.training, batch_stats=batch_stats)

    # -- export -----------------------------------------------------------------------------
    def resample(self, request: PlanRequest | PlanSpec = None, **fields: Any) -> nn.Module:
        """A plain, smaller model at a plan, a ratio or a budget.

        Built with `anywidth.graph.cut` (the source's own class resized where that
        reproduces the traced model, else a ``torch.fx.GraphModule``): ordinary layers whose
        ``in_channels``, ``out_channels``, ``num_features``... match their weights, with
        outputs equal to this module's at that plan. Arguments as in `width_plan` (None:
        the current sizes). The module itself is not changed.

        Returns:
            The smaller model, on this module's device, in its train/eval mode.

        Example:
            >>> small = wide.resample(0.5)
            >>> small = wide.resample(target_macs=0.5, allocation="global")
        """
        plan = self.width_plan(request, **fields)
        return self._resample(plan).train(self.training)

    def extra_repr(self) -> str:
        changed = sum(self._sizes[g.name] != g.size for g in self.resizable)
        return f"groups={len(self.resizable)} resizable of {len(self.groups)}, resized={changed}"
