"""Meeting a latency budget: the search every method that takes ``Budget(latency=...)`` shares.

A method turns a MAC fraction into a candidate (pruning: kept channels; the INN and
slimmable models: a width plan; low rank: a rank per layer) with its MAC planner, which
already decides *what* goes at that size. `meet_latency` then finds the MAC fraction whose
candidate runs at the budget's fraction of the original's latency:

1. the goal is the budget's ratio, ``budget.latency`` (every ratio below is latency on the
   method's runtime, batch and threads over the original's);
2. the method predicts a candidate's ratio from the per-layer lookup table
   (`anywidth.latency_table.LayerTimes`): a ratio of table entries, so a table measured
   under another load still ranks candidates right;
3. bisect the MAC fraction whose predicted ratio meets the goal;
4. the method measures that candidate beside the original
   (`anywidth.latency.compare_latency`). The table times only conv and linear layers; the
   rest of the model (norms, activations, the framework's per-call cost) scales little with
   width. So when the first measurement misses, it fixes that rest: measured = a + (1 - a) ·
   predicted, with ``a`` the share of time the table leaves out (`_rest_share`); the
   bisection is run again on that corrected prediction and its candidate measured;
5. while the measured ratio still misses the budget, take the MAC fraction where a straight
   line through two measured (MAC fraction, ratio) points — the original (1, 1) is one —
   meets the target, and measure again, at most ``CORRECTIONS`` measurements in all. The
   candidate closest to the budget is kept with its measured ratio, so the caller can say
   when it was the best reached rather than a hit (`missed_budget`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anywidth.budget import Budget

__all__ = ["CORRECTIONS", "Found", "meet_latency", "missed_budget"]

log = logging.getLogger(__name__)

CORRECTIONS = 3
_STEPS = 12
_SMALLEST = 0.01


@dataclass
class Found:
    """The candidate closest to a latency budget and what was measured.

    Attributes:
        candidate: what the method's ``plan_at`` returned for ``mac_fraction``.
        ratio: its measured latency / the original's.
        predicted: the table's prediction of that ratio.
        mac_fraction: the MAC fraction it was planned at.
        measurements: how many side-by-side measurements were taken in all.
    """

    candidate: Any
    ratio: float
    predicted: float
    mac_fraction: float
    measurements: int

    def met(self, budget: Budget) -> bool:
        """Whether the measured ratio is within the budget's tolerance of its target."""
        return _within(budget, self.ratio)


def _within(budget: Budget, ratio: float) -> bool:
    return abs(ratio - budget.latency) <= budget.tolerance * budget.latency


def meet_latency(
    plan_at: Callable[[float], Any],
    predict: Callable[[Any], float],
    measure: Callable[[Any], float],
    budget: Budget,
    *,
    steps: int = _STEPS,
) -> Found:
    """The candidate whose measured latency ratio is closest to ``budget.latency``.

    Args:
        plan_at: MAC fraction in (0, 1] -> candidate (at 1: the original), or None where
            the method cannot go that small.
        predict: candidate -> its latency ratio predicted from the layer table.
        measure: candidate -> its latency ratio measured beside the original.
        budget: a ``Budget(latency=...)``.
        steps: bisection steps on the MAC fraction.

    Returns:
        The `Found` closest to the target (``found.met(budget)`` says whether it is within
        the tolerance).

    Example:
        >>> found = meet_latency(lambda f: f, lambda c: c, lambda c: c, Budget(latency=0.5))
        >>> round(found.ratio, 3), found.measurements, found.met(Budget(latency=0.5))
        (0.5, 1, True)
    """
    goal = budget.latency
    fraction, candidate, guess = _bisect(plan_at, predict, goal, steps)
    points = [(1.0, 1.0)]  # (MAC fraction, measured ratio): the original is one
    best: Found | None = None
    for attempt in range(CORRECTIONS):
        if attempt > 0:
            again = (
                _corrected(plan_at, predict, goal, steps, points, guess) if attempt == 1 else None
            )
            if again is not None:
                fraction, candidate = again
            else:
                fraction = _secant(points, goal)
                candidate = plan_at(fraction)
                if candidate is None:  # the line asks for less than the smallest candidate
                    break
            guess = predict(candidate)
        ratio = measure(candidate)
        points.append((fraction, ratio))
        log.info("latency budget, measurement %d: %.1f%% of the MACs, predicted %.3f, "
                 "measured %.3f", attempt + 1, 100 * fraction, guess, ratio)  # fmt: skip
        if best is None or abs(ratio - goal) < abs(best.ratio - goal):
            best = Found(candidate, ratio, guess, fraction, attempt + 1)
        best.measurements = attempt + 1
        if best.met(budget):
            break
    return best


def missed_budget(owner: str, budget: Budget, found, where: str, hint: str) -> str | None:
    """What to warn when ``found`` misses ``budget`` (None: it is met).

    Args:
        owner: the config's name, ``"PruneConfig"``.
        budget: the latency budget.
        found: the best candidate: a `Found`, or a method's record with its ``ratio``,
            ``mac_fraction`` and ``measurements``.
        where: the setting's description (`LatencyConfig.describe`).
        hint: why the method cannot do better there, and what to try.
    """
    if _within(budget, found.ratio):
        return None
    return (
        f"{owner}.budget latency={budget.latency:g} not met within {budget.tolerance:.0%} on "
        f"{where}: the best reached runs at {found.ratio:.3f} of the original's latency "
        f"({found.mac_fraction:.1%} of the MACs, {found.measurements} measurements); {hint}"
    )


def _corrected(plan_at, predict, goal: float, steps: int, points, predicted: float):
    """``(fraction, candidate)`` of the bisection run again on the prediction corrected by the
    first measurement (the last of ``points``, predicted at ``predicted``); None where that
    gives nothing new to measure."""
    if predicted >= 1.0:
        return None
    share = _rest_share(predicted, points[-1][1])
    fraction, candidate, _ = _bisect(
        plan_at, lambda c: share + (1 - share) * predict(c), goal, steps
    )
    if candidate is None or any(fraction == f for f, _ in points):
        return None
    return fraction, candidate


def _rest_share(predicted: float, measured: float) -> float:
    """The share ``a`` of the original's time the table does not see, from one candidate:
    measured = a + (1 - a) · predicted, kept within [-1, 0.95] (a table that overrates the
    layers gives a < 0)."""
    return min(0.95, max(-1.0, (measured - predicted) / (1.0 - predicted)))


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


def _bisect(plan_at, predict, goal: float, steps: int):
    """The largest MAC fraction whose candidate's predicted latency ratio is at most
    ``goal``: ``(fraction, candidate, predicted ratio)``; the smallest candidate tried when
    none is (the original when none could be made)."""
    lo, hi = _SMALLEST, 1.0
    best = smallest = None
    for _ in range(steps):
        mid = (lo + hi) / 2
        candidate = plan_at(mid)
        if candidate is None:
            lo = mid
            continue
        ratio = predict(candidate)
        if ratio <= goal:
            best, lo = (mid, candidate, ratio), mid
        else:
            hi, smallest = mid, (mid, candidate, ratio)
    return best or smallest or (1.0, plan_at(1.0), 1.0)
