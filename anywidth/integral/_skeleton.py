"""The traced module an IntegralModel runs its discretized tensors through.

One width-agnostic skeleton (`anywidth.graph.width_agnostic`) serves every width plan: it
reads its channel counts (depthwise ``groups``, slice bounds, split sizes) from the
tensors it is given. It holds no weights of its own (its tensors live on the ``meta``
device); every parameter and buffer is supplied per call, through
``torch.func.functional_call`` or by `install`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import fx, nn

from anywidth.graph import ChannelGroup, width_agnostic

__all__ = ["Skeletons", "install"]


class Skeletons:
    """The skeleton of one source model.

    Args:
        source: the (channel-permuted) source model; only its structure is used.
        example_input: the input the groups were traced with.
        groups: the groups of ``source`` for that input.
    """

    def __init__(
        self, source: nn.Module, example_input: torch.Tensor | tuple, groups: list[ChannelGroup]
    ) -> None:
        skeleton = width_agnostic(source, example_input, groups, check=False)
        self._skeleton = skeleton.to_empty(device="meta")

    def names(self) -> tuple[list[str], list[str]]:
        """(parameter names, buffer names) the skeleton expects, at any plan."""
        gm = self._skeleton
        return [n for n, _ in gm.named_parameters()], [n for n, _ in gm.named_buffers()]

    def get(self, sizes: Mapping[str, int]) -> fx.GraphModule:
        """The skeleton for a (validated) plan: the same module for every plan."""
        return self._skeleton

    def forget_installed(self) -> None:
        """Mark the skeleton as holding no valid tensors (see `install`)."""
        self._skeleton._anywidth_installed = None


def install(gm: fx.GraphModule, tensors: Mapping[str, torch.Tensor]) -> None:
    """Make ``tensors`` the skeleton's own (frozen) parameters and buffers, without copies.

    The skeleton can then be called directly, at the plain model's cost; calls through
    ``functional_call`` still override them.
    """
    for name, tensor in tensors.items():
        owner_name, _, attr = name.rpartition(".")
        owner = gm.get_submodule(owner_name) if owner_name else gm
        if attr in owner._parameters:
            owner._parameters[attr] = nn.Parameter(tensor, requires_grad=False)
        else:
            owner._buffers[attr] = tensor
