"""Width plans for a width model: validation, ratios, and budgets through `plan_for_budget`.

`Planner` resolves a `PlanRequest` (a plan, a ratio, a MAC or parameter budget) into a full
plan; the functions below it do each kind. Shared by every `anywidth.width.WidthModel`.

The largest size a group may take is its original width: `cut` (and hence export) builds
layers no wider than the source, and MAC/parameter budgets are fractions of the source. An
INN's number of nodes is not a limit: its weight functions are defined on the whole
interval, so a group with fewer nodes than channels still samples at any width up to the
original one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from anywidth.graph import (
    Budget,
    ChannelGroup,
    PlanError,
    WidthCost,
    check_sizes,
    plan_for_budget,
    rank_priority,
)
from anywidth.width.request import PlanRequest

__all__ = [
    "Planner",
    "budget_sizes",
    "channel_importance",
    "check_plan",
    "plan_key",
    "ratio_plan",
    "uniform_priority",
]


class Planner:
    """Full, validated width plans for one source model (`WidthModel.width_plan`).

    Args:
        source: the (channel-permuted) source model; only its structure is used.
        example_input: the input budgets are counted for.
        groups: the source's channel groups, fixed ones included.
    """

    def __init__(self, source: nn.Module, example_input, groups: Iterable[ChannelGroup]) -> None:
        self.source, self.example_input = source, example_input
        self.groups = list(groups)
        self._cost: WidthCost | None = None  # made on the first budget

    def __deepcopy__(self, memo: dict) -> Planner:
        """A copy without the `WidthCost`, which holds a raw fx graph (rebuilt on demand)."""
        new = Planner.__new__(Planner)
        memo[id(self)] = new
        new.source = copy.deepcopy(self.source, memo)
        new.example_input = copy.deepcopy(self.example_input, memo)
        new.groups = copy.deepcopy(self.groups, memo)
        new._cost = None
        return new

    def full(self) -> dict[str, int]:
        """Every resizable group whole."""
        return {g.name: g.size for g in self.groups if not g.fixed}

    def resolve(
        self,
        request: PlanRequest,
        current: Mapping[str, int],
        *,
        importance: Callable[[], dict[str, torch.Tensor]],
        rank_ratios: Callable[[object], dict[str, float]],
    ) -> dict[str, int]:
        """``request`` as ``{resizable group: size}``; no plan and no budget: ``current``.

        ``importance()`` gives the channel scores of ``allocation="global"``,
        ``rank_ratios(data)`` each group's output rank ratio for ``allocation="rank"``.
        """
        budget = request.budget()
        if budget is not None:
            return self._budget_plan(request, budget, importance, rank_ratios)
        if request.plan is None:
            return dict(current)
        if isinstance(request.plan, Mapping):
            return check_plan(self.groups, request.plan)
        return ratio_plan(self.groups, request.plan)

    def _budget_plan(
        self,
        request: PlanRequest,
        budget: Budget,
        importance: Callable[[], dict[str, torch.Tensor]],
        rank_ratios: Callable[[object], dict[str, float]],
    ) -> dict[str, int]:
        """The plan `plan_for_budget` chooses for ``budget``, spread by ``request.allocation``."""
        if self._cost is None:
            self._cost = WidthCost(self.source, self.example_input, self.groups)
        if request.allocation == "rank":
            priority = rank_priority(self.groups, rank_ratios(request.data))
        elif request.allocation == "uniform":
            priority = uniform_priority(self.groups)
        else:
            priority = importance()
        return budget_sizes(self._cost, self.groups, priority, budget, request.round_to)


def plan_key(plan: Mapping[str, int]) -> tuple:
    """A hashable key of a full plan (for caches of per-plan tensors)."""
    return tuple(sorted(plan.items()))


def check_plan(groups: Iterable[ChannelGroup], plan: Mapping[str, int]) -> dict[str, int]:
    """A full plan (every resizable group) from ``{group: size}``; unlisted groups are whole.

    Raises:
        PlanError: unknown group (close names suggested), a fixed group resized, a size that
            is not an integer, below 1 or above the group's original width.
    """
    groups = list(groups)
    for name, size in plan.items():
        if isinstance(size, bool) or not _is_integer(size):
            raise PlanError(f"size {size!r} for channel group {name!r} must be an integer")
    changed = check_sizes(groups, {n: int(s) for n, s in plan.items()})
    return {g.name: changed.get(g.name, g.size) for g in groups if not g.fixed}


def _is_integer(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.is_floating_point()
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) or hasattr(value, "__index__")


def ratio_plan(groups: Iterable[ChannelGroup], ratio: float) -> dict[str, int]:
    """Every resizable group at ``round(ratio * size)`` channels (at least 1).

    Raises:
        PlanError: ``ratio`` is not in (0, 1].
    """
    if isinstance(ratio, bool) or not 0 < float(ratio) <= 1:
        raise PlanError(f"width ratio {ratio!r} must be in (0, 1]")
    return {g.name: max(1, round(float(ratio) * g.size)) for g in groups if not g.fixed}


def uniform_priority(groups: Iterable[ChannelGroup]) -> dict[str, torch.Tensor]:
    """Rank fractions ``1 - k / size``: every group shrinks at the same pace."""
    return {
        g.name: 1.0 - torch.arange(g.size, dtype=torch.float64) / g.size
        for g in groups
        if not g.fixed
    }


def channel_importance(
    groups: Iterable[ChannelGroup], weights: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Per-channel L1 importance of every resizable group, mean 1 per group.

    Each channel's L1 norm in every weight of two or more dimensions that holds the group
    (producers' filters, consumers' input columns), each member divided by its mean so
    that no layer dominates; the sum is divided by its group mean, which makes groups
    comparable for a global ranking.

    Args:
        groups: the channel groups.
        weights: ``{parameter name: full-width discrete tensor}`` (buffers left out).
    """
    out = {}
    for g in groups:
        if g.fixed:
            continue
        score = torch.zeros(g.size, dtype=torch.float64)
        for m in g.members:
            tensor = weights.get(m.name)
            if tensor is None or tensor.dim() < 2:
                continue
            span = tensor.detach().movedim(m.dim, 0)[m.offset : m.offset + g.size * m.block]
            l1 = span.reshape(g.size, -1).abs().sum(1).double().cpu()  # (size,)
            score += l1 / l1.mean().clamp_min(1e-30)
        out[g.name] = score / score.mean() if score.any() else torch.ones_like(score)
    return out


def budget_sizes(
    cost: WidthCost,
    groups: list[ChannelGroup],
    priority: Mapping[str, torch.Tensor],
    budget: Budget,
    round_to: int = 1,
) -> dict[str, int]:
    """The full plan whose sizes `plan_for_budget` chooses for ``budget``.

    Only the number of channels per group is used: an integral model resamples its weight
    functions at any width rather than selecting channels.
    """
    keep = plan_for_budget(cost, priority, budget, groups=groups, round_to=round_to)
    return {g.name: len(keep.get(g.name, range(g.size))) for g in groups if not g.fixed}
