"""Pruning to a latency budget: from a fraction of the measured latency to a width plan.

A plain, explicit loop over the MAC planner (`anywidth.graph.plan_for_budget`), which
already decides *which* channels go for a given MAC fraction:

1. the goal is the budget's ratio, ``budget.latency`` (every ratio below is latency on
   the setting's runtime, batch and threads over the original's);
2. predict a plan's latency ratio from the per-layer lookup table (`LayerTimes`): the
   summed time of its conv and linear layers over the original's (the rest of the model,
   normalisation, activations and framework, assumed to shrink alike). A ratio of table
   entries, so a table measured under another load still ranks plans right;
3. bisect the MAC fraction whose predicted ratio meets the goal;
4. measure that model beside the original (`compare_latency`); while the measured ratio
   misses the budget, take the MAC fraction where a straight line through two measured
   (MAC fraction, ratio) points — the original (1, 1) is one — meets the target, and
   measure again, at most ``_CORRECTIONS`` measurements in all. The plan closest to the
   budget is kept, and its measured ratio returned, so the caller can say when it was the
   best reached rather than a hit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from anywidth.graph import Budget as PlanBudget
from anywidth.graph import PlanError, plan_for_budget
from anywidth.latency import LatencyConfig, compare_latency
from anywidth.latency_table import LayerTimes

__all__ = ["LatencyPlan", "plan_for_latency"]

log = logging.getLogger(__name__)

_CORRECTIONS = 3
_STEPS = 12
_SMALLEST = 0.01
_MAC_TOLERANCE = 0.05


@dataclass
class LatencyPlan:
    """The kept channels for a latency budget and what was measured.

    Attributes:
        keep: ``{group: kept indices}`` for `Cutter`.
        ratio: measured latency of the result / the original's, on ``setting``.
        predicted: the table's prediction of that ratio.
        mac_fraction: the MAC fraction the plan was made with.
        measurements: how many side-by-side measurements were taken.
        setting: where it was timed.
        lookups: ``(hits, misses)`` of the layer table during the search.
    """

    keep: dict[str, list[int]]
    ratio: float
    predicted: float
    mac_fraction: float
    measurements: int
    setting: LatencyConfig
    lookups: tuple[int, int]


def plan_for_latency(model, example_input, cost, priority, cutter, config) -> LatencyPlan:
    """Keep-sets whose cut model's measured latency is closest to ``config.budget``.

    Args:
        model: the model being pruned (not changed).
        example_input: its example input.
        cost: its `WidthCost`.
        priority: ``{group: scores}`` as `plan_for_budget` takes.
        cutter: a `Cutter` of the model (``cutter(keep)`` builds the cut model).
        config: the `PruneConfig`, with ``budget.latency`` and ``latency`` (the setting).
    """
    setting = config.latency or LatencyConfig()
    budget = config.budget
    table = LayerTimes.shared(setting, config.latency_cache)
    hits, misses = table.hits, table.misses
    full_layers = table.layers_ms(model, example_input)

    def keep_at(fraction: float) -> dict[str, list[int]] | None:
        if fraction >= 1.0:
            return {}
        try:
            plan_budget = PlanBudget(macs=fraction, tolerance=_MAC_TOLERANCE)
            return plan_for_budget(cost, priority, plan_budget, round_to=config.round_to,
                                   min_channels=config.min_channels)  # fmt: skip
        except PlanError:
            return None  # below the smallest model the groups allow

    def predicted(keep: dict[str, list[int]]) -> float:
        return table.layers_ms(cutter(keep, method="prune"), example_input) / full_layers

    fraction, keep, guess = _bisect(keep_at, predicted, budget.latency)
    points = [(1.0, 1.0)]  # (MAC fraction, measured ratio): the original is one
    best: LatencyPlan | None = None
    for attempt in range(_CORRECTIONS):
        if attempt > 0:
            fraction = _secant(points, budget.latency)
            keep = keep_at(fraction)
            if keep is None:  # the line asks for less than the smallest plan
                break
            guess = predicted(keep)
        small = cutter(keep, method="prune")
        both = compare_latency({"full": model, "small": small}, example_input, setting)
        ratio = both["small"].median_ms / both["full"].median_ms
        points.append((fraction, ratio))
        found = LatencyPlan(keep, ratio, guess, fraction, attempt + 1, setting,
                            (table.hits - hits, table.misses - misses))  # fmt: skip
        log.info("latency plan %d: %.1f%% of the MACs, predicted %.3f, measured %.3f",
                 attempt + 1, 100 * fraction, guess, ratio)  # fmt: skip
        if best is None or abs(ratio - budget.latency) < abs(best.ratio - budget.latency):
            best = found
        best.measurements = attempt + 1
        if abs(ratio - budget.latency) <= budget.tolerance * budget.latency:
            break
    return best


def _secant(points: list[tuple[float, float]], target: float) -> float:
    """The MAC fraction a straight line through two measured points gives ``target`` at:
    the two that bracket it, else the two closest to it."""
    ordered = sorted(points)
    pairs = [
        (a, b)
        for a, b in zip(ordered, ordered[1:], strict=False)
        if min(a[1], b[1]) <= target <= max(a[1], b[1])
    ]
    if pairs:
        (fa, ra), (fb, rb) = pairs[0]
    else:
        (fa, ra), (fb, rb) = sorted(points, key=lambda p: abs(p[1] - target))[:2]
    if rb == ra:
        return fa
    return min(1.0, max(_SMALLEST, fa + (target - ra) * (fb - fa) / (rb - ra)))


def _bisect(keep_at, predicted, goal: float):
    """The largest MAC fraction whose plan's predicted latency ratio is at most ``goal``:
    ``(fraction, keep, predicted ratio)``; the smallest plan tried when none is."""
    lo, hi = _SMALLEST, 1.0
    best, smallest = None, (1.0, {}, 1.0)
    for _ in range(_STEPS):
        mid = (lo + hi) / 2
        keep = keep_at(mid)
        if keep is None:
            lo = mid
            continue
        ratio = predicted(keep)
        if ratio <= goal:
            best, lo = (mid, keep, ratio), mid
        else:
            hi, smallest = mid, (mid, keep, ratio)
    return best or smallest
