"""`decompose`: low-rank factorisation of conv and linear layers to a parameter or MAC budget.

The one method that changes layer *structure* rather than widths: each chosen ``Conv2d``
becomes a `LowRankConv2d` (grouped κ1×κ2 conv, then 1×1 conv) and each chosen ``Linear`` a
`LowRankLinear`, through a small explicit module swap on a copy of the model. ALDS picks a
rank and a number of slices per layer (`anywidth.lowrank.allocate`); ``method="svd"`` is the
uniform-rank baseline.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from anywidth._config import Config
from anywidth._latency_budget import missed_budget
from anywidth.budget import Budget, as_budget
from anywidth.compression import Compressed, register_handler, train_batches
from anywidth.compression.checks import check_batches, check_example_input, warn_non_finite
from anywidth.graph import PlanError, match_names
from anywidth.latency import LatencyConfig, as_latency_config
from anywidth.lowrank._calibrate import input_covariances
from anywidth.lowrank._factors import LayerInfo, factored_module, kernel_size, load_factors
from anywidth.lowrank._latency import ranks_for_latency
from anywidth.lowrank._speed import LayerClock, faster_than_dense
from anywidth.lowrank.allocate import Allocator, Choice
from anywidth.measure import count_macs, count_params, eval_mode
from anywidth.record import add_step_

__all__ = [
    "LayerReport",
    "LowRankConfig",
    "LowRankReport",
    "apply_ranks",
    "decompose",
    "replay_decompose",
]

_METHODS = ("alds", "svd")


@dataclass
class LowRankConfig(Config):
    """How to decompose: the method, the budget and the search.

    Args:
        method: ``"alds"`` (rank and slices chosen per layer) or ``"svd"`` (one rank ratio
            for every layer, one slice: the uniform baseline).
        target_params: the older form of ``budget``: fraction of the model's parameters
            to keep, in (0, 1].
        target_macs: the same for MACs; give one of ``budget``, ``target_params`` and
            ``target_macs``.
        fixed: layer names or globs kept dense, e.g. ``["fc"]``. By default every
            ``Conv2d`` (except depthwise and grouped ones) and ``Linear`` may be factored:
            the search keeps a layer dense by itself wherever factoring would not make it
            smaller (the small first conv and classifier of the zoo's CIFAR nets).
        max_slices: the largest number of slices k tried per conv (divisors of its input
            channels).
        starts: ALDS starting points (the first with k = 1 everywhere, then random k).
        rounds: ALDS global/local alternations per start.
        seed: seed of the random starts.
        calibration_batches: with ``decompose(..., data=...)``, how many batches of it
            measure each layer's input statistics (the factorisation is then data-aware);
            0 factors the weights alone even when data are given.
        budget: the target as an `anywidth.Budget` (a fraction of the original, or
            ``Budget.absolute(...)``), as every method's config takes it. A
            ``Budget(latency=...)`` is met on ``latency``'s runtime, batch and threads:
            ranks from the allocation at a MAC fraction (each layer dense, 1-slice or
            k-slice by table time and error), chosen on a per-layer latency table, then the
            factored model measured beside the dense one (a few corrections; the closest is
            kept, with a warning when it misses the budget). A result no faster than dense
            is an error, never a model.
        latency: time each factored layer on this runtime, batch and threads
            (`anywidth.latency.LatencyConfig`) against the dense layer and its 1-slice form:
            the least-erring form faster than dense is kept, else the layer stays dense
            (with a MAC or params budget the model may then miss it; the report says so).
            None: sizes and errors alone decide (a k-slice grouped form can run slower);
            with a latency budget, ``LatencyConfig()`` (torch eager, the example's batch, 1
            thread).
        latency_cache: folder of the per-layer latency table (None: in memory only).
        round_to: every factored layer's middle width (k·j channels: the rank j of each of
            its k slices) is a multiple of this (8 or 16 suit oneDNN and tensor cores), as
            `PruneConfig.round_to` makes channel counts; a layer whose largest rank is below
            one step stays dense.

    Example:
        >>> LowRankConfig(method="alds", budget=Budget(params=0.5), round_to=8)
        >>> LowRankConfig(budget=Budget(macs=0.5), latency=LatencyConfig(runtime="onnxruntime"))
        >>> LowRankConfig(budget=Budget(latency=0.5), latency=LatencyConfig(batch=1, threads=1))
        >>> LowRankConfig(method="alds", target_params=0.5)  # the same, older form
    """

    method: str = "alds"
    target_params: float | None = None
    target_macs: float | None = None
    fixed: tuple[str, ...] = ()
    max_slices: int = 8
    starts: int = 8
    rounds: int = 4
    seed: int = 0
    calibration_batches: int = 8
    budget: Budget | None = None
    latency: LatencyConfig | None = None
    latency_cache: str | None = None
    round_to: int = 1

    def __post_init__(self) -> None:
        self.latency = as_latency_config("LowRankConfig.latency", self.latency)
        if self.method not in _METHODS:
            raise ValueError(f"LowRankConfig.method={self.method!r}; use one of {list(_METHODS)}")
        self.budget = as_budget("LowRankConfig.budget", self.budget)
        r = self.round_to
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"LowRankConfig.round_to={r!r} must be an int >= 1 (e.g. 8)")
        legacy = (self.target_params is not None) + (self.target_macs is not None)
        if (self.budget is not None) + legacy != 1:
            raise ValueError(
                "LowRankConfig needs exactly one of budget= (e.g. budget=Budget(params=0.5)), "
                "target_params= or target_macs="
            )
        if self.budget is None:
            name, value = self.metric_target()
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not (ok and 0 < value <= 1):
                raise ValueError(
                    f"LowRankConfig.target_{name}={value!r} must be a fraction of the model in "
                    "(0, 1], e.g. 0.5 keeps half"
                )
        for attr in ("max_slices", "starts", "rounds", "calibration_batches"):
            least = 0 if attr == "calibration_batches" else 1
            if not isinstance(getattr(self, attr), int) or getattr(self, attr) < least:
                raise ValueError(f"LowRankConfig.{attr}={getattr(self, attr)!r} must be >= {least}")
        self.fixed = tuple(self.fixed)

    @property
    def by_latency(self) -> bool:
        """Whether the budget is a fraction of the measured latency."""
        return self.budget is not None and self.budget.metric == "latency"

    def metric_target(self) -> tuple[str, float]:
        """("params" or "macs", the target as given: a fraction, or a count for an
        absolute budget)."""
        if self.budget is not None:
            return self.budget.metric, self.budget.value
        if self.target_params is not None:
            return "params", self.target_params
        return "macs", self.target_macs

    def as_budget(self) -> Budget:
        """The target as an `anywidth.Budget`, whichever way it was given."""
        if self.budget is not None:
            return self.budget
        metric, value = self.metric_target()
        return Budget(**{metric: value})

    def _target_name(self) -> str:
        """How the error messages call the target: ``LowRankConfig.target_params``..."""
        metric = self.metric_target()[0]
        if self.budget is not None:
            return f"LowRankConfig.budget {metric}"
        return f"LowRankConfig.target_{metric}"


@dataclass
class LayerReport:
    """What happened to one layer: ``k`` slices at rank ``j`` (``j`` None: kept dense)."""

    name: str
    k: int
    j: int | None
    error: float
    params_before: int
    params_after: int


@dataclass
class LowRankReport:
    """The result of `decompose`: per layer and for the whole model."""

    layers: list[LayerReport]
    max_error: float
    error_kind: str  # "output" (data-aware) or "weight"
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)
    kept_dense: list[str] = field(default_factory=list)  # factored form measured slower
    latency_ratio: float | None = None  # a latency budget's measured ratio to dense

    @property
    def param_ratio(self) -> float:
        return self.params_after / self.params_before

    @property
    def mac_ratio(self) -> float:
        return self.macs_after / self.macs_before

    def factored(self) -> dict[str, tuple[int, int]]:
        """``{layer: (k, j)}`` of the layers that were factored."""
        return {r.name: (r.k, r.j) for r in self.layers if r.j is not None}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _factorable(m: nn.Module) -> bool:
    """A Conv2d (groups 1) or Linear whose forward is torch's own: a subclass with its own
    forward (timm's weight-standardised ``ScaledStdConv2d``, ``Conv2dSame``'s padding) does
    more than its weight says, and a factored copy would silently drop that."""
    if isinstance(m, nn.Conv2d):
        return m.groups == 1 and type(m).forward is nn.Conv2d.forward
    return isinstance(m, nn.Linear) and type(m).forward is nn.Linear.forward


def _candidates(model: nn.Module, fixed: tuple[str, ...]) -> list[tuple[str, nn.Module]]:
    """Factorable Conv2d and Linear layers (`_factorable`) not matched by ``fixed``; every
    pattern must match one of them."""
    found = [(name, m) for name, m in model.named_modules() if _factorable(m)]
    names = [name for name, _ in found]
    chosen = match_names(fixed, names, "LowRankConfig.fixed", "Conv2d or Linear layer")
    return [(n, m) for n, m in found if n not in chosen]


@torch.no_grad()
def _layer_infos(model: nn.Module, example_input, layers) -> list[LayerInfo]:
    """Sizes of the candidate layers; output positions from one forward pass."""
    positions: dict[str, int] = {}

    def count(name: str, m: nn.Module):
        def hook(_module, _inputs, out: torch.Tensor) -> None:
            # (B, f, H', W') for a conv, (..., f) for a linear: positions = numel / f
            positions[name] = positions.get(name, 0) + out.numel() // m.weight.shape[0]

        return hook

    hooks = [m.register_forward_hook(count(name, m)) for name, m in layers]
    try:
        with eval_mode(model):
            inputs = example_input if isinstance(example_input, tuple) else (example_input,)
            model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    infos = []
    for name, m in layers:
        if name not in positions:
            continue  # never called: nothing to gain
        f, c = m.weight.shape[:2]
        bias = int(m.bias is not None)
        infos.append(LayerInfo(name, m, f, c, kernel_size(m), positions[name], bias))
    return infos


def decompose(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    config: LowRankConfig,
    data=None,
) -> tuple[nn.Module, LowRankReport]:
    """Low-rank factorisation of a model's conv and linear layers, to a budget, in one call.

    With ``data`` (recommended) the factorisation is data-aware: each layer keeps what
    matters for its output on ``config.calibration_batches`` batches of that data (the SVD
    of W·L with LLᵀ the layer's input covariance), and errors are relative output errors.
    Without, layers keep what matters for their weights (the plain SVD of W): on the zoo's
    CIFAR ResNets on digits the data-aware result is far more accurate before any
    fine-tuning (benchmarks/results/lowrank.md).

    The caller's model is not changed. The result is a copy of it (its own class) in which
    every factored layer is a `LowRankConv2d` / `LowRankLinear` of ordinary torch layers, so
    it trains, exports to ONNX and can be pruned or decomposed again. Without fine-tuning,
    recalibrate BatchNorm (`anywidth.train.recalibrate_bn_`) where a BatchNorm follows a
    factored layer. The model carries its record, so ``save_checkpoint(path, small)`` and
    ``load_model(path)`` rebuild it.

    Args:
        model: the trained network (a pruned or INN-resampled one works too).
        example_input: an input of the shape the model expects (batch 1 is enough; MACs are
            counted for it).
        config: the method and budget.
        data: a `Loaders` (its train split), a DataLoader or an iterable of batches whose
            inputs calibrate the factorisation; ``None`` factors the weights alone.

    Returns:
        ``(smaller model, LowRankReport)``.

    Raises:
        PlanError: the budget cannot be met (below the least rank everywhere; a latency
            budget: no factorisation measured faster than the dense model), or a ``fixed``
            pattern matches no layer.
        TypeError: ``example_input`` is not a tensor, or ``data`` is not batches.
        ValueError: the model fails on ``example_input``.

    Example:
        >>> small, report = decompose(model, x, LowRankConfig(target_params=0.5))
        >>> report.max_error, report.factored()["layer2.0.conv1"]
        (0.31, (2, 14))
    """
    start = time.perf_counter()
    check_example_input(model, example_input)
    if data is not None and not isinstance(data, torch.Tensor):  # a tensor: refused below
        check_batches(train_batches(data))
    warn_non_finite(model)
    infos = _layer_infos(model, example_input, _candidates(model, config.fixed))
    params, macs = count_params(model), count_macs(model, example_input)
    covs = None
    if data is not None and config.calibration_batches > 0:
        covs = input_covariances(model, infos, data, config.calibration_batches)
    metric = "macs" if config.by_latency else config.as_budget().metric
    allocator = Allocator(infos, metric, config.max_slices, covs, config.round_to)
    full = params if metric == "params" else macs
    choices, kept_dense, latency_ratio = _choose(model, example_input, config, allocator, full)
    small = apply_ranks(model, _plan(infos, choices), svds=allocator, infos=infos,
                        method=config.method)  # fmt: skip
    reports = [
        LayerReport(
            info.name,
            c.k,
            c.j,
            allocator.error(i, c),
            info.dense_params,
            info.dense_params if c.dense else info.params(c.k, c.j),
        )
        for i, (info, c) in enumerate(zip(infos, choices, strict=True))
    ]
    report = LowRankReport(
        layers=reports,
        max_error=allocator.max_error(choices),
        error_kind="weight" if covs is None else "output",
        params_before=params,
        params_after=count_params(small),
        macs_before=macs,
        macs_after=count_macs(small, example_input),
        seconds=time.perf_counter() - start,
        config=config.to_dict(),
        kept_dense=kept_dense,
        latency_ratio=latency_ratio,
    )
    return small, report


def _choose(model, example_input, config: LowRankConfig, allocator: Allocator, full: int):
    """``(choices, layers kept dense by time, measured latency ratio or None)``: the
    allocation at the config's budget, each layer re-chosen by table time when a latency
    setting is given; a latency budget is searched and measured (`ranks_for_latency`)."""
    clock = None
    if config.latency is not None or config.by_latency:
        setting = config.latency or LatencyConfig()
        clock = LayerClock(model, example_input, allocator.layers, setting, config.latency_cache)
    if not config.by_latency:
        choices = _allocate(allocator, config, config.as_budget().fraction_of(full), full)
        if clock is None:
            return choices, [], None
        return (*faster_than_dense(clock, allocator, choices), None)

    def build(choices: list[Choice]) -> nn.Module:
        plan, infos = _plan(allocator.layers, choices), allocator.layers
        return apply_ranks(model, plan, svds=allocator, infos=infos, method=config.method)

    def allocate(fraction: float) -> list[Choice]:
        return _allocate(allocator, config, fraction, full)

    found = ranks_for_latency(model, example_input, clock, allocator, allocate, build, config)
    hint = "ranks cannot buy more there (try another runtime or batch, or a larger tolerance)"
    text = missed_budget("LowRankConfig", config.budget, found, found.setting.describe(), hint)
    if text is not None:
        warnings.warn(text, RuntimeWarning, stacklevel=3)
    return found.choices, found.kept_dense, found.ratio


def _allocate(
    allocator: Allocator, config: LowRankConfig, fraction: float, full: int
) -> list[Choice]:
    """The allocation of ``config.method`` at ``fraction`` of the model's ``full`` size.

    Raises:
        PlanError: the fraction is below the smallest decomposition.
    """
    budget = int(fraction * full) - (full - allocator.dense_total())
    floor = full - allocator.dense_total() + allocator.smallest_total()
    if int(fraction * full) < floor:
        raise PlanError(
            f"{config._target_name()}={fraction} ({int(fraction * full):,} {allocator.metric}) "
            f"is below the smallest decomposition of this model: {floor:,} "
            f"({floor / full:.1%}), the least rank in every factorable layer with fixed and "
            f"other layers as they are; give a target of at least {floor / full:.3f} or fix "
            "fewer layers"
        )
    if config.method == "alds":
        return allocator.alds(budget, config.starts, config.rounds, config.seed)
    return allocator.uniform(budget)


def _plan(infos: list[LayerInfo], choices: list[Choice]) -> dict[str, tuple[int, int]]:
    """``{layer: (k, j)}`` of the factored layers."""
    return {info.name: (c.k, c.j) for info, c in zip(infos, choices, strict=True) if not c.dense}


def apply_ranks(
    model: nn.Module,
    plan: Mapping[str, tuple[int, int]],
    *,
    svds: Allocator | None = None,
    infos: list[LayerInfo] | None = None,
    method: str = "lowrank",
) -> nn.Module:
    """A copy of ``model`` with each layer in ``plan`` factored into ``(k, j)``.

    With ``svds`` (and the ``infos`` they were made for) the factors are the rank-j SVD of
    the layer's k slices; without, the factored layers are only shaped (for loading saved
    weights into).
    """
    small = copy.deepcopy(model)
    index = {info.name: i for i, info in enumerate(infos or [])}
    for name, (k, j) in plan.items():
        layer = small.get_submodule(name)
        new = factored_module(layer, k, j)
        if svds is not None:
            load_factors(new, layer, svds.svd(index[name], k), j)
        new.train(layer.training)
        owner, _, attr = name.rpartition(".")
        setattr(small.get_submodule(owner) if owner else small, attr, new)
    step = {
        "kind": "decompose",
        "method": method,
        "layers": {n: list(kj) for n, kj in plan.items()},
    }
    add_step_(small, model, step)
    return small


def replay_decompose(model: nn.Module, step: Mapping[str, Any]) -> nn.Module:
    """Shape the factored layers a saved record lists; the checkpoint's weights fill them."""
    plan = {name: (int(k), int(j)) for name, (k, j) in step["layers"].items()}
    return apply_ranks(model, plan, method=step.get("method", "lowrank"))


@register_handler(LowRankConfig, "lowrank", latency_budget=True)
def _compress(model: nn.Module, example_input, config: LowRankConfig, data) -> Compressed:
    """`anywidth.compress`'s low-rank step."""
    small, report = decompose(model, example_input, config, data=train_batches(data))
    kind = "data-aware" if report.error_kind == "output" else "weight"
    done = [f"factored {len(report.factored())} layers ({config.method}, {kind} SVD)"]
    setting = config.latency or LatencyConfig()
    if report.latency_ratio is not None:
        done.append(
            f"ranks from a per-layer latency table; measured {report.latency_ratio:.3f} of "
            f"the dense model's latency ({setting.describe()})"
        )
    if config.latency is not None or config.by_latency:
        done.append(
            f"kept {len(report.kept_dense)} layers dense where the factored form was measured "
            f"slower ({setting.describe()})"
        )
    return Compressed(small, report.factored(), done, details=report)
