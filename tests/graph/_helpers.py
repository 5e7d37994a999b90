"""Shared helpers for the graph tests: an independent masked reference, random weights."""

from __future__ import annotations

import torch
from torch import nn

from anywidth.graph import ChannelGroup

_PRODUCERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@torch.no_grad()
def masked_forward(
    model: nn.Module, x: torch.Tensor, groups: list[ChannelGroup], keep: dict[str, list[int]]
) -> torch.Tensor:
    """The full model's output with the removed channels zeroed at every producer output.

    Each conv/linear/BN whose output channels belong to a cut group gets a forward hook
    that zeroes the removed channels of its output (after BN, so it is a true mask).
    Activations used with this reference must map 0 to 0; an SE gate is fine as it gates a
    masked tensor.
    """
    modules = dict(model.named_modules())
    hooks = []
    for group in groups:
        if group.name not in keep:
            continue
        removed = [k for k in range(group.size) if k not in set(keep[group.name])]
        for member in group.members:
            owner, _, attr = member.name.rpartition(".")
            module = modules.get(owner)
            out_dim = 1 if isinstance(module, _TRANSPOSED) else 0
            if attr != "weight" or member.dim != out_dim:
                continue
            if not isinstance(module, _PRODUCERS + _TRANSPOSED):
                continue
            index = torch.tensor(member.indices(removed), dtype=torch.long)
            dim = -1 if isinstance(module, nn.Linear) else 1

            def hook(_m, _inp, out, index=index, dim=dim):
                return out.index_fill(dim, index, 0.0)

            hooks.append(module.register_forward_hook(hook))
    try:
        return model(x)
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights and BN statistics everywhere (zoo inits zero some of them)."""
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if not tensor.is_floating_point():
            continue
        fan = max(1, tensor[0].numel()) if tensor.dim() > 1 else 1
        if name.endswith("running_var"):
            tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
        elif tensor.dim() > 1:
            tensor.copy_(torch.randn(tensor.shape, generator=gen) / fan**0.5)
        else:
            tensor.copy_(torch.rand(tensor.shape, generator=gen) - 0.3)
    return model.eval()


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want|."""
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()
