"""Turn a budget (MACs or params, fraction or absolute) into a width plan.

The one shared function every method uses to meet a budget: pruning hands it channel
scores, INN resampling hands it a per-group priority, and both get back keep-sets whose
model meets the budget within the stated tolerance — in one call, no manual loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from anywidth.graph._types import ChannelGroup, PlanError
from anywidth.graph.plan import WidthCost

__all__ = ["Budget", "check_target", "plan_for_budget"]


def check_target(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a usable budget: a finite number above 0.

    Args:
        name: how the caller calls the budget (``"macs"``, ``"PruneConfig.target_macs"``).
        value: the budget as given.

    Example:
        >>> check_target("PruneConfig.target_macs", float("inf"))
        Traceback (most recent call last):
        ValueError: PruneConfig.target_macs=inf is not a finite number above 0; ...
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise ValueError(
            f"{name}={value!r} is not a finite number above 0; give a fraction of the "
            "original model in (0, 1] (0.5 keeps half) or an absolute count above 1"
        )


@dataclass(frozen=True)
class Budget:
    """A target size: MACs or parameters, as a fraction of the original or absolute.

    Args:
        macs: fraction of the original MACs (0 < f <= 1) or an absolute count (> 1).
        params: the same for parameters. Give exactly one of ``macs`` and ``params``.
        tolerance: the result lies within this relative distance of the target.

    Example:
        >>> Budget(macs=0.5)          # half the MACs
        >>> Budget(params=100_000)    # at most about 100k parameters
    """

    macs: float | None = None
    params: float | None = None
    tolerance: float = 0.02

    def __post_init__(self) -> None:
        if (self.macs is None) == (self.params is None):
            raise ValueError("Budget needs exactly one of macs= or params=")
        check_target(f"Budget {self.metric}", self.macs if self.macs is not None else self.params)
        if not 0 < self.tolerance < 1:
            raise ValueError(f"Budget tolerance={self.tolerance} must be in (0, 1)")

    @property
    def metric(self) -> str:
        return "macs" if self.macs is not None else "params"

    def absolute(self, full: int) -> float:
        """The target as a count, given the original model's count ``full``."""
        value = float(self.macs if self.macs is not None else self.params)
        return value * full if value <= 1.0 else value


_UNITS = {"macs": "MACs", "params": "parameters"}


