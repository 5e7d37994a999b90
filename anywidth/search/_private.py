"""Helpers of `search_shape`: channel order, the data halves, the target check, re-init."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from anywidth.data import Loaders
from anywidth.graph import Analysis, ChannelGroup, analyze_channels, permute_channels
from anywidth.search._arch import Architecture

__all__ = ["ordered_copy", "halves", "check_reachable", "reinit_"]

logger = logging.getLogger("anywidth.search")

_PRODUCERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def ordered_copy(
    model: nn.Module, example_input, fixed: Iterable[str], order: str
) -> tuple[nn.Module, Analysis]:
    """A copy of ``model`` (same function) with each group's channels by descending L1 norm
    of the filters that write them (``order="l1"``), and its analysis."""
    analysis = analyze_channels(model, example_input, fixed)
    if order == "none":
        source = copy.deepcopy(model)
        return source, analyze_channels(source, example_input, fixed)
    perms = {}
    for group in analysis.groups:
        scores = _l1_scores(model, group)
        if not group.fixed and scores is not None:
            perms[group.name] = torch.argsort(scores, descending=True, stable=True)
    source = permute_channels(model, analysis.groups, perms)
    return source, analyze_channels(source, example_input, fixed)


def _l1_scores(model: nn.Module, group: ChannelGroup) -> torch.Tensor | None:
    total = None
    for m in group.members:
        owner, _, attr = m.name.rpartition(".")
        module = model.get_submodule(owner)
        if attr != "weight" or m.dim != 0 or m.offset or m.block != 1:
            continue
        if not isinstance(module, _PRODUCERS) or module.weight.shape[0] != group.size:
            continue
        score = module.weight.detach().abs().flatten(1).sum(1)  # (C,)
        total = score if total is None else total + score
    return total


def halves(
    data: Loaders | DataLoader, seed: int
) -> tuple[DataLoader, DataLoader, DataLoader | None]:
    """The weight half and the architecture half of the training data, and a val loader."""
    loader = data.train if isinstance(data, Loaders) else data
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"search_shape data is a {type(data).__name__}; pass a DataLoader or "
            "anywidth.data.Loaders"
        )
    dataset = loader.dataset
    try:
        n = len(dataset)
    except TypeError:
        raise TypeError(
            "search_shape needs a DataLoader over a map-style dataset (one with len), to "
            "split it into a weight half and an architecture half"
        ) from None
    if n < 2:
        raise ValueError(f"search_shape got {n} training sample(s); it needs at least 2")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    batch = loader.batch_size or 1
    parts = []
    for i, part in enumerate((order[: n // 2], order[n // 2 :])):
        shuffle = torch.Generator().manual_seed(seed + 1 + i)
        parts.append(DataLoader(Subset(dataset, part), batch, shuffle=True, generator=shuffle))
    val = data.val if isinstance(data, Loaders) else None
    return parts[0], parts[1], val


def check_reachable(arch: Architecture, target: float) -> None:
    """Raise when even the smallest candidates everywhere stay above ``target``."""
    smallest = {name: sizes[0] for name, sizes in zip(arch.groups, arch.candidates, strict=True)}
    low = arch.macs(smallest, [0] * len(arch.runs)) / arch.full_macs
    if low > target:
        raise ValueError(
            f"SearchConfig.target_macs={target} is below the smallest shape the candidates "
            f"allow ({low:.1%} of the MACs: every searched group at its smallest width, every "
            "skippable block skipped); raise target_macs, add smaller width_ratios, or unfix "
            "groups"
        )


def reinit_(model: nn.Module, seed: int) -> None:
    """Fresh parameters for every layer that can reset itself (BN statistics too)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
