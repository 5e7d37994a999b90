"""`compress`: one verb for every method, dispatching on the config's type.

Each method registers a handler for its config type (`register_handler`), the way
torchao's ``quantize_(model, config)`` dispatches; `compress` checks the inputs once,
measures the model, runs the handler, recalibrates BatchNorm when data is given, measures
again and returns one `CompressionReport`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from anywidth.budget import Budget
from anywidth.compression.checks import check_batches, check_example_input, warn_non_finite
from anywidth.compression.report import CompressionReport, SlowerWarning
from anywidth.data import Loaders
from anywidth.latency import LatencyConfig, compare_latency
from anywidth.measure import profile
from anywidth.registry import load_compression_methods
from anywidth.train.recalibrate import recalibrate_bn_

__all__ = [
    "RECALIBRATE_BATCHES",
    "Compressed",
    "compress",
    "handled_configs",
    "reference_model",
    "register_handler",
    "train_batches",
]

RECALIBRATE_BATCHES = 20
"""Batches of data `compress` re-estimates BatchNorm statistics on."""


@dataclass
class Compressed:
    """What a handler returns: the new model, its widths and the steps it took, in words.

    ``method`` overrides the name the handler was registered with (one handler serving
    two kinds of model says which it saw); ``details`` is the method's own report
    (`PruneReport`, `LowRankReport`, ...), passed on as `CompressionReport.details`.
    """

    model: nn.Module
    widths: dict[str, Any] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    method: str | None = None
    details: Any = None


Handler = Callable[[nn.Module, tuple, Any, Any], Compressed]
Reference = Callable[[nn.Module], nn.Module]


@dataclass(frozen=True)
class _Entry:
    method: str
    run: Handler
    reference: Reference | None
    latency_budget: bool = False


_HANDLERS: dict[type, _Entry] = {}


def register_handler(
    config_type: type,
    method: str,
    *,
    reference: Reference | None = None,
    latency_budget: bool = False,
) -> Callable[[Handler], Handler]:
    """Make the decorated function `compress`'s handler for configs of ``config_type``.

    A handler takes ``(model, example_input, config, data)`` (``data`` as the caller gave
    it: None, batches or a `Loaders`), must not change ``model``, and returns a
    `Compressed`. It does not recalibrate BatchNorm: `compress` does that for every method.

    Args:
        config_type: the config dataclass the handler serves (subclasses too).
        method: the method's short name in reports (``"prune"``).
        reference: the plain model a budget is measured against, when the handler's input
            is not one (an any-width model's full width); default: the input itself.
        latency_budget: the handler meets ``Budget(latency=...)`` (its config then has a
            ``latency`` field, a `LatencyConfig` or None).

    Example (how `anywidth.pruning` registers; see ``anywidth/pruning/prune.py``)::

        @register_handler(PruneConfig, "prune")
        def _compress(model, example_input, config, data):
            small, report = prune(model, example_input, config, train_batches(data))
            return Compressed(small, report.widths_after, ["pruned ..."])
    """

    def decorate(fn: Handler) -> Handler:
        _HANDLERS[config_type] = _Entry(method, fn, reference, latency_budget)
        return fn

    return decorate


def handled_configs() -> list[str]:
    """The names of the config types `compress` accepts."""
    load_compression_methods()
    return sorted(t.__name__ for t in _HANDLERS)


def _entry_for(config: object) -> _Entry:
    for attempt in range(2):
        for kind in type(config).__mro__:
            if kind in _HANDLERS:
                return _HANDLERS[kind]
        if attempt == 0:  # a method's handler module is imported on first use
            load_compression_methods()
    raise TypeError(
        f"config: no compression method takes a {type(config).__name__}; pass one of "
        f"{handled_configs()} (e.g. PruneConfig(budget=Budget(macs=0.5)))"
    )


def reference_model(model: nn.Module, config: object) -> nn.Module:
    """The plain model a budget for ``config`` is measured against: ``model`` itself, or
    for an any-width model (``ShrinkConfig``) its full width."""
    entry = _entry_for(config)
    return entry.reference(model) if entry.reference else model


def train_batches(data: object) -> Iterable | None:
    """The training batches of ``data``: a `Loaders` record's train loader, one tensor as a
    list of one batch, else ``data`` as it is."""
    if isinstance(data, Loaders):
        return data.train
    return [data] if isinstance(data, torch.Tensor) else data


def _budget_of(config: object, before) -> Budget | None:
    """The config's budget as a fraction of the original (None: the config has none)."""
    get = getattr(config, "as_budget", None)
    budget = get() if callable(get) else getattr(config, "budget", None)
    if budget is None or budget.unit == "fraction":
        return budget
    # absolute MAC counts are for the whole example input, the Report's are per sample
    scale = before.batch_size if budget.metric == "macs" else 1
    return budget.resolve(getattr(before, budget.metric) * scale)


def _latency_setting(entry: _Entry, config: Any, latency: LatencyConfig | None):
    """The setting both models are timed on (None: none asked for) and the config the
    handler gets (a latency budget's config carries the setting)."""
    own = getattr(config, "latency", None)
    if latency is not None and own is not None and latency != own:
        raise ValueError(
            f"compress(latency={latency}) and {type(config).__name__}.latency={own} differ; "
            "give the setting once"
        )
    get = getattr(config, "as_budget", None)
    budget = get() if callable(get) else getattr(config, "budget", None)
    if budget is None or budget.metric != "latency":
        return latency or own, config
    if not entry.latency_budget:
        raise ValueError(
            f"{type(config).__name__}: Budget(latency=...) is not supported by the "
            f"{entry.method!r} method; give Budget(macs=...) and compress(..., "
            "latency=LatencyConfig(...)) to see the measured speed-up, or use PruneConfig, "
            "LowRankConfig or ShrinkConfig"
        )
    setting = latency or own or LatencyConfig()
    return setting, replace(config, latency=setting)


def compress(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    config: Any,
    data: Loaders | Iterable | torch.Tensor | None = None,
    *,
    recalibrate: bool = True,
    latency: LatencyConfig | None = None,
) -> tuple[nn.Module, CompressionReport]:
    """Compress ``model`` with the method ``config`` names, to its budget, in one call.

    ``PruneConfig`` prunes channels (`anywidth.pruning.prune`), ``LowRankConfig`` factors
    layers (`anywidth.lowrank.decompose`), ``SearchConfig`` searches widths and depths and
    distils the result (`anywidth.search`), ``ShrinkConfig`` resamples an `IntegralModel`
    (partition-tuned) or cuts a `SlimmableModel` (`anywidth.slim.shrink`). With ``data``
    the result's BatchNorm statistics are re-estimated (every method; ``report.done`` says
    so), and with a `Loaders` record of a classification dataset both models' accuracy is
    measured on its test split. The caller's model is not changed.

    Args:
        model: the trained network (an any-width model for ``ShrinkConfig``).
        example_input: a batch of the shape the model expects (batch 1 is enough).
        config: the method's config; its ``budget`` (an `anywidth.Budget`) sets the size.
        data: a `Loaders` record, a DataLoader or a list of ``(inputs, labels)`` batches.
        recalibrate: re-estimate BatchNorm statistics on ``data`` (False: leave them as
            the method made them).
        latency: time the original and the result side by side on this runtime, batch and
            threads (`anywidth.latency.compare_latency`): the report shows the measured
            speed-up beside the MAC ratio, and a `SlowerWarning` is issued when the result
            is not faster. A config's own ``latency`` setting (a latency budget's) is used
            when this is None. Without either, latency is a quick torch timing.

    Returns:
        ``(compressed model, CompressionReport)``.

    Raises:
        TypeError: a config no method takes, an example input that is not a tensor, data
            that are not batches; each message names the argument.
        ValueError: the model fails on ``example_input``, the budget cannot be met, or
            a latency budget goes to a method that cannot meet one.

    Example:
        >>> import anywidth
        >>> from anywidth import Budget, compress
        >>> from anywidth.pruning import PruneConfig
        >>> model = anywidth.create_model("tiny_resnet", num_classes=10)
        >>> x = torch.randn(1, 3, 8, 8)
        >>> small, report = compress(model, x, PruneConfig(budget=Budget(macs=0.5)))
        >>> report.method, report.met_budget, abs(report.mac_ratio - 0.5) <= 0.02 * 0.5
        ('prune', True, True)
        >>> small, report = compress(model, x, PruneConfig(budget=Budget(macs=0.5)), data=x)
        >>> report.done[-1]
        'recalibrated BatchNorm on up to 20 batches'
    """
    entry = _entry_for(config)
    setting, config = _latency_setting(entry, config, latency)
    reference = reference_model(model, config)
    check_example_input(reference, example_input)
    if data is not None:
        check_batches(train_batches(data))
    warn_non_finite(reference)
    # accuracy is the one metric a Report holds: classification data only (no classes: SR)
    classes = isinstance(data, Loaders) and data.num_classes > 0
    scored = data.test if classes else None
    if setting is None:  # a quick timing; with a setting both are timed side by side below
        before = profile(reference, example_input, loader=scored, name="before", repeats=5)
    with warnings.catch_warnings():  # warned once above; the method need not repeat it
        warnings.filterwarnings("ignore", message=".*NaN or inf", category=RuntimeWarning)
        result = entry.run(model, example_input, config, data)
    small = copy.deepcopy(result.model) if result.model is model else result.model
    done = list(result.done)
    has_bn = any(isinstance(m, _BatchNorm) for m in small.modules())
    if recalibrate and data is not None and has_bn:
        recalibrate_bn_(small, train_batches(data), batches=RECALIBRATE_BATCHES)
        done.append(f"recalibrated BatchNorm on up to {RECALIBRATE_BATCHES} batches")
    if setting is None:
        after = profile(small, example_input, loader=scored, name="after", repeats=5)
    else:
        both = compare_latency({"before": reference, "after": small}, example_input, setting)
        before, after = (
            profile(m, example_input, loader=scored, name=name, timing=both[name])
            for name, m in (("before", reference), ("after", small))
        )
    to_dict = getattr(config, "to_dict", None)
    report = CompressionReport(
        method=result.method or entry.method,
        before=before,
        after=after,
        widths=dict(result.widths),
        done=done,
        budget=_budget_of(config, before),
        config=to_dict() if callable(to_dict) else {},
        latency=setting,
        details=result.details,
    )
    if (slower := report.slower()) is not None:
        warnings.warn(slower, SlowerWarning, stacklevel=2)
    return small, report
