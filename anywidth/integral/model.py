"""`IntegralModel`: a network whose resizable channel groups are continuous coordinates.

Each source tensor is stored as λ (an ``nn.Parameter`` for a parameter, a buffer for a
buffer) under ``lam.<source name>``; each resizable group has a `Grid` under
``grids.<group name with '.' → '/'>``. A width plan ``{group: size}`` is turned into
discrete tensors by sampling λ on the groups' grids (`IntegralModel.discretize`), and the
forward pass runs those tensors through one width-agnostic skeleton of the source.
`IntegralModel.resample` builds the ordinary smaller model for a plan with
`anywidth.graph.cut`.

Planning (plans, ratios and budgets), `at`, `set_sizes_` and `resample` come from the base
class `anywidth.width.WidthModel`. The module delegates each other job to one private
module: the λ tensors and the maps between λ and discrete tensors (`_store`), the eval-mode
cache (`_cache`), and export through `anywidth.graph.cut.Cutter` (`_export`).

Eval-mode cache: when no gradient can reach the model (under ``torch.no_grad()`` or
``torch.inference_mode()``, or with every λ and grid parameter frozen), the discretized
tensors of a plan are computed once and run by a copy of the source's own modules resized
to the plan (`anywidth.graph.cut.Cutter.eager`, used when it reproduces the skeleton's
outputs; else the skeleton holding the tensors), so inference costs what the plain model
costs. They are reused while the stored tensors are unchanged: every call compares the sum
of their in-place version counters (λ of one dtype share one counter, see `LamStore`), so
optimizer steps and in-place edits invalidate them, and ``load_state_dict`` and ``.to()``
empty the cache. Changes made through
``.data`` bypass version counters: call `IntegralModel.clear_cache` after those. With
gradients enabled and trainable tensors (training, or tuning a partition in eval mode)
every forward discretizes anew; ``train()``/``eval()`` and every training-mode forward
empty the cache.

BatchNorm stays a real layer: its γ, β and running statistics are sampled like any other
tensor. In training mode it normalises with batch statistics; the running-statistics
updates land on the discretized copies and are discarded, so λ never drifts. To get
statistics for a width, `IntegralModel.resample` it and run
`anywidth.train.recalibrate_bn`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call

from anywidth.graph import ChannelGroup, lookup
from anywidth.integral._cache import Entry, EvalCache
from anywidth.integral._export import Exporter, float_dtype
from anywidth.integral._layout import GroupSampler, build_layouts, group_samplers, tied_aliases
from anywidth.integral._record import integral_step
from anywidth.integral._store import LamStore
from anywidth.integral.config import IntegralConfig
from anywidth.integral.grid import Grid, make_grid
from anywidth.record import ModelRecord, get_record
from anywidth.width import _plans
from anywidth.width._plans import plan_key
from anywidth.width.model import WidthModel
from anywidth.width.request import PlanSpec

__all__ = ["IntegralModel", "PlanSpec"]


def _grid_key(group: str) -> str:
    return group.replace(".", "/")


class IntegralModel(WidthModel):
    """An integral neural network built from a discrete model; create with `to_integral`.

    Args:
        source: the (channel-permuted) source model; kept for its structure only.
        example_input: the input ``groups`` were traced with.
        groups: ``channel_groups(source, example_input, fixed=config.fixed)``.
        config: the conversion options.
        nodes: ``{resizable group: number of λ nodes}``.
        permutation: ``{group: order}`` that was applied to the caller's model.
        model_name: the source's zoo name, if known (for `anywidth.train.load_model`).
        model_kwargs: its ``create_model`` options.
        init: fit λ to the source's tensors (False: zeros, to be loaded).

    Attributes:
        config, groups, nodes, permutation, model_name, model_kwargs: as given (``groups``
            as a tuple, fixed ones included, in graph order; new channel ``i`` of a group
            is the caller's channel ``permutation[group][i]``).
        lam: `LamStore` of λ tensors, named like the source's parameters and buffers (a
            tied tensor once, under its first name).
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
        source = source.eval()
        super().__init__(source, example_input, groups, permutation)
        self.config = config
        self.nodes = dict(nodes)
        self.model_name = model_name
        self.model_kwargs = dict(model_kwargs or {})
        self._export = Exporter(source, example_input, list(groups))
        self._cache = EvalCache()
        self._batch_stats = False  # see batch_norm_train_
        dtype = float_dtype(source)
        self.grids = nn.ModuleDict(
            {_grid_key(g.name): make_grid(config.partition, g.size, dtype=dtype)
             for g in self.resizable}
        )  # fmt: skip
        params, buffers = self._skeletons.names()
        layouts = build_layouts(source, params + buffers, groups, self.nodes)
        aliases = tied_aliases(source, groups, self.nodes, names={*params, *buffers})
        tensors = dict(source.named_parameters(remove_duplicate=False))
        tensors.update(source.named_buffers(remove_duplicate=False))
        like = next((t for t in tensors.values() if t.is_floating_point()), torch.empty(0))
        samplers = self._samplers(self._planner.full(), like)
        self.lam = LamStore.fit(
            tensors, layouts, samplers, config.nodes_init, aliases=aliases, init=init
        )
        self.register_load_state_dict_post_hook(lambda module, _keys: module._clear())

    # -- grids and λ -----------------------------------------------------------------------
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
        """``(source tensor name, λ)`` for every parameter and buffer of the source (a tied
        tensor once, under its first name)."""
        return iter(self.lam.tensors().items())

    def source_modules(self) -> Iterator[tuple[str, nn.Module]]:
        """``(name, module)`` of the (channel-permuted) source, whose names λ mirror.

        Its tensors are not the INN's; use it for structure (module types, ``eps``...).
        """
        return self._export.source.named_modules()

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
        return self.lam.scales(self.config.rule)

    @property
    def anywidth_record(self) -> ModelRecord:
        """The model's `anywidth.record.ModelRecord`, computed when read: the source's
        record plus one ``"integral"`` step with this INN's structure and current sizes.

        `anywidth.train.save_checkpoint` stores it and `anywidth.train.load_model` replays
        it (see `anywidth.integral.io`), so an INN saves and loads like any cut model.
        """
        source = get_record(self._export.source)
        steps = source.steps if source is not None else ()
        return ModelRecord(self.model_name, self.model_kwargs, (*steps, integral_step(self)))

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of λ."""
        return self.lam.float_like().dtype

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
        with torch.no_grad():
            samplers = self._samplers(self._planner.full(), self.lam.float_like())
        self.lam.refit_buffers_(buffers, samplers)

    # -- width-random training and planning ----------------------------------------------
    def loss_weight(self, plan: Mapping[str, int], power: float = 2.0) -> float:
        """How much a width-random step at ``plan`` should weigh next to the full width's.

        Training rescales λ gradients so that the full-width weights move at the discrete
        network's pace (`lam_scales`). A width m of a group of n channels samples λ with
        quadrature weights about n/m times larger, so the same rescaled step moves that
        width's weights about (n/m)² times as far as a discrete network of that width
        would move them (11× at a third of the width), and moves the shared full-width
        weights n/m times as far: the narrow widths train with an oversized learning rate
        and drag the full width along. Weighting the width's loss by (m/n)^power (the mean
        over the resizable groups) with ``power=2`` trains it at its own discrete pace;
        ``power=1`` moves the full-width weights at the discrete pace (as slicing does).
        `anywidth.train.width` applies it with ``WidthTrainConfig.narrow_pace`` as the power.
        """
        ratios = [plan[g.name] / g.size for g in self.resizable if g.name in plan]
        return sum(r**power for r in ratios) / len(ratios) if ratios else 1.0

    def channel_importance(self) -> dict[str, Tensor]:
        """``{group: (size,) scores}``: per-channel L1 of the full-width sampled weights.

        Each member weight is divided by its mean, the sum by its group mean (so every
        group has mean 1). `width_plan` uses only how many channels of each group rank
        above a common threshold: an INN resamples, it does not select channels.
        """
        with torch.no_grad():
            tensors = self._discretize(self._planner.full())
        layouts = self.lam.layouts
        weights = {n: t for n, t in tensors.items() if layouts[n].is_param}
        return _plans.channel_importance(self.groups, weights)

    # -- discretization and forward ------------------------------------------------------
    def _samplers(self, plan: Mapping[str, int], like: Tensor) -> dict[str, GroupSampler]:
        grids = {g.name: self.grids[_grid_key(g.name)] for g in self.resizable}
        return group_samplers(grids, plan, self.nodes, self.config.rule, like)

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
        return self._discretize(self.width_plan(sizes))

    def _discretize(self, plan: Mapping[str, int]) -> dict[str, Tensor]:
        """`discretize` at a full, validated plan."""
        return self.lam.sample(self._samplers(plan, self.lam.float_like()))

    def _tracked(self) -> list[Tensor]:
        """Tensors whose version counters cover every λ and grid tensor: what the eval
        cache's entries depend on (see `LamStore.version_tensors`)."""
        return self.lam.version_tensors() + list(self.grids.parameters())

    def _trainable(self) -> list[Tensor]:
        """Every λ and grid parameter (trainable or not)."""
        return [*self.lam.parameters(), *self.grids.parameters()]

    def _entry(self, plan: Mapping[str, int], key: tuple) -> Entry:
        """The eval cache's entry of a plan: its discretized tensors without autograd
        history (and its runner), kept while valid."""
        return self._cache.get(key, self._tracked, lambda: self._discretize_frozen(plan))

    def _discretize_frozen(self, plan: Mapping[str, int]) -> dict[str, Tensor]:
        with torch.no_grad():
            return self._discretize(plan)

    def clear_cache(self) -> None:
        """Forget the eval-mode tensors.

        Needed only after changes the module cannot see: through ``.data``, or by putting
        new tensor or grid objects in place by hand. ``.to()``, ``load_state_dict``,
        ``train()`` and ``eval()`` empty the cache themselves. From then on the cache
        checks the version counter of every λ, not the few the λ share (see `LamStore`):
        objects put in place by hand may not share them.
        """
        self.lam.unshare()  # new objects by hand may not share version counters
        self._clear()

    def _clear(self) -> None:
        self._cache.clear()
        self._skeletons.installed = None

    def _apply(self, fn, recurse: bool = True):
        self._clear()  # .to(), .double()...: new tensor objects
        return super()._apply(fn, recurse)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        finally:
            self._clear()

    def forward(self, *inputs: Tensor) -> Tensor:
        """The source model's forward pass at the current sizes (see `at`, `set_sizes_`)."""
        plan, training, batch_stats = self._sizes, self.training, self._batch_stats
        skeleton = self._skeleton(batch_stats=batch_stats)
        if training or batch_stats or not self._cache.frozen(self._trainable):
            if training:
                self._clear()
            # Fresh tensors: BatchNorm's running-statistics updates land on these copies.
            return functional_call(skeleton, self._discretize(plan), inputs)
        entry = self._entry(plan, self._plan_key)
        runner = entry.runner
        if runner is None:
            runner = entry.runner = self._eval_runner(plan, entry)
        elif runner is skeleton:
            self._skeletons.install(entry.tensors, entry)
        return runner(*inputs)

    def _eval_runner(self, plan: Mapping[str, int], entry: Entry) -> nn.Module:
        """What eval-mode calls at ``plan`` run: the source's own class, resized, if it can
        (see `Exporter.eager`); else the skeleton, with the entry's tensors installed."""
        skeleton = self._skeletons.install(entry.tensors, entry)
        eager = self._export.eager(plan, entry.tensors, self.lam.float_like(), skeleton)
        return skeleton if eager is None else eager

    def train(self, mode: bool = True) -> IntegralModel:
        self._clear()
        self._batch_stats = False
        return super().train(mode)

    def batch_norm_train_(self) -> IntegralModel:
        """Eval mode, except that BatchNorm normalises with batch statistics; in place.

        What `anywidth.train.tune_` does to a plain model's layers: partition tuning then
        sees the statistics that recalibrating the resampled model will give it. Running
        statistics are not updated. ``train()`` or ``eval()`` ends it.
        """
        self.eval()
        self._batch_stats = True
        return self

    # -- export --------------------------------------------------------------------------
    def _resample(self, plan: dict[str, int]) -> nn.Module:
        """The (channel-permuted) source cut to ``plan`` by `anywidth.graph.cut.Cutter`,
        every tensor replaced by its discretized value (nothing parametrised)."""
        tensors = self._entry(plan, plan_key(plan)).tensors
        return self._export.resample(plan, tensors, self.lam.float_like())

    def extra_repr(self) -> str:
        config = self.config
        return f"{super().extra_repr()}, rule={config.rule!r}, partition={config.partition!r}"
