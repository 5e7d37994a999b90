"""Width models: one network that runs, and exports, at any width plan.

`PlanRequest` is what width to run or export at (a plan, a ratio or a MAC/parameter
budget); the planning shared by `anywidth.integral.IntegralModel` and
`anywidth.slim.SlimmableModel` lives here.

Example:
    >>> from anywidth.width import PlanRequest
    >>> small = inn.resample(PlanRequest(target_macs=0.5, allocation="global"))
"""

from anywidth.width.request import ALLOCATIONS, PlanRequest, PlanSpec

__all__ = ["ALLOCATIONS", "PlanRequest", "PlanSpec"]
