"""The nouns of anywidth.graph: members, channel groups, and the errors."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Member", "ChannelGroup", "GraphError", "PlanError"]


class GraphError(ValueError):
    """The model cannot be traced or analysed; the message names the module and the fix."""


class PlanError(ValueError):
    """A keep-set, size plan, ``fixed`` pattern or replacement tensor does not fit the groups."""


@dataclass(frozen=True)
class Member:
    """Where a channel group lives inside one parameter or buffer.

    Channel ``k`` of the group occupies indices ``offset + k * block + j`` for
    ``j in range(block)`` along dimension ``dim`` of the tensor ``name``. ``block`` is 1
    except after a flatten: a channel of a ``(C, H, W)`` map owns ``H * W`` consecutive
    features of the flattened vector, so the Linear that reads it has ``block = H * W``.
    ``offset`` is non-zero for a segment of a concatenation (or a slice of a producer).

    Example:
        >>> Member("fc.weight", dim=1, offset=64, block=16)  # 2nd segment of a cat, flattened
    """

    name: str
    dim: int
    offset: int = 0
    block: int = 1

    def indices(self, channels: list[int]) -> list[int]:
        """Tensor indices along ``dim`` that hold the given channels of the group."""
        return [self.offset + k * self.block + j for k in channels for j in range(self.block)]


@dataclass(frozen=True)
class ChannelGroup:
    """A set of tensor dimensions that must keep the same size and channel order.

    Attributes:
        name: stable readable name from the group's first producer, e.g.
            ``"layer1.0.conv1:out"``; a part of a producer's channels reads
            ``"stem.0:out[0:16]"``; the model input is ``"input:x"``.
        size: number of channels.
        fixed: True when the group must not be cut (model input or output, an op whose
            channel semantics are unknown, or fixed by the caller).
        members: every parameter/buffer dimension that holds the group's channels.
    """

    name: str
    size: int
    fixed: bool
    members: tuple[Member, ...]
