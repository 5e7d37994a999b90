"""Where a channel group samples its weight functions at any width: `UniformGrid`, `TrainableGrid`.

One grid per resizable channel group of an `IntegralModel`. ``grid.points(m)`` gives the
``m`` channel coordinates in [0, 1] a layer of width ``m`` samples. A uniform grid returns
``linspace(0, 1, m)``. A trainable grid holds one `TrainablePartition` of the group's full
width ``n`` and reads it as a monotone map ``φ`` of [0, 1] (piecewise linear through the
partition's points at ``j / (n − 1)``); a layer of width ``m`` samples ``φ(linspace(0, 1,
m))``. At ``m = n`` that is exactly the partition's points, at any other width it is a
warped uniform grid, so one set of trainable parameters serves every width (what training
with random widths needs) and tuning it at a pruned width moves all nearby widths too.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from anywidth.integral.partition import TrainablePartition, uniform_points

__all__ = ["Grid", "UniformGrid", "TrainableGrid", "make_grid"]


class Grid(nn.Module):
    """Channel coordinates of one group at any width (base class).

    Args:
        size: the group's full width ``n``.
    """

    kind = "base"

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"a grid needs size >= 1, got {size}")
        self.size = size

    def points(self, m: int, *, dtype: torch.dtype, device: torch.device | str) -> Tensor:
        """The ``m`` sample coordinates, shape ``(m,)``, increasing in [0, 1]."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"size={self.size}"


class UniformGrid(Grid):
    """``linspace(0, 1, m)`` at every width (``[0.5]`` at width 1); no parameters.

    Example:
        >>> UniformGrid(16).points(3, dtype=torch.float32, device="cpu")
        tensor([0.0000, 0.5000, 1.0000])
    """

    kind = "uniform"

    def points(self, m: int, *, dtype: torch.dtype, device: torch.device | str) -> Tensor:
        return uniform_points(m, dtype=dtype, device=device)


class TrainableGrid(Grid):
    """A trainable monotone map of [0, 1], sampled uniformly at each width.

    The parameters are those of ``self.partition`` (a `TrainablePartition` of ``size``
    points, δ² cumulative sums); they start uniform, so the grid starts equal to
    `UniformGrid`. Gradients of anything computed from ``points`` reach ``partition.delta``.

    Example:
        >>> grid = TrainableGrid(16)
        >>> grid.points(16, dtype=torch.float32, device="cpu").shape
        torch.Size([16])
        >>> grid.points(5, dtype=torch.float32, device="cpu").sum().backward()
    """

    kind = "trainable"

    def __init__(self, size: int, *, dtype: torch.dtype | None = None) -> None:
        super().__init__(size)
        self.partition = TrainablePartition(size, dtype=dtype)

    def points(self, m: int, *, dtype: torch.dtype, device: torch.device | str) -> Tensor:
        knots = self.partition.points().to(dtype=dtype, device=device)  # (n,)
        n = self.size
        if m == n:
            return knots
        if m == 1 or n == 1:
            return uniform_points(m, dtype=dtype, device=device)
        # Position of k/(m-1) among the knots j/(n-1), in exact integer arithmetic so that
        # points that coincide with knots are the knots themselves.
        num = torch.arange(m, device=knots.device) * (n - 1)  # (m,)
        j = torch.div(num, m - 1, rounding_mode="floor").clamp(max=n - 2)  # (m,)
        frac = ((num - j * (m - 1)).to(dtype) / (m - 1)).to(knots.device)  # (m,)
        return knots[j] * (1 - frac) + knots[j + 1] * frac


def make_grid(kind: str, size: int, *, dtype: torch.dtype | None = None) -> Grid:
    """A grid of the given kind (``"uniform"`` or ``"trainable"``) for a group of ``size``.

    Example:
        >>> make_grid("trainable", 8)
        TrainableGrid(
          size=8
          (partition): TrainablePartition(n=8)
        )
    """
    if kind == "uniform":
        return UniformGrid(size)
    if kind == "trainable":
        return TrainableGrid(size, dtype=dtype)
    raise ValueError(f"unknown grid kind {kind!r}; use 'uniform' or 'trainable'")