def _round(size: int, full: int, round_to: int, floor: int) -> int:
    if round_to > 1:
        size = (size // round_to) * round_to
    return min(full, max(floor, size))


class _Planner:
    """Channels in priority order; the plan for a prefix of that order, and its cost."""

    def __init__(self, cost, groups, priority, metric, round_to, min_channels) -> None:
        self.cost, self.metric, self.round_to = cost, metric, round_to
        self.groups = [g for g in groups if not g.fixed]
        self.orders: dict[str, list[int]] = {}
        self.floors: dict[str, int] = {}
        candidates = []
        for g in self.groups:
            scores = torch.as_tensor(priority[g.name], dtype=torch.float64).flatten()
            if scores.numel() != g.size:
                raise PlanError(
                    f"priority for channel group {g.name!r} has {scores.numel()} entries; "
                    f"the group has {g.size} channels"
                )
            order = torch.argsort(-scores, stable=True).tolist()
            floor = min(g.size, max(min_channels, round_to))
            self.orders[g.name], self.floors[g.name] = order, floor
            candidates += [(-float(scores[c]), g.name, rank) for rank, c in enumerate(order)]
        candidates.sort()
        self.candidates = [(name, rank) for _, name, rank in candidates]

    def sizes(self, counts: Mapping[str, int]) -> dict[str, int]:
        return {
            g.name: _round(counts.get(g.name, 0), g.size, self.round_to, self.floors[g.name])
            for g in self.groups
        }

    def counts(self, prefix: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, _ in self.candidates[:prefix]:
            counts[name] = counts.get(name, 0) + 1
        return counts

    def measure(self, sizes: Mapping[str, int]) -> int:
        return self.cost.macs(sizes) if self.metric == "macs" else self.cost.params(sizes)

    def keep(self, sizes: Mapping[str, int]) -> dict[str, list[int]]:
        return {name: sorted(self.orders[name][:size]) for name, size in sizes.items()}


def _largest_prefix(planner: _Planner, target: float) -> int:
    """The longest prefix of the priority order whose plan costs at most ``target``."""
    lo, hi = 0, len(planner.candidates)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if planner.measure(planner.sizes(planner.counts(mid))) <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fill(planner: _Planner, counts: dict[str, int], start: int, target: float) -> dict[str, int]:
    """Spend what is left of the budget on the next channels that still fit.

    Cost grows with every size, so once a group's next channel does not fit, none of its
    later channels will: such a group is skipped from then on.
    """
    blocked: set[str] = set()
    for name, _ in planner.candidates[start:]:
        if name in blocked:
            continue
        trial = dict(counts, **{name: counts.get(name, 0) + 1})
        if planner.measure(planner.sizes(trial)) <= target:
            counts = trial
        else:
            blocked.add(name)
    return counts


def _closest_step_over(planner, counts, sizes, achieved, target):
    """Coarse groups can leave a gap: try one more channel in each group, keep the closest."""
    best = (abs(achieved - target), sizes, achieved)
    for g in planner.groups:
        trial = planner.sizes(dict(counts, **{g.name: counts.get(g.name, 0) + 1}))
        if trial[g.name] == sizes[g.name]:
            continue
        cost = planner.measure(trial)
        best = min(best, (abs(cost - target), trial, cost), key=lambda b: b[0])
    return best[1], best[2]


def _below_smallest(budget, target, smallest, full, min_channels, round_to) -> PlanError:
    """The error for a target under the smallest allowed model; says when it was absolute."""
    value = budget.macs if budget.macs is not None else budget.params
    settings = f"min_channels={min_channels}, round_to={round_to}"
    if value > 1.0:  # likely meant as a fraction
        unit = _UNITS[budget.metric]
        return PlanError(
            f"{budget.metric} target {value!r} is read as an absolute count of {value!r} {unit} "
            f"(values above 1 are absolute counts; fractions of the original are in (0, 1]), "
            f"below the smallest model's {smallest:,} {unit} (full model: {full:,}; {settings});"
            f" give a fraction such as 0.5 or a count of at least {smallest:,}"
        )
    return PlanError(
        f"{budget.metric} target {target:,.0f} is below the smallest model these groups "
        f"allow ({smallest:,} with {settings}); raise the target, lower "
        "min_channels/round_to, or unfix groups"
    )


def plan_for_budget(
    cost: WidthCost,
    priority: Mapping[str, torch.Tensor],
    budget: Budget,
    *,
    groups: list[ChannelGroup] | None = None,
    round_to: int = 1,
    min_channels: int = 1,
) -> dict[str, list[int]]:
    """Keep-sets that meet ``budget``, keeping the highest-priority channels first.

    Channels of every resizable group are ranked together by ``priority`` (higher is
    kept first; make scores comparable across groups for a global ranking, or use rank
    fractions for the same ratio everywhere). The longest prefix of that ranking that fits
    the budget is found by bisection, then leftover budget is filled greedily. Sizes are
    rounded down to multiples of ``round_to`` and never fall below ``min_channels``.

    Args:
        cost: the model's `WidthCost` (prices plans without building them).
        priority: ``{group name: tensor (size,)}`` for every resizable group.
        budget: the target and its tolerance.
        groups: the groups to resize (default: ``cost.groups``); fixed ones stay whole.
        round_to: sizes are multiples of this (except a whole group).
        min_channels: the smallest size a group may get.

    Returns:
        ``{group name: sorted kept indices}`` for `cut`.

    Raises:
        PlanError: the budget cannot be met within its tolerance (below the smallest
            allowed model, or the rounding is too coarse); the message gives the range.

    Example:
        >>> cost = WidthCost(model, x)
        >>> keep = plan_for_budget(cost, scores, Budget(macs=0.5))
        >>> small = cut(model, x, keep)
    """
    if round_to < 1 or min_channels < 1:
        raise ValueError(f"round_to ({round_to}) and min_channels ({min_channels}) must be >= 1")
    planner = _Planner(cost, groups or cost.groups, priority, budget.metric, round_to, min_channels)
    full = planner.measure({})
    target = budget.absolute(full)
    smallest = planner.measure(planner.sizes({}))
    if target >= full:
        return {}
    if target < smallest * (1 - budget.tolerance):
        raise _below_smallest(budget, target, smallest, full, min_channels, round_to)
    prefix = _largest_prefix(planner, target)
    counts = _fill(planner, planner.counts(prefix), prefix, target)
    sizes = planner.sizes(counts)
    achieved = planner.measure(sizes)
    if achieved < target * (1 - budget.tolerance):
        sizes, achieved = _closest_step_over(planner, counts, sizes, achieved, target)
    if abs(achieved - target) > budget.tolerance * target:
        raise PlanError(
            f"cannot meet the {budget.metric} target {target:,.0f} within "
            f"{budget.tolerance:.0%}: the closest plan has {achieved:,}; use a smaller "
            "round_to or a larger tolerance"
        )
    whole = {g.name: g.size for g in planner.groups}
    return {n: idx for n, idx in planner.keep(sizes).items() if len(idx) < whole[n]}
