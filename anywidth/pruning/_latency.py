"""Pruning to a latency budget: from a fraction of the measured latency to kept channels.

The MAC planner (`anywidth.graph.plan_for_budget`) decides *which* channels go for a given
MAC fraction; `anywidth._latency_budget.meet_latency` finds the fraction (bisection on the
per-layer table's prediction, then measurement of the cut model beside the original and
corrections along a line). A plan's predicted ratio is the summed time of its conv and
linear layers over the original's (the rest of the model, normalisation, activations and
framework, assumed to shrink alike).
"""

from __future__ import annotations

from dataclasses import dataclass

from anywidth._latency_budget import meet_latency
from anywidth.graph import Budget as PlanBudget
from anywidth.graph import PlanError, plan_for_budget
from anywidth.latency import LatencyConfig, compare_latency
from anywidth.latency_table import LayerTimes

__all__ = ["LatencyPlan", "plan_for_latency"]

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

    def measured(keep: dict[str, list[int]]) -> float:
        small = cutter(keep, method="prune")
        both = compare_latency({"full": model, "small": small}, example_input, setting)
        return both["small"].median_ms / both["full"].median_ms

    found = meet_latency(keep_at, predicted, measured, config.budget)
    lookups = (table.hits - hits, table.misses - misses)
    return LatencyPlan(found.candidate, found.ratio, found.predicted, found.mac_fraction,
                       found.measurements, setting, lookups)  # fmt: skip
