"""`LamStore`: λ tensors held under their source names (``lam.layer1.0.conv1.weight``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LamStore"]


class LamStore(nn.Module):
    """A module tree mirroring the source's names, holding one λ per source tensor.

    Parameters of the source become ``nn.Parameter``\\ s, buffers stay buffers, so
    ``state_dict`` keys read like the source's and optimizers see only real parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self._slots: list[tuple[str, nn.Module, str, bool]] = []

    def add(self, name: str, value: Tensor, *, is_param: bool, requires_grad: bool) -> None:
        """Store ``value`` (not copied) under the dotted source name ``name``."""
        owner: nn.Module = self
        *path, attr = name.split(".")
        for part in path:
            if part not in owner._modules:
                owner.add_module(part, nn.Module())
            owner = owner._modules[part]
        if is_param:
            owner.register_parameter(attr, nn.Parameter(value, requires_grad=requires_grad))
        else:
            owner.register_buffer(attr, value)
        self._slots.append((name, owner, attr, is_param))

    def tensors(self) -> dict[str, Tensor]:
        """``{source name: λ}`` in insertion order (current objects, after ``.to()`` too)."""
        return {
            name: (owner._parameters if is_param else owner._buffers)[attr]
            for name, owner, attr, is_param in self._slots
        }

    def float_like(self) -> Tensor:
        """A floating λ, for the dtype and device of grids and quadrature weights."""
        for value in self.tensors().values():
            if value.is_floating_point():
                return value
        return torch.empty(0)

    def __repr__(self) -> str:
        params = sum(1 for _ in self.parameters())
        buffers = sum(1 for _ in self.buffers())
        return f"LamStore({params} parameters, {buffers} buffers)"
