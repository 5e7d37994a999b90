"""The traced module a width model runs its per-plan tensors through.

One width-agnostic skeleton (`anywidth.graph.width_agnostic`) serves every width plan: it
reads its channel counts (depthwise ``groups``, slice bounds, split sizes) from the
tensors it is given. It holds no weights of its own (its tensors live on the ``meta``
device); every parameter and buffer is supplied per call, through
``torch.func.functional_call`` or by `install`.
"""

from __future__ import annotations

import copy
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

    Attributes:
        installed: what `install` last put in the skeleton (compared by identity), None
            when it holds no valid tensors.
    """

    def __init__(
        self, source: nn.Module, example_input: torch.Tensor | tuple, groups: list[ChannelGroup]
    ) -> None:
        skeleton = width_agnostic(source, example_input, groups, check=False)
        # Constants the trace lifted out of forward (relative-position indices, masks) are
        # no tensors of the source: kept as they are, not supplied per plan.
        own = {n for n, _ in source.named_parameters(remove_duplicate=False)}
        own |= {n for n, _ in source.named_buffers(remove_duplicate=False)}
        constants = {n: b.detach().clone() for n, b in skeleton.named_buffers() if n not in own}
        self._skeleton = skeleton.to_empty(device="meta")
        for name, value in constants.items():
            owner, _, attr = name.rpartition(".")
            self._skeleton.get_submodule(owner)._buffers[attr] = value
        self._constants = set(constants)
        self._modes: tuple[bool, bool] | None = None
        self.installed: object | None = None

    def __deepcopy__(self, memo: dict) -> Skeletons:
        """A copy that holds no valid tensors (what is installed belongs to the original)."""
        new = Skeletons.__new__(Skeletons)
        memo[id(self)] = new
        new._skeleton = copy.deepcopy(self._skeleton, memo)
        new._modes, new.installed = self._modes, None
        new._constants = set(self._constants)
        return new

    def names(self) -> tuple[list[str], list[str]]:
        """(parameter names, buffer names) the skeleton expects, at any plan."""
        gm = self._skeleton
        buffers = [n for n, _ in gm.named_buffers() if n not in self._constants]
        return [n for n, _ in gm.named_parameters()], buffers

    def get(self, sizes: Mapping[str, int], *, training: bool, batch_stats: bool) -> fx.GraphModule:
        """The skeleton for a (validated) plan, in train/eval mode (the same module for every
        plan); ``batch_stats``: BatchNorm layers in training mode, whatever ``training``."""
        gm = self._skeleton
        if self._modes != (training, batch_stats):
            gm.train(training)
            if batch_stats:
                for m in gm.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.train()
            self._modes = (training, batch_stats)
        return gm

    def install(self, tensors: Mapping[str, torch.Tensor], token: object) -> fx.GraphModule:
        """The skeleton holding ``tensors`` (see `install`), unless ``token`` is installed."""
        if self.installed is not token:
            install(self._skeleton, tensors)
            self.installed = token
        return self._skeleton


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
