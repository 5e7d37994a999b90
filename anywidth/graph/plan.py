"""Cost of a width plan without building the model: `plan_macs`, `plan_params`, `WidthCost`.

MACs of a conv are ``out_ch * in_ch / groups * prod(kernel) * prod(out_spatial) * batch``
and parameters of a weight are the product of its dimensions, so both are polynomials (at
most bilinear per layer) in the group sizes. `WidthCost` records each layer's coefficient
and which groups size its dimensions once; evaluating a plan is then a short loop, fast
enough for budget searches that try thousands of plans.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from anywidth.graph._affine import Form, FormOf, form_maker
from anywidth.graph._analysis import Analyzer
from anywidth.graph._types import ChannelGroup, PlanError
from anywidth.graph.groups import analyze_groups, check_sizes
from anywidth.measure import count_macs

__all__ = ["WidthCost", "plan_macs", "plan_params"]


class WidthCost:
    """MACs and parameter count of a model as functions of its group sizes.

    MACs match `anywidth.measure.count_macs` of the model cut to the same sizes, for the
    whole ``example_input`` batch; parameters match `anywidth.measure.count_params`.

    Args:
        model: the network (not changed).
        example_input: the input to count MACs for.
        groups: the model's `channel_groups` (e.g. with extra fixed groups), or its
            `Analysis` (`analyze_channels`: no new trace); computed when omitted. Sizes are
            validated against them.

    Example:
        >>> cost = WidthCost(model, torch.randn(1, 3, 32, 32))
        >>> cost.macs({"layer1.0.conv1:out": 8}) < cost.macs({})
        True
    """

    def __init__(
        self,
        model: nn.Module,
        example_input: torch.Tensor | tuple,
        groups: Iterable[ChannelGroup] | None = None,
    ) -> None:
        ax, collected, by_name = analyze_groups(model, example_input, groups)
        self.groups: list[ChannelGroup] = list(by_name.values())
        index = {g.name: i for i, g in enumerate(collected.groups)}
        self._full = [g.size for g in collected.groups]
        self._index = index
        form = form_maker(ax.table, collected.name_of_root, index)
        self._mac_terms = [
            (layer.coef, layer.divisor, [form(f.slot, f.block) for f in layer.factors])
            for layer in ax.layers
        ]
        self._param_terms = _param_terms(ax, form)
        self._layer_names = list(ax.layer_names)
        full = self._vector({})
        self._mac_const = _full_macs(ax, example_input) - _sum_terms(self._mac_terms, full)

    def _vector(self, sizes: Mapping[str, int]) -> list[int]:
        vec = list(self._full)
        for name, size in check_sizes(self.groups, sizes).items():
            vec[self._index[name]] = size
        return vec

    def macs(self, sizes: Mapping[str, int]) -> int:
        """MACs of the model cut to ``sizes`` (``{group name: size}``; others stay whole)."""
        return self._mac_const + _sum_terms(self._mac_terms, self._vector(sizes))

    @property
    def other_macs(self) -> int:
        """MACs outside layer modules (functional matmuls): constant in the group sizes."""
        return self._mac_const

    def macs_by_layer(self, sizes: Mapping[str, Any]) -> dict[str, Any]:
        """MACs of each layer module (summed over its calls) at ``sizes``.

        Sizes may be fractional, or tensors with autograd history (expected widths in a
        differentiable search); they are not validated beyond their names. With whole
        sizes, ``sum(values) + other_macs`` equals `macs`.

        Example:
            >>> cost.macs_by_layer({"conv1:out": torch.tensor(7.5)})["conv1"]
            tensor(...)
        """
        vec: list[Any] = list(self._full)
        for name, size in sizes.items():
            if name not in self._index:
                raise PlanError(f"unknown channel group {name!r}; pass names from channel_groups")
            vec[self._index[name]] = size
        out: dict[str, Any] = {}
        for name, (coef, divisor, forms) in zip(self._layer_names, self._mac_terms, strict=True):
            product = coef
            for form in forms:
                product = product * form.value(vec)
            term = product // divisor if isinstance(product, int) else product / divisor
            out[name] = out[name] + term if name in out else term
        return out

    def params(self, sizes: Mapping[str, int]) -> int:
        """Parameter count of the model cut to ``sizes``."""
        return _sum_terms(self._param_terms, self._vector(sizes))


def _full_macs(ax: Analyzer, example_input) -> int:
    """MACs of the traced model (`count_macs` restores every module's mode)."""
    return count_macs(ax.gm, example_input)


def _param_terms(ax: Analyzer, form: FormOf) -> list[tuple[int, int, list[Form]]]:
    """One term per distinct parameter: constant dimensions times affine forms."""
    terms = []
    for name, param in ax.gm.named_parameters():
        coef, forms = 1, []
        for dim, length in enumerate(param.shape):
            bound = ax.bindings.get((name, dim))
            if bound is None:
                coef *= length
            else:
                forms.append(form(*bound))
        terms.append((coef, 1, forms))
    return terms


def _sum_terms(terms, sizes: list[int]) -> int:
    total = 0
    for coef, divisor, forms in terms:
        product = coef
        for form in forms:
            product *= form.value(sizes)
        total += product // divisor
    return total


_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, WidthCost]] = weakref.WeakKeyDictionary()


def _cost_for(model: nn.Module, example_input, groups) -> WidthCost:
    inputs = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    key = (
        tuple((tuple(t.shape), t.dtype) for t in inputs if isinstance(t, torch.Tensor)),
        tuple((n, tuple(p.shape)) for n, p in model.named_parameters()),
        tuple((g.name, g.fixed) for g in groups) if groups is not None else None,
    )
    cached = _CACHE.get(model)
    if cached is None or cached[0] != key:
        cached = (key, WidthCost(model, example_input, groups))
        _CACHE[model] = cached
    return cached[1]


def plan_macs(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    groups: Iterable[ChannelGroup] | None,
    sizes: Mapping[str, int],
) -> int:
    """MACs of ``model`` cut to ``sizes``, without building it.

    Equals ``count_macs(cut(model, x, keep_first(groups, sizes)), x)``. The per-layer
    coefficients are computed once per model and input shape and cached, so repeated calls
    cost a short loop over layers.

    Example:
        >>> model, x = anywidth.create_model("resnet20"), torch.randn(1, 3, 32, 32)
        >>> plan_macs(model, x, channel_groups(model, x), {"layer1.0.conv1:out": 8})
        38453888
    """
    return _cost_for(model, example_input, groups).macs(sizes)


def plan_params(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    groups: Iterable[ChannelGroup] | None,
    sizes: Mapping[str, int],
) -> int:
    """Parameter count of ``model`` cut to ``sizes``, without building it.

    Equals ``count_params(cut(model, x, keep_first(groups, sizes)))``; parameters of
    modules that ``forward`` never uses are not counted (the cut model drops them).

    Example:
        >>> model, x = anywidth.create_model("resnet20"), torch.randn(1, 3, 32, 32)
        >>> plan_params(model, x, None, {"layer1.0.conv1:out": 8})
        270154
    """
    return _cost_for(model, example_input, groups).params(sizes)
