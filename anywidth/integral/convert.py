"""`to_integral`: convert a trained discrete network into an `IntegralModel` (INN-init)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from anywidth.graph import ChannelGroup, analyze_channels, fix_unreadable, permute_channels
from anywidth.integral._layout import tied_aliases
from anywidth.integral._nodes import resolve_nodes
from anywidth.integral._order import order_groups
from anywidth.integral.config import IntegralConfig
from anywidth.integral.model import IntegralModel
from anywidth.record import zoo_origin

__all__ = ["to_integral"]

logger = logging.getLogger("anywidth.integral")


def to_integral(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    config: IntegralConfig | None = None,
    *,
    model_name: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> IntegralModel:
    """Turn every resizable channel group of ``model`` into a continuous coordinate on [0, 1].

    1. Channel groups are found by tracing (`anywidth.graph.channel_groups`); groups
       matching ``config.fixed`` stay discrete, and so do those whose size the skeleton
       cannot read from tensor shapes (`anywidth.graph.fix_unreadable`, with a warning).
    2. With ``config.reorder``, each group's channels are sorted along a short open path
       through their weights (every member slice, normalised per member; see
       `anywidth.integral.ordering.channel_order`) and applied to every member with
       `anywidth.graph.permute.permute_channels`, which leaves the function unchanged.
    3. Each tensor becomes λ: integrated dimensions (a conv/linear weight's input channels)
       are divided by the full-width quadrature weights, and groups with fewer nodes than
       channels are fitted (``config.nodes_init``).

    With the default config (nodes = widths, uniform grids) the result reproduces the
    source's outputs at full width up to float rounding. The caller's model is not changed.

    Tied tensors (one parameter under several names, e.g. ``self.c.weight =
    self.b.weight``) get one weight function, resampled once, when every name sees the same
    channel groups; otherwise conversion stops with an error naming both.

    Args:
        model: the trained network.
        example_input: an input of the shape the model expects (batch 1 is enough); MAC
            budgets are counted for this input.
        config: conversion options; default `IntegralConfig()`.
        model_name: the zoo name of ``model``, recorded so `load_integral` can rebuild it;
            by default the one in the model's record (``create_model`` writes it).
        model_kwargs: the ``create_model`` options of ``model``; by default those in its
            record.

    Returns:
        The `IntegralModel`, at full width, in ``model``'s train/eval mode.

    Raises:
        GraphError: the model cannot be traced, or it has a tied tensor whose names lie in
            different channel groups (untie it, or keep those groups fixed).
        PlanError: a ``fixed`` or ``nodes`` pattern matches no group, or more nodes than
            channels.

    Example:
        >>> model = anywidth.create_model("resnet20")
        >>> inn = to_integral(anywidth.create_model("resnet20"), torch.randn(1, 3, 32, 32))
        >>> small = inn.resample(target_macs=0.5)
    """
    config = config or IntegralConfig()
    analysis = analyze_channels(model, example_input, fixed=config.fixed)  # traced once
    groups = fix_unreadable(model, example_input, analysis)
    nodes = resolve_nodes(groups, config.nodes)
    perms = {}
    model_name, model_kwargs = zoo_origin(model, model_name, model_kwargs)
    aliases = tied_aliases(model, groups, nodes)  # before ordering: refuse early
    if config.reorder:
        perms = order_groups(model, groups, seed=config.seed, time_limit=config.order_time_limit)
    source = _permuted(model, groups, perms, aliases) if perms else copy.deepcopy(model)
    inn = IntegralModel(
        source,
        _detached(example_input),
        groups,
        config,
        nodes=nodes,
        permutation={name: perm.tolist() for name, perm in perms.items()},
        model_name=model_name,
        model_kwargs=model_kwargs,
    )
    logger.info(
        "converted %s: %d of %d channel groups continuous",
        type(model).__name__,
        len(inn.resizable),
        len(groups),
    )
    return inn.train(model.training)


def _permuted(
    model: nn.Module,
    groups: list[ChannelGroup],
    perms: Mapping[str, torch.Tensor],
    aliases: Mapping[str, str],
) -> nn.Module:
    """`permute_channels` for models with tied tensors too.

    Each alias gets its own copy while permuting (every name of a tied tensor has the same
    groups, see `tied_aliases`, so the copies stay equal); the copy is tied again after.
    """
    if not aliases:
        return permute_channels(model, groups, perms)
    untied = copy.deepcopy(model)
    for alias in aliases:
        _set_tensor(untied, alias, _get_tensor(untied, alias).detach().clone())
    permuted = permute_channels(untied, groups, perms)
    for alias, name in aliases.items():
        _set_tensor(permuted, alias, _get_tensor(permuted, name))
    return permuted


def _get_tensor(model: nn.Module, name: str) -> torch.Tensor:
    owner, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(owner) if owner else model, attr)


def _set_tensor(model: nn.Module, name: str, value: torch.Tensor) -> None:
    owner_name, _, attr = name.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    if attr in owner._parameters:
        if not isinstance(value, nn.Parameter):
            value = nn.Parameter(value, requires_grad=owner._parameters[attr].requires_grad)
        owner._parameters[attr] = value
    else:
        owner._buffers[attr] = value


def _detached(example_input: torch.Tensor | tuple) -> torch.Tensor | tuple:
    if isinstance(example_input, torch.Tensor):
        return example_input.detach().clone()
    return tuple(_detached(x) if isinstance(x, torch.Tensor) else x for x in example_input)
