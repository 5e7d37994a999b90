"""`PlanRequest`: what width a width model should run or be exported at.

A plan, a ratio or a MAC/parameter budget, and how a budget is spread over the channel
groups. It is the one argument type of `anywidth.width.WidthModel.width_plan` and
``resample``; their keywords (``target_macs=``, ``allocation=``...) are its fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anywidth.graph import Budget

__all__ = ["ALLOCATIONS", "PlanRequest", "PlanSpec"]

ALLOCATIONS: tuple[str, ...] = ("uniform", "global", "rank")

PlanSpec = Mapping[str, int] | float | None


@dataclass(frozen=True)
class PlanRequest:
    """A plan, a ratio or a budget, validated; `anywidth.width.WidthModel.width_plan`
    resolves it into ``{group: size}``.

    Args:
        plan: ``{group: size}`` (unlisted groups whole), a ratio in (0, 1] applied to every
            resizable group (rounded, at least 1), or None (the model's current sizes).
        target_macs: MAC budget, a fraction of the full width's (<= 1) or an absolute
            count, for the model's example input; through `anywidth.graph.plan_for_budget`.
        target_params: the same for parameters. Give at most one of the three.
        allocation: how a budget is spread: ``"uniform"`` (the same ratio everywhere),
            ``"global"`` (by the model's ``channel_importance``: groups whose channels
            matter unevenly give up more) or ``"rank"`` (sizes in proportion to the
            numerical rank of each group's outputs on ``data`` at full width,
            `anywidth.graph.group_rank_ratios`: rank-deficient groups give up more).
        tolerance: accepted relative distance to the budget, in (0, 1).
        round_to: budget sizes are multiples of this (except whole groups), at least 1.
        data: input batches (or a tensor) for ``allocation="rank"``; not compared.

    Raises:
        ValueError: more than one of ``plan``, ``target_macs`` and ``target_params``; an
            unknown ``allocation``; a budget ``allocation="rank"`` without ``data``; a bad
            ``tolerance``, ``round_to`` or budget value. Each message names the field.

    Example:
        >>> request = PlanRequest(target_macs=0.5, allocation="global")
        >>> small = inn.resample(request)       # the same as inn.resample(target_macs=0.5, ...)
    """

    plan: PlanSpec = None
    target_macs: float | None = None
    target_params: float | None = None
    allocation: str = "uniform"
    tolerance: float = 0.02
    round_to: int = 1
    data: Any = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        targets = {"plan": self.plan, "target_macs": self.target_macs}
        targets["target_params"] = self.target_params
        given = [name for name, value in targets.items() if value is not None]
        if len(given) > 1:
            raise ValueError(
                f"PlanRequest: give one of plan, target_macs= or target_params=, got {given}"
            )
        if self.allocation not in ALLOCATIONS:
            raise ValueError(
                f"PlanRequest allocation={self.allocation!r}; use one of {list(ALLOCATIONS)}"
            )
        r = self.round_to
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"PlanRequest round_to={r!r} must be an int >= 1")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"PlanRequest tolerance={self.tolerance!r} must be in (0, 1)")
        if self.is_budget:
            self.budget()  # validates the target
            if self.allocation == "rank" and self.data is None:
                raise ValueError(
                    "allocation='rank' measures output ranks on data: pass data= "
                    "(input batches), or use allocation='uniform' or 'global'"
                )

    @classmethod
    def of(cls, request: PlanRequest | PlanSpec = None, /, **fields: Any) -> PlanRequest:
        """``request`` as a `PlanRequest`: a `PlanRequest` as it is, else a plan or ratio
        with the other fields as keywords (how ``width_plan(0.5, allocation=...)`` reads).

        Raises:
            TypeError: a `PlanRequest` together with keywords, ``plan`` given twice, or a
                keyword that is not a field.
        """
        if isinstance(request, PlanRequest):
            if fields:
                raise TypeError(f"give a PlanRequest or keywords, not both (got {sorted(fields)})")
            return request
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            names = [f.name for f in dataclasses.fields(cls)]
            raise TypeError(f"unknown plan keyword(s) {unknown}; use {names}")
        if request is not None:
            if "plan" in fields:
                raise TypeError("plan given twice: as the first argument and as plan=")
            fields["plan"] = request
        return cls(**fields)

    @property
    def is_budget(self) -> bool:
        """Whether a MAC or parameter budget decides the sizes."""
        return self.target_macs is not None or self.target_params is not None

    def budget(self) -> Budget | None:
        """The `anywidth.graph.Budget` of ``target_macs``/``target_params`` (None: no budget)."""
        if not self.is_budget:
            return None
        return Budget(macs=self.target_macs, params=self.target_params, tolerance=self.tolerance)
