"""An any-width model to a latency budget: from a fraction of the measured latency to a plan.

The width model's own planner (`anywidth.width.WidthModel.width_plan`, with the config's
allocation and ``round_to``) decides the plan for a given MAC fraction;
`anywidth._latency_budget.meet_latency` finds the fraction, as pruning does: bisection on
the per-layer table's prediction (the export's conv and linear layers over the full
width's), then the export measured beside the full-width export, corrected along a line.
An INN's partition tuning comes after and changes values, not shapes, so it keeps the
measured latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anywidth._latency_budget import meet_latency
from anywidth.graph import PlanError
from anywidth.latency import LatencyConfig, compare_latency
from anywidth.latency_table import LayerTimes
from anywidth.width import PlanRequest, WidthModel

__all__ = ["LatencyPlan", "plan_for_latency"]

_MAC_TOLERANCE = 0.05


@dataclass
class LatencyPlan:
    """The width plan for a latency budget and what was measured.

    Attributes:
        plan: ``{group: size}``.
        ratio: measured latency of its export / the full width's, on ``setting``.
        predicted: the table's prediction of that ratio.
        mac_fraction: the MAC fraction the plan was made with.
        measurements: how many side-by-side measurements were taken.
        setting: where it was timed.
    """

    plan: dict[str, int]
    ratio: float
    predicted: float
    mac_fraction: float
    measurements: int
    setting: LatencyConfig


def plan_for_latency(wide: WidthModel, config: Any, data: Any = None) -> LatencyPlan:
    """The plan whose export's measured latency is closest to ``config.budget``'s fraction
    of the full width's, timed on ``wide.example_input``.

    Args:
        wide: the any-width model (not changed).
        config: the `ShrinkConfig`, with ``budget.latency``, ``latency`` (the setting),
            ``latency_cache``, ``allocation`` and ``round_to``.
        data: batches for ``allocation="rank"``.
    """
    setting = config.latency or LatencyConfig()
    table = LayerTimes.shared(setting, config.latency_cache)
    x = wide.example_input
    full = wide.resample(1.0).eval()
    full_layers = table.layers_ms(full, x)

    def plan_at(fraction: float) -> dict[str, int] | None:
        if fraction >= 1.0:
            return wide.width_plan(1.0)
        request = PlanRequest(target_macs=fraction, tolerance=_MAC_TOLERANCE, round_to=
                              config.round_to, allocation=config.allocation, data=data)  # fmt: skip
        try:
            return wide.width_plan(request)
        except PlanError:
            return None  # below the smallest plan the groups allow

    def predicted(plan: dict[str, int]) -> float:
        return table.layers_ms(wide.resample(plan), x) / full_layers

    def measured(plan: dict[str, int]) -> float:
        both = compare_latency({"full": full, "small": wide.resample(plan).eval()}, x, setting)
        return both["small"].median_ms / both["full"].median_ms

    found = meet_latency(plan_at, predicted, measured, config.budget)
    return LatencyPlan(found.candidate, found.ratio, found.predicted, found.mac_fraction,
                       found.measurements, setting)  # fmt: skip
