"""Width models: one network that runs, and exports, at any width plan.

`WidthModel` is the base class of `anywidth.integral.IntegralModel` (a width samples weight
functions) and `anywidth.slim.SlimmableModel` (a width keeps the first channels): it owns
planning, `WidthModel.at` and `WidthModel.resample`. `PlanRequest` is what width to run or
export at: a plan, a ratio or a MAC/parameter budget.

Example:
    >>> from anywidth.width import PlanRequest, WidthModel
    >>> isinstance(inn, WidthModel)
    True
    >>> small = inn.resample(PlanRequest(target_macs=0.5, allocation="global"))
"""

from anywidth.width.model import WidthModel
from anywidth.width.request import ALLOCATIONS, PlanRequest, PlanSpec

__all__ = ["ALLOCATIONS", "PlanRequest", "PlanSpec", "WidthModel"]
