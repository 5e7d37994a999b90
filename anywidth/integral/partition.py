"""Partitions of the unit interval: where a layer of a given width samples its weights.

A partition of size ``n`` is a sorted tensor ``0 = x_0 < … < x_{n-1} = 1``. The single
point of a size-1 partition is ``0.5``: the one-point (midpoint) rule, which represents the
whole interval and integrates linear functions exactly with weight 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["TrainablePartition", "uniform_points"]


def uniform_points(
    n: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> Tensor:
    """The uniform partition ``linspace(0, 1, n)``; ``[0.5]`` for ``n = 1``.

    Args:
        n: Number of points, at least 1.
        dtype: Floating dtype (default: torch's default dtype).
        device: Device of the result.

    Returns:
        Points of shape ``(n,)``.

    Raises:
        ValueError: If ``n < 1``.

    Example:
        >>> uniform_points(5)
        tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])
    """
    if n < 1:
        raise ValueError(f"a partition needs at least one point, got n={n}")
    if n == 1:
        return torch.full((1,), 0.5, dtype=dtype, device=device)
    return torch.linspace(0.0, 1.0, n, dtype=dtype, device=device)


class TrainablePartition(nn.Module):
    """A partition of ``[0, 1]`` with trainable spacing.

    The parameter ``delta`` has ``n − 1`` entries; the gaps are ``δ² / Σδ²`` and the points
    are their cumulative sum with ``0`` prepended. Points start at exactly 0, end at exactly
    1 and never decrease for any ``δ``. They are strictly increasing unless some ``δ_i`` is
    zero (which also stops that entry's gradient) or so small that its gap rounds away in
    floating point. ``δ`` starts at ones, i.e. the uniform partition.
    A size-1 partition has no parameter entries and returns ``[0.5]``, like
    :func:`uniform_points`.

    Args:
        n: Number of points, at least 1.
        dtype: Floating dtype of the parameter (default: torch's default dtype).

    Example:
        >>> part = TrainablePartition(5)
        >>> part.points()
        tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000], grad_fn=<CatBackward0>)
        >>> part.points().sum().backward()  # gradients reach part.delta
    """

    def __init__(self, n: int, *, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"a partition needs at least one point, got n={n}")
        self.n = n
        self.delta = nn.Parameter(torch.ones(n - 1, dtype=dtype))

    @classmethod
    def from_points(cls, points: Tensor) -> TrainablePartition:
        """A trainable partition that starts at the given points.

        Args:
            points: Strictly increasing points of shape ``(n,)`` from 0 to 1 (for ``n = 1``
                any single point; the result returns ``[0.5]``).

        Returns:
            A partition whose :meth:`points` equal ``points`` up to rounding.

        Raises:
            ValueError: If the points are not 1-D, not strictly increasing, or do not run
                from 0 to 1.

        Example:
            >>> p = TrainablePartition.from_points(torch.tensor([0.0, 0.1, 1.0]))
            >>> p.points()
            tensor([0.0000, 0.1000, 1.0000], grad_fn=<CatBackward0>)
        """
        if points.ndim != 1 or points.numel() == 0:
            raise ValueError(f"points must be a non-empty 1-D tensor, got {tuple(points.shape)}")
        part = cls(points.numel(), dtype=points.dtype if points.is_floating_point() else None)
        if points.numel() == 1:
            return part
        gaps = (points[1:] - points[:-1]).detach()  # (n-1,)
        if (gaps <= 0).any():
            raise ValueError("points must be strictly increasing")
        if abs(float(points[0])) > 1e-6 or abs(float(points[-1]) - 1.0) > 1e-6:
            raise ValueError(
                f"points must run from 0 to 1, got {float(points[0])} … {float(points[-1])}"
            )
        with torch.no_grad():
            part.delta.copy_(gaps.sqrt().to(part.delta.dtype))
        return part

    def points(self) -> Tensor:
        """The current points, shape ``(n,)``, differentiable w.r.t. ``delta``."""
        if self.n == 1:
            return self.delta.new_full((1,), 0.5)
        c = torch.cumsum(self.delta * self.delta, 0)  # (n-1,)
        # Divide by the last cumulative sum (not a separate sum) so the last point is exactly 1.
        return torch.cat([c.new_zeros(1), c / c[-1]])  # (n,)

    def forward(self) -> Tensor:
        """Same as :meth:`points`."""
        return self.points()

    def extra_repr(self) -> str:
        return f"n={self.n}"
