"""`shrink`: a plain smaller model from any width model, tuned and recalibrated by default."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from anywidth._config import Config
from anywidth._latency_budget import missed_budget
from anywidth.budget import Budget, as_budget
from anywidth.compression import Compressed, register_handler, train_batches
from anywidth.integral import IntegralModel
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.latency import LatencyConfig, as_latency_config
from anywidth.slim._latency import plan_for_latency
from anywidth.train import recalibrate_bn_
from anywidth.width import ALLOCATIONS, PlanRequest, WidthModel

__all__ = ["ShrinkConfig", "ShrinkReport", "shrink"]

_LOSSES = ("cross_entropy", "l1", "l2")


@dataclass
class ShrinkConfig(Config):
    """How to cut an any-width model (`IntegralModel` or `SlimmableModel`): the plan and the
    INN's partition tuning.

    Args:
        budget: the target as an `anywidth.Budget` (a fraction of the full width's MACs or
            parameters, or ``Budget.absolute(...)``). A ``Budget(latency=...)`` is a
            fraction of the full-width export's latency on ``latency``'s runtime, batch and
            threads: plans from the allocation at a MAC fraction, chosen on a per-layer
            latency table, then the export measured beside the full width's (a few
            corrections; the closest is kept, with a warning when it misses the budget).
        ratio: instead of a budget, the same width ratio in (0, 1] for every group.
        allocation: how a budget is spread over the groups: ``"uniform"``, ``"global"``
            or ``"rank"`` (needs data), as in `anywidth.width.PlanRequest`.
        tune_steps: partition-tuning steps of an INN (needs data; 0 skips it).
        loss: what partition tuning minimises, the loss of the model's task
            (`anywidth.train.task.Task.loss`): ``"cross_entropy"`` for classifiers,
            ``"l1"``/``"l2"`` for image-to-image models.
        round_to: with a budget, group widths are multiples of this (8 or 16 suit oneDNN
            and tensor cores), as `PruneConfig.round_to`; whole groups stay whole.
        latency: where a latency budget is measured (`anywidth.latency.LatencyConfig`);
            None: ``LatencyConfig()`` (torch eager, the example's batch, 1 thread).
        latency_cache: a folder for the per-layer latency table (None: in memory only).

    Raises:
        ValueError: neither or both of ``budget`` and ``ratio``, or a bad value (named).

    Example:
        >>> ShrinkConfig(budget=Budget(macs=0.25), tune_steps=100)
        >>> ShrinkConfig(ratio=0.5, tune_steps=0)
        >>> ShrinkConfig(budget=Budget(latency=0.5), latency=LatencyConfig(batch=1, threads=1))
    """

    budget: Budget | None = None
    ratio: float | None = None
    allocation: str = "uniform"
    tune_steps: int = 100
    loss: str = "cross_entropy"
    round_to: int = 1
    latency: LatencyConfig | None = None
    latency_cache: str | None = None

    def __post_init__(self) -> None:
        self.budget = as_budget("ShrinkConfig.budget", self.budget)
        self.latency = as_latency_config("ShrinkConfig.latency", self.latency)
        if (self.budget is None) == (self.ratio is None):
            raise ValueError(
                "ShrinkConfig needs exactly one of budget= (e.g. Budget(macs=0.25)) or "
                "ratio= (e.g. 0.5): without one it would return the full width"
            )
        r = self.ratio
        if r is not None and not (isinstance(r, int | float) and not isinstance(r, bool)
                                  and 0 < r <= 1):  # fmt: skip
            raise ValueError(f"ShrinkConfig.ratio={r!r} must be a width ratio in (0, 1]")
        if self.allocation not in ALLOCATIONS:
            raise ValueError(
                f"ShrinkConfig.allocation={self.allocation!r}; use one of {list(ALLOCATIONS)}"
            )
        t = self.tune_steps
        if not (isinstance(t, int) and not isinstance(t, bool) and t >= 0):
            raise ValueError(f"ShrinkConfig.tune_steps={t!r} must be an int >= 0")
        r = self.round_to
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"ShrinkConfig.round_to={r!r} must be an int >= 1")
        if self.loss not in _LOSSES:
            raise ValueError(f"ShrinkConfig.loss={self.loss!r}; use one of {list(_LOSSES)}")

    def as_budget(self) -> Budget | None:
        """The budget (None for a ratio)."""
        return self.budget

    @property
    def by_latency(self) -> bool:
        """Whether the budget is a fraction of the measured latency."""
        return self.budget is not None and self.budget.metric == "latency"

    def plan_request(self, data: Any = None) -> PlanRequest:
        """The `PlanRequest` this config asks for (``data``: for ``allocation="rank"``); a
        latency budget has none (`shrink` searches its plan)."""
        if self.by_latency:
            raise ValueError(
                "ShrinkConfig.budget is a latency budget: shrink finds its plan by measuring; "
                "plan_request is for ratios and MAC or parameter budgets"
            )
        if self.budget is None:
            return PlanRequest(self.ratio, allocation=self.allocation, data=data)
        b = self.budget
        target = {f"target_{b.metric}": b.value, "tolerance": b.tolerance}
        return PlanRequest(**target, allocation=self.allocation, round_to=self.round_to, data=data)


@dataclass
class ShrinkReport:
    """What `shrink` did.

    Attributes:
        plan: ``{group: size}`` of the smaller model.
        tune_steps: partition-tuning steps spent (0: none; slimmable models have no partition).
        recalibrate_batches: batches BatchNorm statistics were re-estimated on (0: none).
        done: the same in words, for a log line.
        latency_ratio: with a latency budget, the export's measured latency over the full
            width's (before tuning and recalibration, which change no shape).
    """

    plan: dict[str, int]
    tune_steps: int = 0
    recalibrate_batches: int = 0
    done: list[str] = field(default_factory=list)
    latency_ratio: float | None = None


def _budget(value: float | None, metric: str) -> Budget | None:
    """`shrink`'s older ``target_macs=``/``target_params=`` as a `Budget` (above 1: a count)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 1:
        return Budget.absolute(**{metric: value})
    return Budget(**{metric: value})


def _config(
    ratio: float | None,
    target_macs: float | None,
    target_params: float | None,
    allocation: str,
    tune_steps: int,
    loss: str,
) -> ShrinkConfig:
    """The `ShrinkConfig` that `shrink`'s older keywords describe."""
    budgets = [b for b in (_budget(target_macs, "macs"), _budget(target_params, "params")) if b]
    if len(budgets) + (ratio is not None) != 1:
        raise ValueError(
            "shrink needs exactly one of ratio=, target_macs= or target_params= (or a "
            "ShrinkConfig): without one it would return the full width"
        )
    budget = budgets[0] if budgets else None
    return ShrinkConfig(budget, ratio, allocation, tune_steps, loss)


def shrink(
    wide: WidthModel,
    data: Iterable | None,
    config: ShrinkConfig | None = None,
    *,
    ratio: float | None = None,
    target_macs: float | None = None,
    target_params: float | None = None,
    allocation: str = "uniform",
    tune_steps: int = 100,
    recalibrate_batches: int = 20,
    loss: str = "cross_entropy",
) -> tuple[nn.Module, ShrinkReport]:
    """The best plain model this package knows how to make from ``wide`` at a budget.

    An INN's partition is tuned for the plan (``tune_steps`` Adam steps on the grids and
    BatchNorm γ/β functions, weights frozen: about +50 points at 25% MACs on an untrained
    INN), then the exported model's BatchNorm statistics are re-estimated on
    ``recalibrate_batches`` batches. A slimmable model keeps its first channels and is
    recalibrated. ``wide`` is not changed. A latency budget (``ShrinkConfig(budget=
    Budget(latency=0.5))``) is met on ``wide.example_input``: the plan is searched on a
    per-layer latency table and measured (`ShrinkConfig.budget`); ``report.latency_ratio``
    holds the measured ratio.

    Args:
        wide: an `IntegralModel` or a `SlimmableModel`.
        data: training batches ``(images, labels)`` for tuning and recalibration (None
            only with neither).
        config: the plan and tuning as a `ShrinkConfig`; or, in the older form, the
            keywords ``ratio``, ``target_macs``, ``target_params`` (above 1: a count),
            ``allocation``, ``tune_steps`` and ``loss`` below (give one of the first three).
        recalibrate_batches: 0 skips recalibration.

    Returns:
        ``(small model in eval mode, ShrinkReport)``.

    Raises:
        ValueError: no plan or budget (``shrink(slim, data)`` would return the full
            width), or ``data`` is None where tuning or recalibration needs it.
        TypeError: ``wide`` is not an any-width model.

    Example:
        >>> small, report = shrink(inn, loaders.train, ShrinkConfig(budget=Budget(macs=0.25)))
        >>> report.done
        ['tuned the partition for 100 steps (weights frozen)', 'recalibrated BatchNorm ...']
    """
    if not isinstance(wide, WidthModel):
        raise TypeError(
            f"shrink takes an IntegralModel or a SlimmableModel (a WidthModel), got "
            f"{type(wide).__name__}; "
            "make one with anywidth.integral.to_integral(model, x) or "
            "anywidth.slim.to_slimmable(model, x)"
        )
    if config is None:
        config = _config(ratio, target_macs, target_params, allocation, tune_steps, loss)
    elif any(v is not None for v in (ratio, target_macs, target_params)):
        raise ValueError("shrink takes a ShrinkConfig or ratio=/target_macs=/target_params=")
    tunes = isinstance(wide, IntegralModel) and config.tune_steps > 0
    if data is None and (tunes or recalibrate_batches > 0):
        raise ValueError(
            "data: shrink tunes the INN's partition and recalibrates BatchNorm on training "
            "batches; pass data=, or set tune_steps=0 and recalibrate_batches=0"
        )
    report = _planned(wide, config, data)
    plan = report.plan
    if tunes:
        tune = TuneConfig(steps=config.tune_steps)
        wide = tune_partition(wide, plan, data, tune, task=config.loss)
        report.tune_steps = config.tune_steps
        report.done.append(f"tuned the partition for {config.tune_steps} steps (weights frozen)")
    small = wide.resample(plan).eval()
    if recalibrate_batches > 0:
        recalibrate_bn_(small, data, batches=recalibrate_batches)
        report.recalibrate_batches = recalibrate_batches
        report.done.append(f"recalibrated BatchNorm on {recalibrate_batches} batches")
    return small.eval(), report


def _planned(wide: WidthModel, config: ShrinkConfig, data: Iterable | None) -> ShrinkReport:
    """The report with the plan `shrink` cuts to; a latency budget's is measured (and a
    warning says when the best reached misses it)."""
    if not config.by_latency:
        return ShrinkReport(plan=wide.width_plan(config.plan_request(data)))
    found = plan_for_latency(wide, config, data)
    hint = ("widths cannot buy more there (try another runtime or batch, or a larger "
            "tolerance)")  # fmt: skip
    text = missed_budget("ShrinkConfig", config.budget, found, found.setting.describe(), hint)
    if text is not None:
        warnings.warn(text, RuntimeWarning, stacklevel=3)
    done = [f"widths from a per-layer latency table; measured {found.ratio:.3f} of the full "
            f"width's latency ({found.setting.describe()})"]  # fmt: skip
    return ShrinkReport(plan=found.plan, done=done, latency_ratio=found.ratio)


def _full_width(wide: nn.Module) -> nn.Module:
    """What a budget of an any-width model is a fraction of: its full width, as a plain model."""
    if not isinstance(wide, WidthModel):
        raise TypeError(
            f"model: ShrinkConfig cuts an IntegralModel or a SlimmableModel, got "
            f"{type(wide).__name__}; convert it first with anywidth.integral.to_integral("
            "model, x) or anywidth.slim.to_slimmable(model, x), or prune it with PruneConfig"
        )
    return wide.resample(1.0).eval()


@register_handler(ShrinkConfig, "shrink", reference=_full_width, latency_budget=True)
def _compress(wide: nn.Module, example_input, config: ShrinkConfig, data) -> Compressed:
    """`anywidth.compress`'s any-width step (it recalibrates BatchNorm itself)."""
    small, report = shrink(wide, train_batches(data), config, recalibrate_batches=0)
    kind = "inn" if isinstance(wide, IntegralModel) else "slim"
    how = "resampled the INN" if kind == "inn" else "kept the first channels"
    return Compressed(small, report.plan, [*report.done, how], method=kind, details=report)
