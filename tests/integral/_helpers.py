"""Shared helpers for the INN conversion tests: zoo models with non-trivial weights, inputs."""

from __future__ import annotations

import torch
from torch import nn

import anywidth
from tests.graph._helpers import randomize_, rel_err

__all__ = ["input_for", "random_model", "random_plan", "rel_err", "shuffled_order"]


def input_for(name: str, batch: int = 2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """8x8 images for the tiny models, 16x16 for the rest (3 channels)."""
    side = 8 if name.startswith("tiny_") else 16
    return torch.randn(batch, 3, side, side, dtype=dtype)


def random_model(name: str, seed: int = 0, **kwargs) -> nn.Module:
    """A zoo model in eval mode with random weights and BatchNorm statistics."""
    return randomize_(anywidth.create_model(name, **kwargs), seed=seed)


def random_plan(groups, seed: int) -> dict[str, int]:
    """A random size in 1..size for every resizable group."""
    gen = torch.Generator().manual_seed(seed)
    return {
        g.name: int(torch.randint(1, g.size + 1, (1,), generator=gen))
        for g in groups
        if not g.fixed
    }


def shuffled_order(features: torch.Tensor, **_) -> torch.Tensor:
    """A stand-in for `channel_order`: a seeded random permutation (fast, never the identity)."""
    n = features.shape[0]
    gen = torch.Generator().manual_seed(n)
    perm = torch.randperm(n, generator=gen)
    return perm if not torch.equal(perm, torch.arange(n)) else perm.flip(0)
