"""Input statistics for data-aware decompositions: each layer's input covariance.

A layer that sees inputs X (columns: im2col patches of a conv, rows of a linear) errs by
‖(W − Ŵ)X‖ on real data, not by ‖W − Ŵ‖. With Σ = XXᵀ = LLᵀ, the best rank-j Ŵ for the
output is the truncated SVD of W·L mapped back by L⁻¹ (`SliceSVD.of(..., cov=Σ)`), and its
relative output error is read from the same singular values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from anywidth.graph.ranks import gram_matrices
from anywidth.lowrank._factors import LayerInfo

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


def _input_columns(_name: str, module: nn.Module, inputs: tuple, _out) -> torch.Tensor:
    return _columns(module, inputs[0].detach())


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
    data = getattr(data, "train", data)  # a `Loaders`: its training split
    modules = {info.name: info.module for info in layers}
    try:
        grams = gram_matrices(model, data, modules, batches, rows=_input_columns)
    except ValueError:
        raise ValueError(
            "decompose(data=...) yielded no batch; pass a non-empty DataLoader"
        ) from None
    return {name: gram for name, (gram, _rows) in grams.items()}
