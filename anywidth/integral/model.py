"""`IntegralModel`: a network whose resizable channel groups are continuous coordinates.

Each source tensor is stored as λ (an ``nn.Parameter`` for a parameter, a buffer for a
buffer) under ``lam.<source name>``; each resizable group has a `Grid` under
``grids.<group name with '.' → '/'>``. A width plan ``{group: size}`` is turned into
discrete tensors by sampling λ on the groups' grids (`IntegralModel.discretize`), and the
forward pass runs those tensors through one width-agnostic skeleton of the source.
`IntegralModel.resample` builds the ordinary smaller model for a plan with
`anywidth.graph.cut`.

Eval-mode cache: when no gradient can reach the model (under ``torch.no_grad()`` or
``torch.inference_mode()``, or with every λ and grid parameter frozen), the discretized
tensors of a plan are computed once and run by a copy of the source's own modules resized
to the plan (`anywidth.graph.cut.Cutter.eager`, used when it reproduces the skeleton's
outputs; else the skeleton holding the tensors), so inference costs what the plain model
costs. They are reused while the stored tensors are unchanged: the key holds each tensor's
in-place version counter, so optimizer steps invalidate it, and ``load_state_dict`` and
``.to()`` empty the cache. Changes made through ``.data`` bypass version counters: call
`IntegralModel.clear_cache` after those. With gradients
enabled and trainable tensors (training, or tuning a partition in eval mode) every forward
discretizes anew; ``train()``/``eval()`` and every training-mode forward empty the cache.

BatchNorm stays a real layer: its γ, β and running statistics are sampled like any other
tensor. In training mode it normalises with batch statistics; the running-statistics
updates land on the discretized copies and are discarded, so λ never drifts. To get
statistics for a width, `IntegralModel.resample` it and run
`anywidth.train.recalibrate_bn`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, fx, nn
from torch.func import functional_call

from anywidth.graph import ChannelGroup, WidthCost, keep_first
from anywidth.graph.budget import Budget
from anywidth.graph.cut import Cutter
from anywidth.graph.groups import lookup
from anywidth.integral import _plans
from anywidth.integral._layout import (
    GroupSampler,
    TensorLayout,
    build_layouts,
    fit_lam,
    sample_tensor,
)
from anywidth.integral._skeleton import Skeletons, install
from anywidth.integral._store import LamStore
from anywidth.integral.config import IntegralConfig
from anywidth.integral.grid import Grid, UniformGrid, make_grid
from anywidth.integral.partition import uniform_points
from anywidth.integral.quadrature import quadrature_weights

__all__ = ["IntegralModel", "PlanSpec"]

PlanSpec = Mapping[str, int] | float | None
_CACHE_SIZE = 4


def _grid_key(group: str) -> str:
    return group.replace(".", "/")


class _Aux:
    """What the module needs besides its own tensors (kept out of ``state_dict``)."""

    def __init__(self, source: nn.Module, example_input, groups: list[ChannelGroup]) -> None:
        self.source = source
        self.example_input = example_input
        self.skeletons = Skeletons(source, example_input, groups)
        self.cost: WidthCost | None = None
        self.cache: dict[tuple, dict[str, Tensor]] = {}
        self.cutters: dict[torch.dtype, Cutter] = {}
        self.batch_stats = False  # see IntegralModel.batch_norm_train_
        self.tracked: list[Tensor] | None = None  # see IntegralModel._versions
        self.runners: dict[tuple, nn.Module] = {}  # see IntegralModel._eval_runner

    def __deepcopy__(self, memo: dict) -> _Aux:
        """Copy what defines the module; caches and `Cutter`s are rebuilt on demand.

        A Cutter holds a raw fx graph, whose linked nodes exhaust Python's recursion limit
        under ``copy.deepcopy`` for deep networks (resnet56).
        """
        new = _Aux.__new__(_Aux)
        memo[id(self)] = new
        for key, value in vars(self).items():
            if key not in ("cache", "cutters", "runners", "tracked"):
                setattr(new, key, copy.deepcopy(value, memo))
        new.cache, new.cutters, new.runners, new.tracked = {}, {}, {}, None
        new.skeletons.forget_installed()
        return new

    def clear(self) -> None:
        self.cache.clear()
        self.runners.clear()
        self.tracked = None
        self.skeletons.forget_installed()


class IntegralModel(nn.Module):
    """An integral neural network built from a discrete model; create with `to_integral`.

    Args:
        source: the (channel-permuted) source model; kept for its structure only.
        example_input: the input ``groups`` were traced with.
        groups: ``channel_groups(source, example_input, fixed=config.fixed)``.
        config: the conversion options.
        nodes: ``{resizable group: number of λ nodes}``.
        permutation: ``{group: order}`` that was applied to the caller's model.
        model_name: the source's zoo name, if known (for `load_integral`).
        model_kwargs: its ``create_model`` options.
        init: fit λ to the source's tensors (False: zeros, to be loaded).

    Attributes:
        config, groups, nodes, permutation, model_name, model_kwargs: as given (``groups``
            as a tuple, fixed ones included, in graph order; new channel ``i`` of a group
            is the caller's channel ``permutation[group][i]``).
        lam: `LamStore` of λ tensors, named like the source's parameters and buffers.
        grids: one `Grid` per resizable group.

    Example:
        >>> inn = to_integral(model, torch.randn(1, 3, 32, 32))
        >>> with inn.at(0.5), torch.no_grad():
        ...     y = inn(x)                              # the INN sampled at half width
        >>> small = inn.resample(target_macs=0.5)   # a plain smaller nn.Module
    """

    def __init__(
        self,
        source: nn.Module,
        example_input: torch.Tensor | tuple,
        groups: list[ChannelGroup],
        config: IntegralConfig,
        *,
        nodes: Mapping[str, int],
        permutation: Mapping[str, list[int]] | None = None,
        model_name: str | None = None,
        model_kwargs: Mapping | None = None,
        init: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.groups = tuple(groups)
        self.nodes = dict(nodes)
        self.permutation = {k: [int(i) for i in v] for k, v in (permutation or {}).items()}
        self.model_name = model_name
        self.model_kwargs = dict(model_kwargs or {})
        self._aux = _Aux(source.eval(), example_input, list(groups))
        self._sizes = self._full_plan()
        params, buffers = self._aux.skeletons.names()
        self._layouts: dict[str, TensorLayout] = build_layouts(
            source, params + buffers, groups, self.nodes
        )
        dtype = _float_dtype(source)
        self.grids = nn.ModuleDict(
            {_grid_key(g.name): make_grid(config.partition, g.size, dtype=dtype)
             for g in self.resizable}
        )  # fmt: skip
        self.lam = self._build_lam(source, init)
        self.register_load_state_dict_post_hook(lambda module, _keys: module.clear_cache())

    def _build_lam(self, source: nn.Module, init: bool) -> LamStore:
        tensors = dict(source.named_parameters())
        tensors.update(source.named_buffers())
        like = next((t for t in tensors.values() if t.is_floating_point()), torch.empty(0))
        samplers = self._samplers(self._full_plan(), like)
        store = LamStore()
        for name, layout in self._layouts.items():
            tensor = tensors[name]
            if init:
                value = fit_lam(tensor, layout, samplers, self.config.nodes_init)
            else:
                value = tensor.new_zeros(layout.lam_shape())
            requires_grad = tensor.requires_grad and layout.is_param
            store.add(name, value.clone(), is_param=layout.is_param, requires_grad=requires_grad)
        return store

    # -- groups, grids and plans ---------------------------------------------------------
    @property
    def resizable(self) -> list[ChannelGroup]:
        """The groups that are continuous (not fixed), in graph order."""
        return [g for g in self.groups if not g.fixed]

    def _full_plan(self) -> dict[str, int]:
        return {g.name: g.size for g in self.resizable}

    def grid(self, group: str) -> Grid:
        """The `Grid` of a resizable group."""
        lookup({g.name: g for g in self.resizable}, group)
        return self.grids[_grid_key(group)]

    def grid_parameters(self) -> Iterator[nn.Parameter]:
        """The trainable partition parameters (none for uniform grids)."""
        return self.grids.parameters()

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        """The λ parameters (the weight functions' node values)."""
        return self.lam.parameters()

    def named_lams(self) -> Iterator[tuple[str, Tensor]]:
        """``(source tensor name, λ)`` for every parameter and buffer of the source."""
        return iter(self.lam.tensors().items())

    def source_modules(self) -> Iterator[tuple[str, nn.Module]]:
        """``(name, module)`` of the (channel-permuted) source, whose names λ mirror.

        Its tensors are not the INN's; use it for structure (module types, ``eps``...).
        """
        return self._aux.source.named_modules()

    @torch.no_grad()
    def lam_scales(self) -> dict[str, Tensor]:
        """How much smaller each λ entry's weight is at full width: the node quadrature weights.

        λ is the discrete weight divided by the quadrature weights along integrated
        dimensions (about 1/n), so a gradient step on λ moves the weights about n² times
        less than the same step on the discrete network. Width-random training rescales λ
        gradients by ``1 / scale²`` to train at the discrete network's pace.

        Returns:
            ``{λ name: tensor broadcastable to λ}`` for every λ parameter with an integrated
            dimension (others need no rescaling).
        """
        out = {}
        like = self.lam.float_like()
        for name, layout in self._layouts.items():
            if not layout.is_param or not any(d.integrated for d in layout.dims):
                continue
            scale = torch.ones((), dtype=like.dtype, device=like.device)
            for d in layout.dims:
                if not d.integrated:
                    continue
                parts = []
                for seg in d.segments:
                    if seg.group is None:
                        parts.append(torch.ones(seg.length, dtype=like.dtype, device=like.device))
                        continue
                    nodes = uniform_points(seg.nodes, dtype=like.dtype, device=like.device)
                    q = quadrature_weights(nodes, self.config.rule)  # (nodes,)
                    parts.append(q.repeat_interleave(seg.block))
                shape = [1] * len(layout.shape)
                shape[d.dim] = -1
                scale = scale * torch.cat(parts).reshape(shape)
            out[name] = scale
        return out

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of λ."""
        return self.lam.float_like().dtype

    @torch.no_grad()
    def load_running_stats_(self, buffers: Mapping[str, Tensor]) -> None:
        """Refit buffers' weight functions so the full-width INN has exactly these values.

        For BatchNorm statistics measured on the full-width model, e.g.
        ``inn.load_running_stats_(dict(recalibrated_full.named_buffers()))``. Groups whose
        full-width points are their nodes copy the values; others (fewer nodes, trained
        grids) are fitted by least squares at the full-width points: exact for a grid
        whose points are spread out, approximate where trained points crowd together (the
        interpolation matrix is then ill-conditioned). Narrower widths then sample the
        refreshed functions.

        Args:
            buffers: ``{source buffer name: full-width tensor}``.

        Raises:
            KeyError: a name that is not a buffer of the source.
        """
        lams, like = self.lam.tensors(), self.lam.float_like()
        samplers = self._samplers(self._full_plan(), like)
        for name, value in buffers.items():
            layout = self._layouts.get(name)
            if layout is None or layout.is_param:
                raise KeyError(f"{name!r} is not a buffer of the source model")
            value = value.to(device=lams[name].device, dtype=lams[name].dtype)
            if layout.dims:
                value = fit_lam(value, layout, samplers, "lstsq", refit_points=True)
            lams[name].copy_(value)

    @property
    def sizes(self) -> dict[str, int]:
        """The current width plan: ``{resizable group: size}`` (default: every group whole)."""
        return dict(self._sizes)

    def width_plan(
        self,
        plan: PlanSpec = None,
        *,
        target_macs: float | None = None,
        target_params: float | None = None,
        allocation: str = "uniform",
        tolerance: float = 0.02,
        round_to: int = 1,
    ) -> dict[str, int]:
        """Resolve a plan, a ratio or a budget into a full, validated plan.

        A group may take any size from 1 to its original width, whatever its number of
        nodes.

        Args:
            plan: ``{group: size}`` (unlisted groups whole), a ratio in (0, 1] applied to
                every resizable group (rounded, at least 1), or None (the current sizes).
            target_macs: MAC budget, a fraction of the source's (<= 1) or an absolute
                count, for the example input; through `anywidth.graph.plan_for_budget`.
            target_params: the same for parameters. Give at most one of the three.
            allocation: how a budget is spread: ``"uniform"`` (the same ratio everywhere)
                or ``"global"`` (by `channel_importance`: groups whose channels matter
                unevenly give up more).
            tolerance: accepted relative distance to the budget.
            round_to: budget sizes are multiples of this (except whole groups).

        Returns:
            ``{group: size}`` for every resizable group.

        Raises:
            PlanError: unknown or fixed group, a size below 1 or above the original width,
                a bad ratio, or a budget that cannot be met.

        Example:
            >>> inn.width_plan(0.5)["layer1.0.conv1:out"]          # resnet20
            8
            >>> plan = inn.width_plan(target_macs=0.5, allocation="global")
        """
        if sum(v is not None for v in (plan, target_macs, target_params)) > 1:
            raise ValueError("give one of plan, target_macs= or target_params=")
        if target_macs is not None or target_params is not None:
            budget = Budget(macs=target_macs, params=target_params, tolerance=tolerance)
            return self._budget_plan(budget, allocation, round_to)
        if plan is None:
            return self.sizes
        if isinstance(plan, Mapping):
            return _plans.check_plan(self.groups, plan)
        return _plans.ratio_plan(self.groups, plan)

    def _budget_plan(self, budget: Budget, allocation: str, round_to: int) -> dict[str, int]:
        if allocation not in _plans.ALLOCATIONS:
            raise ValueError(f"allocation={allocation!r}; use one of {list(_plans.ALLOCATIONS)}")
        if self._aux.cost is None:
            self._aux.cost = WidthCost(self._aux.source, self._aux.example_input, self.groups)
        if allocation == "uniform":
            priority = _plans.uniform_priority(self.groups)
        else:
            priority = self.channel_importance()
        return _plans.budget_sizes(self._aux.cost, list(self.groups), priority, budget, round_to)

    def channel_importance(self) -> dict[str, Tensor]:
        """``{group: (size,) scores}``: per-channel L1 of the full-width sampled weights.

        Each member weight is divided by its mean, the sum by its group mean (so every
        group has mean 1). `width_plan` uses only how many channels of each group rank
        above a common threshold: an INN resamples, it does not select channels.
        """
        with torch.no_grad():
            tensors = self.discretize(self._full_plan())
        weights = {n: t for n, t in tensors.items() if self._layouts[n].is_param}
        return _plans.channel_importance(self.groups, weights)

    def set_sizes_(self, plan: PlanSpec) -> None:
        """Choose the width the module runs at: a plan, a ratio, or None for full width."""
        self._sizes = self._full_plan() if plan is None else self.width_plan(plan)

    @contextlib.contextmanager
    def at(self, plan: PlanSpec) -> Iterator[IntegralModel]:
        """Run at a plan (or ratio) inside a ``with`` block; the previous sizes come back after.

        Example:
            >>> with inn.at({"layer1.0.conv1:out": 8}):
            ...     y = inn(x)
        """
        before = self._sizes
        self.set_sizes_(plan)
        try:
            yield self
        finally:
            self._sizes = before

    # -- discretization and forward ------------------------------------------------------
    def _samplers(self, plan: Mapping[str, int], like: Tensor) -> dict[str, GroupSampler]:
        """Per group: its points at the planned width, interpolation and quadrature weights."""
        out = {}
        for g in self.resizable:
            size, grid = plan[g.name], self.grids[_grid_key(g.name)]
            points = grid.points(size, dtype=like.dtype, device=like.device)  # (size,)
            weights = quadrature_weights(points, self.config.rule)  # (size,)
            exact = isinstance(grid, UniformGrid) and size == self.nodes[g.name]
            out[g.name] = GroupSampler.build(points, self.nodes[g.name], weights, exact)
        return out

    def discretize(self, sizes: PlanSpec = None) -> dict[str, Tensor]:
        """The source model's parameters and buffers at a width plan.

        Differentiable with respect to λ and the grids' parameters (buffers carry no
        gradient). Buffers are always fresh tensors: a training-mode BatchNorm updates them
        in place.

        Args:
            sizes: a plan or ratio (see `width_plan`); None: the current sizes.

        Returns:
            ``{source tensor name: tensor}``, shaped like
            ``cut(source, x, keep_first(groups, sizes)).state_dict()``.

        Example:
            >>> inn.discretize({"conv1:out": 4})["conv1.weight"].shape  # resnet20
            torch.Size([4, 3, 3, 3])
        """
        plan = self.sizes if sizes is None else self.width_plan(sizes)
        lams = self.lam.tensors()
        samplers = self._samplers(plan, self.lam.float_like())
        out = {}
        for name, layout in self._layouts.items():
            lam = lams[name]
            value = sample_tensor(lam, layout, samplers) if layout.dims else lam
            out[name] = value.clone() if value is lam and not layout.is_param else value
        return out

    def _tracked(self) -> list[Tensor]:
        """Every λ and grid tensor; the objects change only through `clear_cache`."""
        if self._aux.tracked is None:
            self._aux.tracked = list(self.lam.tensors().values()) + list(self.grids.parameters())
        return self._aux.tracked

    def _versions(self) -> tuple[int, ...]:
        """In-place version counters of every λ and grid tensor (the eval cache's key)."""
        return tuple([t._version for t in self._tracked()])

    def _frozen(self) -> bool:
        """True when no gradient can reach λ or the grids from this call."""
        return not torch.is_grad_enabled() or not any(t.requires_grad for t in self._tracked())

    def _cached(self, plan: Mapping[str, int], key: tuple) -> dict[str, Tensor]:
        """The plan's discretized tensors without autograd history, kept while valid."""
        cache = self._aux.cache
        if key not in cache:
            with torch.no_grad():
                tensors = self.discretize(plan)
            if len(cache) >= _CACHE_SIZE:
                oldest = next(iter(cache))
                cache.pop(oldest)
                self._aux.runners.pop(oldest, None)
            cache[key] = tensors
        return cache[key]

    def clear_cache(self) -> None:
        """Forget the eval-mode tensors.

        Needed only after changes the module cannot see: through ``.data``, or by putting
        new tensor or grid objects in place by hand. ``.to()``, ``load_state_dict``,
        ``train()`` and ``eval()`` call it.
        """
        self._aux.clear()

    def _apply(self, fn, recurse: bool = True):
        self.clear_cache()  # .to(), .double()...: new tensor objects
        return super()._apply(fn, recurse)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        finally:
            self.clear_cache()

    def forward(self, *inputs: Tensor) -> Tensor:
        """The source model's forward pass at the current sizes (see `at`, `set_sizes_`)."""
        plan = self._sizes
        skeleton = self._aux.skeletons.get(plan)
        modes = (self.training, self._aux.batch_stats)
        if getattr(skeleton, "_anywidth_modes", None) != modes:  # only this module sets them
            skeleton.train(self.training)
            if self._aux.batch_stats:
                for m in skeleton.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.train()
            skeleton._anywidth_modes = modes
        if self.training or self._aux.batch_stats or not self._frozen():
            if self.training:
                self.clear_cache()
            # Fresh tensors: BatchNorm's running-statistics updates land on these copies.
            return functional_call(skeleton, self.discretize(plan), inputs)
        key = (tuple(sorted(plan.items())), self._versions())
        runner = self._aux.runners.get(key)
        if runner is None:
            runner = self._eval_runner(plan, key)
        elif runner is skeleton and getattr(skeleton, "_anywidth_installed", None) != key:
            install(skeleton, self._cached(plan, key))
            skeleton._anywidth_installed = key
        return runner(*inputs)

    def _eval_runner(self, plan: dict[str, int], key: tuple) -> nn.Module:
        """What eval-mode calls at ``plan`` run: the source's own class, resized, if it can.

        `Cutter.eager` gives a copy of the source's modules holding the plan's tensors, which
        runs the source's own forward without the skeleton's fx dispatch; it is used only if
        it gives the skeleton's outputs on the example input. Otherwise the skeleton runs,
        with the tensors installed.
        """
        tensors = self._cached(plan, key)
        skeleton = self._aux.skeletons.get(plan)
        install(skeleton, tensors)
        skeleton._anywidth_installed = key
        like = self.lam.float_like()
        eager = self._cutter(like.dtype).eager(keep_first(self.groups, plan), replace=tensors)
        runner = skeleton
        if eager is not None:
            eager = eager.to(like.device).eval().requires_grad_(False)  # like the cache
            example = _cast_input(self._aux.example_input, like.dtype)
            inputs = example if isinstance(example, tuple) else (example,)
            inputs = tuple(t.to(like.device) if isinstance(t, Tensor) else t for t in inputs)
            with torch.no_grad():
                if _same_outputs(eager(*inputs), skeleton(*inputs)):
                    runner = eager
        self._aux.runners[key] = runner
        return runner

    def train(self, mode: bool = True) -> IntegralModel:
        self.clear_cache()
        self._aux.batch_stats = False
        return super().train(mode)

    def batch_norm_train_(self) -> IntegralModel:
        """Eval mode, except that BatchNorm normalises with batch statistics; in place.

        What `anywidth.train.tune_` does to a plain model's layers: partition tuning then
        sees the statistics that recalibrating the resampled model will give it. Running
        statistics are not updated. ``train()`` or ``eval()`` ends it.
        """
        self.eval()
        self._aux.batch_stats = True
        return self

    # -- export --------------------------------------------------------------------------
    def resample(
        self,
        plan: PlanSpec = None,
        *,
        target_macs: float | None = None,
        target_params: float | None = None,
        allocation: str = "uniform",
        tolerance: float = 0.02,
        round_to: int = 1,
    ) -> fx.GraphModule:
        """A plain, smaller model: this INN sampled at a plan, a ratio or a budget.

        Built with `anywidth.graph.cut` from the (channel-permuted) source, every tensor
        replaced by its discretized value: ordinary layers whose ``in_channels``,
        ``out_channels``, ``num_features``... match their weights, nothing parametrised,
        and outputs equal to this module's at that plan. Arguments as in `width_plan`
        (None: the current sizes). The module itself is not changed.

        Returns:
            A ``torch.fx.GraphModule`` on this module's device, in its train/eval mode.

        Example:
            >>> small = inn.resample(0.5)
            >>> small = inn.resample(target_macs=0.5, allocation="global")
        """
        sizes = self.width_plan(
            plan,
            target_macs=target_macs,
            target_params=target_params,
            allocation=allocation,
            tolerance=tolerance,
            round_to=round_to,
        )
        tensors = self._cached(sizes, (tuple(sorted(sizes.items())), self._versions()))
        like = self.lam.float_like()
        keep = keep_first(self.groups, sizes)
        small = self._cutter(like.dtype)(keep, replace=tensors)
        return small.to(like.device).train(self.training)

    def _cutter(self, dtype: torch.dtype) -> Cutter:
        """The `Cutter` of the source in ``dtype`` (the INN may have been cast), made on
        first use: it traces once, and holds the cast source and example input."""
        if dtype not in self._aux.cutters:
            source, example = self._aux.source, self._aux.example_input
            if _float_dtype(source) != dtype:
                source, example = copy.deepcopy(source).to(dtype), _cast_input(example, dtype)
            self._aux.cutters[dtype] = Cutter(source, example, groups=list(self.groups))
        return self._aux.cutters[dtype]

    def extra_repr(self) -> str:
        changed = sum(self._sizes[g.name] != g.size for g in self.resizable)
        return (
            f"groups={len(self.resizable)} resizable of {len(self.groups)}, "
            f"rule={self.config.rule!r}, partition={self.config.partition!r}, "
            f"resized_groups={changed}"
        )


def _same_outputs(a, b) -> bool:
    """Equal output structures whose tensors agree to float rounding."""
    left, right = [], []
    fx.node.map_aggregate(a, lambda v: left.append(v) if isinstance(v, Tensor) else None)
    fx.node.map_aggregate(b, lambda v: right.append(v) if isinstance(v, Tensor) else None)
    return len(left) == len(right) and all(
        x.shape == y.shape and torch.allclose(x, y, rtol=1e-4, atol=1e-5 * float(y.abs().max()))
        for x, y in zip(left, right, strict=True)
    )


def _cast_input(example, dtype: torch.dtype):
    if isinstance(example, Tensor):
        return example.to(dtype) if example.is_floating_point() else example
    return tuple(_cast_input(e, dtype) for e in example)


def _float_dtype(module: nn.Module) -> torch.dtype:
    for t in [*module.parameters(), *module.buffers()]:
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()
