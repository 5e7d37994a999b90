"""Helpers of `anywidth.slim`: the indices that keep the first channels of a plan."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from anywidth.graph import ChannelGroup

__all__ = ["slice_indices"]


def slice_indices(
    groups: Iterable[ChannelGroup], plan: Mapping[str, int], tensors: Mapping[str, Tensor]
) -> dict[tuple[str, int], Tensor]:
    """``{(tensor name, dim): kept indices}`` for the tensors ``plan`` shortens.

    Keeps the first ``plan[g]`` channels of every group ``g`` smaller than its size, in every
    member (a member with ``block > 1`` keeps whole blocks), as `anywidth.graph.cut` does
    with `anywidth.graph.keep_first` keep-sets; dimensions that hold several groups
    (concatenations) keep each group's first channels.
    """
    masks: dict[tuple[str, int], Tensor] = {}
    for group in groups:
        size = plan.get(group.name, group.size)
        if group.fixed or size == group.size:
            continue
        for m in group.members:
            full = tensors[m.name].shape[m.dim]
            mask = masks.setdefault((m.name, m.dim), torch.ones(full, dtype=torch.bool))
            mask[m.offset : m.offset + group.size * m.block] = False
            mask[m.indices(list(range(size)))] = True
    return {
        key: mask.nonzero().squeeze(1).to(tensors[key[0]].device) for key, mask in masks.items()
    }
