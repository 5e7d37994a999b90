"""Input statistics for data-aware decompositions: each layer's input covariance.

A layer that sees inputs X (columns: im2col patches of a conv, rows of a linear) errs by
‖(W − Ŵ)X‖ on real data, not by ‖W − Ŵ‖. With Σ = XXᵀ = LLᵀ, the best rank-j Ŵ for the
output is the truncated SVD of W·L mapped back by L⁻¹ (`SliceSVD.of(..., cov=Σ)`), and its
relative output error is read from the same singular values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from anywidth.lowrank._factors import LayerInfo
from anywidth.measure import eval_mode

__all__ = ["input_covariances"]


def _columns(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, d): one row per output position, d = c·κ1κ2 in the weight's column order."""
    if isinstance(module, nn.Conv2d):
        # pad as the layer does ("same", reflect, ...), then take patches without padding
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        x = F.pad(x, module._reversed_padding_repeated_twice, mode=mode)
        cols = F.unfold(x, module.kernel_size, module.dilation, 0, module.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (B·L, c·κ1κ2)
    return x.reshape(-1, x.shape[-1])


def _batches(data) -> Iterable[torch.Tensor | tuple]:
    train = getattr(data, "train", None)  # a `Loaders`: its training split
    return train if train is not None else data


@torch.no_grad()
def input_covariances(
    model: nn.Module, layers: Sequence[LayerInfo], data, batches: int
) -> dict[str, torch.Tensor]:
    """Σ = Σ_x XXᵀ (float64) of every layer's inputs over the first ``batches`` batches.

    Args:
        model: the model the layers belong to (run in eval mode; restored after).
        layers: the layers whose inputs are collected.
        data: a `Loaders` (its train split is used), a DataLoader, or any iterable of
            ``(inputs, labels)`` pairs or input tensors.
        batches: how many batches to run.

    Raises:
        ValueError: ``data`` yields no batch.
    """
    if isinstance(data, torch.Tensor):
        raise TypeError(
            "decompose(data=...) takes a DataLoader, a Loaders or an iterable of batches, "
            "not one tensor; wrap it: data=[tensor]"
        )
    sums: dict[str, torch.Tensor] = {}

    def hook_for(name: str, module: nn.Module):
        def hook(_m, inputs, _out) -> None:
            cols = _columns(module, inputs[0].detach()).double()
            sums[name] = sums.get(name, 0) + cols.T @ cols

        return hook

    hooks = [info.module.register_forward_hook(hook_for(info.name, info.module)) for info in layers]
    seen = 0
    try:
        with eval_mode(model):
            for batch in _batches(data):
                if seen >= batches:
                    break
                inputs = batch[0] if isinstance(batch, tuple | list) else batch
                model(inputs)
                seen += 1
    finally:
        for hook in hooks:
            hook.remove()
    if seen == 0:
        raise ValueError("decompose(data=...) yielded no batch; pass a non-empty DataLoader")
    return sums
