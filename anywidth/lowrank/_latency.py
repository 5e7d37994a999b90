"""Low rank to a latency budget: from a fraction of the measured latency to ranks per layer.

The allocation (ALDS or uniform SVD) decides the ranks at a given MAC fraction; each
factored layer is then re-chosen among its dense, 1-slice and k-slice forms by table time
and error (`faster_than_dense`), so no layer is predicted slower than dense.
`anywidth._latency_budget.meet_latency` finds the fraction as for pruning: bisection on the
table's prediction (`LayerClock.ratio`), then the factored model measured beside the dense
one, corrected along a line. A result measured no faster than the dense model is never
returned: that is an error naming the best reached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from anywidth._latency_budget import meet_latency
from anywidth.graph import PlanError
from anywidth.latency import LatencyConfig, compare_latency
from anywidth.lowrank._speed import LayerClock, faster_than_dense
from anywidth.lowrank.allocate import Allocator, Choice

__all__ = ["LatencyRanks", "ranks_for_latency"]

# Bisection steps on the MAC fraction: each runs the allocation (an ALDS search), and 2⁻⁸
# resolves the fraction far finer than a latency budget's 5% tolerance.
_STEPS = 8


@dataclass
class LatencyRanks:
    """The ranks for a latency budget and what was measured.

    Attributes:
        choices: per factorable layer, its `Choice`.
        kept_dense: layers whose factors the table timed slower than dense.
        ratio: measured latency of the result / the dense model's, on ``setting``.
        predicted: the table's prediction of that ratio.
        mac_fraction: the MAC fraction the allocation was made with.
        measurements: how many side-by-side measurements were taken.
        setting: where it was timed.
    """

    choices: list[Choice]
    kept_dense: list[str]
    ratio: float
    predicted: float
    mac_fraction: float
    measurements: int
    setting: LatencyConfig


def ranks_for_latency(
    model: nn.Module,
    example_input,
    clock: LayerClock,
    allocator: Allocator,
    allocate: Callable[[float], list[Choice]],
    build: Callable[[Sequence[Choice]], nn.Module],
    config,
) -> LatencyRanks:
    """The ranks whose factored model's measured latency is closest to ``config.budget``.

    Args:
        model: the dense model (not changed).
        example_input: its example input.
        clock: table times of its factorable layers.
        allocator: their decompositions (MAC sizes).
        allocate: MAC fraction of the whole model -> choices (raises `PlanError` below the
            smallest decomposition).
        build: choices -> the factored model.
        config: the `LowRankConfig`, with ``budget.latency`` and ``latency``.

    Raises:
        PlanError: the best result was measured no faster than the dense model.
    """
    setting = config.latency or LatencyConfig()
    dense = [Choice() for _ in allocator.layers]

    def plan_at(fraction: float) -> tuple[list[Choice], list[str]] | None:
        if fraction >= 1.0:
            return dense, []
        try:
            return faster_than_dense(clock, allocator, allocate(fraction))
        except PlanError:
            return None  # below the smallest decomposition

    def predicted(candidate: tuple[list[Choice], list[str]]) -> float:
        return clock.ratio(candidate[0])

    def measured(candidate: tuple[list[Choice], list[str]]) -> float:
        both = compare_latency({"full": model, "small": build(candidate[0])}, example_input,
                               setting)  # fmt: skip
        return both["small"].median_ms / both["full"].median_ms

    found = meet_latency(plan_at, predicted, measured, config.budget, steps=_STEPS)
    (choices, kept_dense) = found.candidate
    if found.ratio >= 1.0 or all(c.dense for c in choices):
        raise PlanError(
            f"LowRankConfig.budget latency={config.budget.latency:g} cannot be met on "
            f"{setting.describe()}: the best factorisation found runs at {found.ratio:.3f} of "
            f"the dense model's latency ({found.mac_fraction:.1%} of the MACs, "
            f"{found.measurements} measurements), no faster than dense, and low rank never "
            "returns a slower model; keep the dense model, or try another runtime or batch, "
            "or prune with PruneConfig(budget=Budget(latency=...))"
        )
    return LatencyRanks(choices, kept_dense, found.ratio, found.predicted, found.mac_fraction,
                        found.measurements, setting)  # fmt: skip
