"""Reorder the channels of channel groups without changing what the model computes.

Every member of a group (producer outputs, BatchNorm vectors, consumer inputs, every
segment of a concatenation, every run of a grouped conv) holds the group's channels in the
same order, so applying one permutation to all of them leaves the network's function
unchanged. INN conversion uses this to sort channels so that weights vary smoothly along
the channel coordinate.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from anywidth.graph._types import ChannelGroup, PlanError
from anywidth.graph.groups import lookup

__all__ = ["permute_channels"]


def permute_channels(
    model: nn.Module,
    groups: Iterable[ChannelGroup],
    perms: Mapping[str, Sequence[int] | torch.Tensor],
) -> nn.Module:
    """A copy of ``model`` whose channels are reordered group by group.

    New channel ``i`` of group ``g`` is old channel ``perms[g][i]``: every member tensor of
    the group is re-indexed along its dimension (a member with ``block > 1`` moves each
    channel's block as a whole), so the copy computes the same function as ``model`` up to
    float rounding. Groups not in ``perms`` keep their order. The caller's model is not
    changed.

    Args:
        model: the network.
        groups: its `channel_groups` (for the same model; sizes and members are used).
        perms: ``{group name: permutation of range(size)}``.

    Returns:
        A deep copy of ``model`` with permuted parameters and buffers.

    Raises:
        PlanError: unknown group, a fixed group (its channel order is visible outside the
            model or to an op anywidth cannot follow), or not a permutation.

    Example:
        >>> groups = channel_groups(model, x)
        >>> flipped = permute_channels(model, groups, {"conv1:out": torch.arange(15, -1, -1)})
        >>> torch.allclose(flipped(x), model(x), atol=1e-5)
        True
    """
    by_name = {g.name: g for g in groups}
    new = copy.deepcopy(model)
    tensors = dict(new.named_parameters())
    tensors.update(new.named_buffers())
    index: dict[tuple[str, int], torch.Tensor] = {}
    for name, perm in perms.items():
        group = lookup(by_name, name)
        order = _check_perm(group, perm)
        for m in group.members:
            if m.name not in tensors:
                raise PlanError(
                    f"channel group {name!r} has member {m.name!r}, which the model does not "
                    "have; pass channel_groups(model, example_input) of this model"
                )
            length = tensors[m.name].shape[m.dim]
            idx = index.setdefault((m.name, m.dim), torch.arange(length))
            idx[m.offset : m.offset + group.size * m.block] = torch.tensor(m.indices(order))
    with torch.no_grad():
        for (tname, dim), idx in index.items():
            tensor = tensors[tname]
            tensor.copy_(tensor.index_select(dim, idx.to(tensor.device)))
    return new


def _check_perm(group: ChannelGroup, perm: Sequence[int] | torch.Tensor) -> list[int]:
    if group.fixed:
        raise PlanError(
            f"channel group {group.name!r} is fixed (model input/output, an op anywidth cannot "
            "follow, or fixed by the caller); its channel order cannot be changed"
        )
    order = [int(i) for i in (perm.tolist() if isinstance(perm, torch.Tensor) else perm)]
    if sorted(order) != list(range(group.size)):
        raise PlanError(
            f"permutation for channel group {group.name!r} must contain each of "
            f"0..{group.size - 1} exactly once; got {len(order)} entries"
        )
    return order
