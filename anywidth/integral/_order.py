"""INN-init channel ordering: per group, a short open path through its channels' weights.

Each channel of a group is described by one feature row built from every member slice of
the group: the producer's output filter, its bias, the BatchNorm vectors and running
statistics, the consumers' input columns, every concat segment and tied run. Members differ
wildly in size (a 3x3 conv slice has hundreds of entries, a BN vector one), so each
member's block is centred (per column) and divided by its mean row L1 norm: every member
then contributes about 1 to the distance between two typical channels, whatever its size
or scale, and the path minimises the sum of the members' relative total variations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from anywidth._progress import progress
from anywidth.graph import ChannelGroup
from anywidth.integral.ordering import channel_order

__all__ = ["group_features", "order_groups"]

logger = logging.getLogger("anywidth.integral")


# Feature matrices up to this many entries are normalised in float64, larger ones (whose
# distances are estimated anyway: `anywidth.integral.ordering.sketch_columns`) in float32.
_DOUBLE_MAX_ENTRIES = 1 << 24


def group_features(model: nn.Module, group: ChannelGroup) -> Tensor:
    """Per-channel feature rows of a group, shape ``(size, d)``, each member normalised."""
    tensors = dict(model.named_parameters(remove_duplicate=False))  # tied ones too
    tensors.update(model.named_buffers(remove_duplicate=False))
    entries = sum(tensors[m.name].numel() // tensors[m.name].shape[m.dim] for m in group.members)
    entries *= group.size
    dtype = torch.float64 if entries <= _DOUBLE_MAX_ENTRIES else torch.float32
    rows = []
    for m in group.members:
        tensor = tensors[m.name].detach().to(dtype)
        span = tensor.movedim(m.dim, 0)[m.offset : m.offset + group.size * m.block]
        block = span.reshape(group.size, -1)  # (size, block * rest)
        block = block - block.mean(0, keepdim=True)
        scale = block.abs().sum(1).mean()
        if scale > 0:
            rows.append(block / scale)
    if not rows:
        return torch.zeros(group.size, 1)
    return torch.cat(rows, 1).float()  # (size, d)


def order_groups(
    model: nn.Module,
    groups: Iterable[ChannelGroup],
    *,
    seed: int = 0,
    time_limit: float | None = None,
) -> dict[str, Tensor]:
    """``{group: permutation}`` minimising each resizable group's total variation.

    Groups of one or two channels have nothing to order and are left out.
    """
    todo = [g for g in groups if not g.fixed and g.size > 2]
    perms = {}
    for g in progress(todo, desc="ordering channels"):
        perms[g.name] = channel_order(group_features(model, g), seed=seed, time_limit=time_limit)
    logger.debug("ordered the channels of %d groups", len(perms))
    return perms
