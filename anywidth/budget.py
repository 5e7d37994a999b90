"""`Budget`: how small a compressed model must be, with one meaning for every method.

A budget is a fraction in (0, 1] of the original model's MACs, parameters or measured
latency (on the runtime, batch and threads of an `anywidth.latency.LatencyConfig`); an absolute
count is only ever written as ``Budget.absolute(macs=...)``, so ``2.0`` can never be read as
"two MACs" by one method and "twice the model" by another. The tolerance is relative to
the target everywhere: a result meets ``Budget(macs=0.5, tolerance=0.02)`` when its MACs
are within 2% of half the original's. A latency budget is only a fraction (milliseconds
depend on the machine) and is met within 5% by default: timings are noisier than counts.

It depends on nothing else in anywidth, so every layer (`anywidth.graph` included) can take
it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from anywidth._config import check_keys

__all__ = ["Budget", "as_budget"]

_METRICS = ("macs", "params", "latency")
_UNITS = ("fraction", "count")
_NAMES = {"macs": "MACs", "params": "parameters", "latency": "latency"}
_TOLERANCES = {"macs": 0.02, "params": 0.02, "latency": 0.05}


def _number(value: object) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and math.isfinite(value)


@dataclass(frozen=True)
class Budget:
    """A target size: a fraction of the original model's MACs, parameters or latency.

    Args:
        macs: the fraction of the original MACs to keep, in (0, 1] (0.5 keeps half).
        params: the same for parameters.
        latency: the fraction of the original's measured latency, in (0, 1] (0.5: twice as
            fast), on the runtime, batch and threads the method's ``latency`` setting names.
            Give exactly one of ``macs``, ``params`` and ``latency``.
        tolerance: how far from the target the result may land, relative to the target
            (0.02: within 2% of it), in (0, 1); None: 0.02 for MACs and params, 0.05 for
            latency.
        unit: ``"fraction"``; `Budget.absolute` makes ``"count"`` budgets.

    Raises:
        ValueError: no target or two, a fraction outside (0, 1] (the message points at
            `Budget.absolute` for counts), a tolerance outside (0, 1), an unknown unit.

    Example:
        >>> Budget(macs=0.5)
        Budget(macs=0.5, params=None, latency=None, tolerance=0.02, unit='fraction')
        >>> Budget(latency=0.5).tolerance
        0.05
        >>> Budget(macs=2e6)
        Traceback (most recent call last):
        ValueError: Budget(macs=2000000.0): macs is a fraction of the original model in (0, 1] ...
    """

    macs: float | None = None
    params: float | None = None
    latency: float | None = None
    tolerance: float | None = None
    unit: str = "fraction"

    def __post_init__(self) -> None:
        given = [m for m in _METRICS if getattr(self, m) is not None]
        if len(given) != 1:
            raise ValueError(
                f"Budget needs exactly one of macs=, params= or latency=, got "
                f"{given or 'none'}; e.g. Budget(macs=0.5) keeps half the MACs"
            )
        if self.tolerance is None:
            object.__setattr__(self, "tolerance", _TOLERANCES[given[0]])
        if given[0] == "latency" and self.unit != "fraction":
            raise ValueError(
                f"Budget(latency={self.latency!r}) is a fraction of the original's measured "
                "latency in (0, 1] (0.5: twice as fast); milliseconds depend on the machine, "
                "so there is no absolute latency budget"
            )
        if self.unit not in _UNITS:
            raise ValueError(f"Budget unit={self.unit!r}; use one of {list(_UNITS)}")
        metric, value = given[0], getattr(self, given[0])
        if self.unit == "fraction" and not (_number(value) and 0 < value <= 1):
            raise ValueError(
                f"Budget({metric}={value!r}): {metric} is a fraction of the original model in "
                f"(0, 1] (0.5 keeps half); for an absolute count use "
                f"Budget.absolute({metric}={value!r})"
            )
        if self.unit == "count" and not (_number(value) and value > 1):
            raise ValueError(
                f"Budget.absolute({metric}={value!r}): a count of {_NAMES[metric]} must be a "
                "finite number above 1"
            )
        if not (_number(self.tolerance) and 0 < self.tolerance < 1):
            raise ValueError(
                f"Budget tolerance={self.tolerance!r} must be in (0, 1), relative to the "
                "target (0.02: within 2%)"
            )

    @classmethod
    def absolute(
        cls, *, macs: float | None = None, params: float | None = None, tolerance: float = 0.02
    ) -> Budget:
        """A budget in absolute counts: at most about ``macs`` MACs (per sample of the
        example input) or ``params`` parameters.

        Example:
            >>> Budget.absolute(params=100_000)
            Budget(macs=None, params=100000, latency=None, tolerance=0.02, unit='count')
        """
        return cls(macs=macs, params=params, tolerance=tolerance, unit="count")

    @property
    def metric(self) -> str:
        """``"macs"``, ``"params"`` or ``"latency"``: what the budget limits."""
        return next(m for m in _METRICS if getattr(self, m) is not None)

    @property
    def value(self) -> float:
        """The target as given: a fraction, or a count for an absolute budget."""
        return float(getattr(self, self.metric))

    def fraction_of(self, full: int) -> float:
        """The target as a fraction of ``full``, the original model's count.

        Raises:
            ValueError: an absolute budget at or above ``full`` (nothing to remove).

        Example:
            >>> Budget.absolute(macs=500).fraction_of(1000)
            0.5
        """
        if self.unit == "fraction":
            return self.value
        if self.value >= full:
            raise ValueError(
                f"Budget.absolute({self.metric}={self.value:g}) is not below the model's "
                f"{full:,} {_NAMES[self.metric]}: nothing to remove; give a smaller count "
                "or a fraction such as Budget(macs=0.5)"
            )
        return self.value / full

    def resolve(self, full: int) -> Budget:
        """The same budget as a fraction of ``full`` (a fraction budget is returned as is)."""
        if self.unit == "fraction":
            return self
        return replace(self, **{self.metric: self.fraction_of(full)}, unit="fraction")

    def met_by(self, achieved: float, full: float) -> bool:
        """Whether a model with ``achieved`` of ``full`` MACs (or params) meets the budget.

        Example:
            >>> Budget(macs=0.5, tolerance=0.02).met_by(505, 1000)
            True
        """
        target = self.fraction_of(int(full)) * full
        return abs(achieved - target) <= self.tolerance * target

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict; `from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        """Rebuild from `to_dict` output; an unknown key raises ``ValueError`` naming it."""
        check_keys("Budget", data, [f.name for f in fields(cls)])
        return cls(**data)


def as_budget(owner: str, value: Budget | Mapping[str, Any] | None) -> Budget | None:
    """``value`` as a `Budget` (a dict from a saved config is read back), or None.

    Raises:
        TypeError: anything else, naming ``owner`` (e.g. ``"PruneConfig.budget"``).
    """
    if value is None or isinstance(value, Budget):
        return value
    if isinstance(value, Mapping):
        return Budget.from_dict(value)
    raise TypeError(
        f"{owner}={value!r} is not a Budget; give anywidth.Budget(macs=0.5) or "
        "Budget.absolute(params=100_000)"
    )
