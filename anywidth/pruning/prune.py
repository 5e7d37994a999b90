"""`prune`: structured pruning to a MAC, parameter or latency budget in one call."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from anywidth._config import Config
from anywidth._latency_budget import missed_budget
from anywidth.budget import Budget, as_budget
from anywidth.compression import Compressed, register_handler, train_batches
from anywidth.compression.checks import warn_non_finite
from anywidth.graph import Budget as PlanBudget
from anywidth.graph import (
    Cutter,
    WidthCost,
    analyze_channels,
    group_rank_ratios,
    plan_for_budget,
    rank_priority,
)
from anywidth.graph.budget import check_target
from anywidth.latency import LatencyConfig, as_latency_config
from anywidth.measure import count_macs, count_params
from anywidth.pruning._latency import plan_for_latency
from anywidth.pruning.importance import Importance, make_importance

__all__ = ["PruneConfig", "PruneReport", "prune"]

_IMPORTANCES = ("l1", "l2", "taylor", "activation", "random")
_RANKINGS = ("global", "local", "rank")
_TOLERANCE = 0.02


@dataclass
class PruneConfig(Config):
    """How to prune: the criterion, the ranking and the budget.

    Args:
        target_macs: the older form of ``budget``: fraction of the original MACs to keep
            (0 < f <= 1) or, above 1, an absolute count (``2.0`` means 2 MACs, not twice the
            model); finite.
        target_params: the same for parameters; give one of ``budget``, ``target_macs``
            and ``target_params``.
        importance: ``"l1"``, ``"l2"``, ``"taylor"`` (needs ``data``), ``"activation"``
            (needs ``data``, no labels; `ActivationImportance`: the best on transformers)
            or ``"random"``.
        ranking: ``"global"`` compares channels across groups (scores divided by their
            group's mean); ``"local"`` removes the same fraction from every group;
            ``"rank"`` (needs ``data``) keeps channels in proportion to the numerical rank
            of each group's outputs (`anywidth.graph.group_rank_ratios`), so groups whose
            outputs are rank-deficient give up more; within a group the criterion decides.
        round_to: group sizes are multiples of this (hardware-friendly widths).
        min_channels: the smallest width a group may be cut to.
        fixed: group names or globs never to cut, e.g. ``["layer3.*"]``.
        tolerance: with ``target_macs``/``target_params``, the result meets the target
            within this relative distance (a ``budget`` carries its own).
        taylor_batches: batches of data used by the Taylor and activation criteria.
        seed: seed of the random criterion.
        budget: the target as an `anywidth.Budget` (a fraction of the original, or
            ``Budget.absolute(...)``), as every method's config takes it. A
            ``Budget(latency=...)`` is met on ``latency``'s runtime, batch and threads:
            widths are chosen from a per-layer latency table, then the cut model is
            measured beside the original (a few corrections; the closest is kept).
        latency: where latency is measured (`anywidth.latency.LatencyConfig`); None:
            ``LatencyConfig()`` (torch eager, the example's batch, 1 thread).
        latency_cache: a folder for the per-layer latency table (JSON, one file per
            setting and machine); None: kept in memory for the process only.

    Example:
        >>> PruneConfig(budget=Budget(macs=0.5), importance="l1", round_to=4)
        >>> PruneConfig(budget=Budget(latency=0.5), latency=LatencyConfig(runtime="onnxruntime"))
        >>> PruneConfig(target_macs=0.5)  # the same target, older form
    """

    target_macs: float | None = None
    target_params: float | None = None
    importance: str = "l1"
    ranking: str = "global"
    round_to: int = 1
    min_channels: int = 1
    fixed: tuple[str, ...] = ()
    tolerance: float = _TOLERANCE
    taylor_batches: int = 4
    seed: int = 0
    budget: Budget | None = None
    latency: LatencyConfig | None = None
    latency_cache: str | None = None

    def __post_init__(self) -> None:
        self.budget = as_budget("PruneConfig.budget", self.budget)
        self.latency = as_latency_config("PruneConfig.latency", self.latency)
        legacy = self.target_macs is not None or self.target_params is not None
        if self.budget is None and not legacy:
            raise ValueError(
                "PruneConfig needs budget= (e.g. budget=Budget(macs=0.5)), or the older "
                "target_macs= or target_params="
            )
        if self.budget is not None and legacy:
            raise ValueError(
                "PruneConfig takes budget= or target_macs=/target_params=, not both; "
                "give only budget="
            )
        if self.budget is not None and self.tolerance != _TOLERANCE:
            raise ValueError(
                "PruneConfig.tolerance is for target_macs=/target_params=; with budget= "
                "give the tolerance to the Budget: Budget(macs=..., tolerance=...)"
            )
        for name in ("target_macs", "target_params"):
            if getattr(self, name) is not None:
                check_target(f"PruneConfig.{name}", getattr(self, name))
        if self.importance not in _IMPORTANCES:
            raise ValueError(
                f"PruneConfig.importance={self.importance!r}; use one of {list(_IMPORTANCES)}"
            )
        if self.ranking not in _RANKINGS:
            raise ValueError(f"PruneConfig.ranking={self.ranking!r}; use one of {list(_RANKINGS)}")
        if self.round_to < 1 or self.min_channels < 1:
            raise ValueError("PruneConfig.round_to and .min_channels must be >= 1")
        if self.taylor_batches < 1:
            raise ValueError("PruneConfig.taylor_batches must be >= 1")
        self.fixed = tuple(self.fixed)
        if not self.by_latency:
            self.plan_budget()  # validates the target and the tolerance

    @property
    def by_latency(self) -> bool:
        """Whether the budget is a fraction of the measured latency."""
        return self.budget is not None and self.budget.metric == "latency"

    def as_budget(self) -> Budget:
        """The target as an `anywidth.Budget`, whichever way it was given."""
        if self.budget is not None:
            return self.budget
        metric = "macs" if self.target_macs is not None else "params"
        value = self.target_macs if self.target_macs is not None else self.target_params
        if value <= 1:
            return Budget(**{metric: value}, tolerance=self.tolerance)
        return Budget.absolute(**{metric: value}, tolerance=self.tolerance)

    def plan_budget(self) -> PlanBudget:
        """The target as `anywidth.graph.plan_for_budget` takes it."""
        if self.budget is None:
            return PlanBudget(
                macs=self.target_macs, params=self.target_params, tolerance=self.tolerance
            )
        b = self.budget
        return PlanBudget(**{b.metric: b.value}, tolerance=b.tolerance)


@dataclass
class PruneReport:
    """What `prune` did: widths per group before and after, size and cost before and after."""

    widths_before: dict[str, int]
    widths_after: dict[str, int]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    seconds: float
    config: dict = field(default_factory=dict)
    latency_ratio: float | None = None

    @property
    def mac_ratio(self) -> float:
        return self.macs_after / self.macs_before

    @property
    def param_ratio(self) -> float:
        return self.params_after / self.params_before

    def changed(self) -> dict[str, tuple[int, int]]:
        """``{group: (before, after)}`` for the groups that were cut."""
        return {
            n: (b, self.widths_after[n])
            for n, b in self.widths_before.items()
            if self.widths_after[n] != b
        }

    def to_dict(self) -> dict:
        return asdict(self)


def _priorities(groups, scores: dict[str, torch.Tensor], ranking: str) -> dict[str, torch.Tensor]:
    """Make scores comparable across groups (global) or turn them into rank fractions (local)."""
    out = {}
    for g in groups:
        s = scores[g.name]
        if ranking == "global":
            out[g.name] = s / s.mean().clamp_min(1e-30)
        else:
            # Rank fraction: every group loses channels at the same pace.
            rank = torch.empty_like(s)
            rank[torch.argsort(s, descending=True, stable=True)] = torch.arange(
                g.size, dtype=s.dtype
            )
            out[g.name] = 1.0 - rank / g.size
    return out


def prune(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    config: PruneConfig,
    data: Iterable | None = None,
    importance: Importance | None = None,
) -> tuple[nn.Module, PruneReport]:
    """Structured pruning to a MAC or parameter budget, in one call.

    Scores every channel of every resizable channel group, keeps the best channels until
    the budget is met (within ``config.tolerance``) and builds the physically smaller model
    with `anywidth.graph.cut`. The caller's model is not changed. Without fine-tuning, run
    `anywidth.train.recalibrate_bn` on the result: pruning shifts BatchNorm statistics.

    Args:
        model: the trained network.
        example_input: an input of the shape the model expects (batch 1 is enough).
        config: criterion, ranking and budget.
        data: training batches (needed by the Taylor and activation criteria and
            ``ranking="rank"``; the activation criterion also takes dicts of keyword inputs).
        importance: a custom `Importance`; overrides ``config.importance``.

    Returns:
        ``(smaller model, PruneReport)``.

    Example:
        >>> small, report = prune(model, x, PruneConfig(target_macs=0.5))
        >>> small = recalibrate_bn(small, loaders.train)
    """
    start = time.perf_counter()
    warn_non_finite(model)
    groups = analyze_channels(model, example_input, fixed=config.fixed)  # traced once
    resizable = [g for g in groups if not g.fixed]
    crit = importance or make_importance(
        config.importance, taylor_batches=config.taylor_batches, seed=config.seed
    )
    crit.prepare(model, data)
    tensors = dict(model.named_parameters())
    scores = {g.name: crit(g, tensors) for g in resizable}
    if config.ranking == "rank":
        if data is None:
            raise ValueError(
                "PruneConfig.ranking='rank' measures output ranks on data: pass data= "
                "(training batches), or use ranking='global' or 'local'"
            )
        priority = rank_priority(resizable, group_rank_ratios(model, data, resizable), scores)
    else:
        priority = _priorities(resizable, scores, config.ranking)
    cost = WidthCost(model, example_input, groups)
    cutter = Cutter(model, example_input, groups=groups)
    latency_ratio = None
    if config.by_latency:
        found = plan_for_latency(model, example_input, cost, priority, cutter, config)
        keep, latency_ratio = found.keep, found.ratio
        _warn_if_missed(config, found)
    else:
        keep = plan_for_budget(
            cost,
            priority,
            config.plan_budget(),
            round_to=config.round_to,
            min_channels=config.min_channels,
        )
    small = cutter(keep, method="prune")
    before = {g.name: g.size for g in groups}
    report = PruneReport(
        widths_before=before,
        widths_after={n: len(keep[n]) if n in keep else s for n, s in before.items()},
        params_before=count_params(model),
        params_after=count_params(small),
        macs_before=count_macs(model, example_input),
        macs_after=count_macs(small, example_input),
        seconds=time.perf_counter() - start,
        config=config.to_dict(),
        latency_ratio=latency_ratio,
    )
    return small, report


def _warn_if_missed(config: PruneConfig, found) -> None:
    hint = ("widths cannot buy more there (try another runtime or batch, or a larger "
            "tolerance)")  # fmt: skip
    text = missed_budget("PruneConfig", config.budget, found, found.setting.describe(), hint)
    if text is not None:
        warnings.warn(text, RuntimeWarning, stacklevel=3)


@register_handler(PruneConfig, "prune", latency_budget=True)
def _compress(model: nn.Module, example_input, config: PruneConfig, data) -> Compressed:
    """`anywidth.compress`'s pruning step."""
    small, report = prune(model, example_input, config, data=train_batches(data))
    done = [
        f"pruned {len(report.changed())} channel groups "
        f"({config.importance} importance, {config.ranking} ranking)"
    ]
    if report.latency_ratio is not None:
        done.append(
            f"widths from a per-layer latency table; measured {report.latency_ratio:.3f} of "
            f"the original's latency ({config.latency or LatencyConfig()})"
        )
    return Compressed(small, dict(report.widths_after), done, details=report)
