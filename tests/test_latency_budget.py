"""The latency-budget search every method shares: bisection on a predicted ratio, then
measured corrections along a line, the closest kept. Predictions and measurements are plain
functions of the MAC fraction here, so every number is exact."""

from __future__ import annotations

import pytest

from anywidth import Budget
from anywidth._latency_budget import CORRECTIONS, _secant, meet_latency, missed_budget


def _search(budget: Budget, measured, predicted=lambda f: f, smallest: float = 0.0):
    """``meet_latency`` on candidates that are their own MAC fraction; measurements logged."""
    calls = []

    def measure(fraction: float) -> float:
        calls.append(fraction)
        return measured(fraction)

    plan_at = lambda f: f if f >= smallest else None  # noqa: E731
    return meet_latency(plan_at, predicted, measure, budget), calls


def test_a_right_prediction_needs_one_measurement():
    found, calls = _search(Budget(latency=0.4), measured=lambda f: f)
    assert len(calls) == 1 and found.measurements == 1
    assert found.ratio == pytest.approx(0.4, rel=0.01) and found.met(Budget(latency=0.4))
    assert found.candidate == found.mac_fraction <= 0.4  # the largest fraction predicted to fit


def test_an_offset_the_table_misses_is_corrected_by_measurement():
    found, calls = _search(Budget(latency=0.5), measured=lambda f: 0.2 + 0.8 * f)
    assert len(calls) == 2  # the line through (1, 1) and the first point is exact
    assert found.ratio == pytest.approx(0.5, rel=0.05) and found.mac_fraction == pytest.approx(
        0.375, rel=0.01
    )


def test_a_constant_rest_of_the_model_is_learnt_from_one_measurement():
    # the table's prediction bends (low rank, depthwise layers), and 40% of the time is
    # outside its layers: one measurement fixes that share, the second candidate is on target
    found, calls = _search(
        Budget(latency=0.55), measured=lambda f: 0.4 + 0.6 * f * f, predicted=lambda f: f * f
    )
    assert len(calls) == 2  # a line through the measured points needed three here
    assert found.met(Budget(latency=0.55)) and found.mac_fraction == pytest.approx(0.5, rel=0.01)


def test_an_unreachable_budget_keeps_the_closest_and_says_so():
    budget = Budget(latency=0.3)
    found, calls = _search(budget, measured=lambda f: 0.6 + 0.4 * f, smallest=0.2)
    assert 1 <= len(calls) <= CORRECTIONS  # the line asks for less than the smallest
    assert not found.met(budget) and found.ratio == min(0.6 + 0.4 * f for f in calls)
    text = missed_budget("XConfig", budget, found, "torch, batch 1, 1 thread", "try more")
    assert text.startswith("XConfig.budget latency=0.3 not met within 5% on torch, batch 1")
    # the corrected prediction goes to the smallest candidate: 0.6 + 0.4 · 0.2
    assert "best reached runs at 0.680" in text and text.endswith("try more")


def test_a_met_budget_has_no_warning():
    found, _ = _search(Budget(latency=0.5), measured=lambda f: f)
    assert missed_budget("XConfig", Budget(latency=0.5), found, "here", "") is None


def test_nothing_small_enough_falls_back_to_the_original():
    found, calls = _search(Budget(latency=0.5), measured=lambda f: 1.0, smallest=1.0)
    assert found.candidate == 1.0 and set(calls) == {1.0} and found.ratio == 1.0


@pytest.mark.parametrize(
    "points, target, expected",
    [
        ([(1.0, 1.0), (0.5, 0.7)], 0.5, 0.5 - 0.2 * 0.5 / 0.3),  # extrapolated from (1, 1)
        ([(1.0, 1.0), (0.2, 0.3), (0.6, 0.8)], 0.5, 0.2 + 0.2 * 0.4 / 0.5),  # bracketed
        ([(1.0, 1.0), (0.5, 0.9)], 0.1, 0.01),  # clipped to the smallest fraction tried
    ],
    ids=["extrapolate", "bracket", "clip"],
)
def test_secant_meets_the_target_on_a_line(points, target, expected):
    assert _secant(points, target) == pytest.approx(expected)
