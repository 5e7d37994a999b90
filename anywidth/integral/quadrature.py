"""Quadrature weights on (possibly non-uniform) partitions of the unit interval.

An integral layer computes ∫ W(x) S(x) dx ≈ Σ_i q_i W(x_i) S(x_i). This module turns a
sorted partition ``x_0 < … < x_{n-1}`` into the weights ``q``. Every rule integrates over
the span ``[x_0, x_{n-1}]`` of the partition, which is ``[0, 1]`` for every partition that
anywidth builds (:func:`~anywidth.integral.partition.uniform_points` and
:class:`~anywidth.integral.partition.TrainablePartition`). The weights are built from
differences of the points with plain tensor operations, so gradients flow back to trainable
partitions.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["QUADRATURE_RULES", "quadrature_weights"]

QUADRATURE_RULES: tuple[str, ...] = ("rectangle", "trapezoid", "simpson")


def quadrature_weights(points: Tensor, rule: str = "trapezoid") -> Tensor:
    """Quadrature weights ``q`` such that ``Σ_i q_i f(x_i) ≈ ∫ f`` over ``[x_0, x_{n-1}]``.

    Rules:

    - ``"rectangle"`` (Riemann, first order): each point is the centre of its own cell.
      The cell of an interior point reaches halfway to its neighbours; the two end cells
      are as wide as the gap to their only neighbour, so that a uniform grid gets equal
      cells. The cells are then rescaled to cover the span exactly:
      ``q_i = span · c_i / Σ c``. On a uniform grid this is ``q_i = span / n``; on any
      partition it integrates constants exactly, and on grids symmetric about the
      midpoint (uniform ones included) also linear functions. (Clipping these cells to
      the span instead would give the trapezoid weights, hence this definition.)
    - ``"trapezoid"`` (second order, exact for degree 1 on any partition):
      ``q_0 = (x_1 − x_0)/2``, ``q_i = (x_{i+1} − x_{i−1})/2``,
      ``q_{n−1} = (x_{n−1} − x_{n−2})/2``.
    - ``"simpson"`` (composite Simpson, fourth order): the non-uniform Simpson formula on
      consecutive pairs of intervals, exact for quadratics on any partition and for cubics
      on uniform grids with an odd number of points. With an even number of points the
      last interval is integrated with the quadratic through the last three points
      (weights ``5h/12, 8h/12, −h/12`` on a uniform grid), which keeps fourth order and
      exactness for quadratics; ``n = 2`` falls back to the trapezoid rule. On strongly
      non-uniform partitions (one interval of a pair more than twice the other) some
      Simpson weights become negative — a property of the rule, not a bug.

    ``n = 1`` returns ``[1.0]`` for every rule: a single point stands for the whole unit
    interval.

    Args:
        points: Sorted, strictly increasing partition of shape ``(n,)``, floating point.
            Gradients flow back to it.
        rule: One of ``"rectangle"``, ``"trapezoid"``, ``"simpson"``.

    Returns:
        Weights of shape ``(n,)``, same dtype and device as ``points``.

    Raises:
        ValueError: For an unknown rule, a tensor that is not 1-D or empty, or integer
            points.

    Example:
        >>> x = torch.linspace(0, 1, 5)
        >>> quadrature_weights(x, "trapezoid")
        tensor([0.1250, 0.2500, 0.2500, 0.2500, 0.1250])
        >>> float((quadrature_weights(x, "simpson") * x**3).sum())
        0.25
    """
    if rule not in QUADRATURE_RULES:
        raise ValueError(f"unknown quadrature rule {rule!r}; expected one of {QUADRATURE_RULES}")
    if points.ndim != 1 or points.numel() == 0:
        raise ValueError(f"points must be a non-empty 1-D tensor, got shape {tuple(points.shape)}")
    if not points.is_floating_point():
        raise ValueError(f"points must be floating point, got {points.dtype}")
    if points.numel() == 1:
        return torch.ones_like(points)
    if rule == "rectangle":
        return _rectangle(points)
    if rule == "trapezoid":
        return _trapezoid(points)
    return _simpson(points)


def _trapezoid(x: Tensor) -> Tensor:
    h = x[1:] - x[:-1]  # (n-1,)
    zero = h.new_zeros(1)
    return 0.5 * (torch.cat([h, zero]) + torch.cat([zero, h]))  # (n,)


def _rectangle(x: Tensor) -> Tensor:
    h = x[1:] - x[:-1]  # (n-1,)
    cells = 0.5 * (torch.cat([h, h[-1:]]) + torch.cat([h[:1], h]))  # (n,)
    return cells * ((x[-1] - x[0]) / cells.sum())


def _simpson(x: Tensor) -> Tensor:
    n = x.numel()
    if n == 2:
        return _trapezoid(x)
    h = x[1:] - x[:-1]  # (n-1,)
    # Pairs of intervals [x_2k, x_2k+1, x_2k+2]; an odd leftover interval is handled below.
    n_pairs = (n - 1) // 2
    h0 = h[0 : 2 * n_pairs : 2]  # (n_pairs,)
    h1 = h[1 : 2 * n_pairs : 2]  # (n_pairs,)
    total = h0 + h1
    left = total / 6 * (2 - h1 / h0)
    mid = total**3 / (6 * h0 * h1)
    right = total / 6 * (2 - h0 / h1)
    q = x.new_zeros(n)
    q = q.index_add(0, torch.arange(0, 2 * n_pairs, 2, device=x.device), left)
    q = q.index_add(0, torch.arange(1, 2 * n_pairs, 2, device=x.device), mid)
    q = q.index_add(0, torch.arange(2, 2 * n_pairs + 1, 2, device=x.device), right)
    if n % 2 == 0:
        # Integrate the quadratic through the last three points over the last interval only.
        a, b = h[-2], h[-1]
        w_last = (2 * b**2 + 3 * a * b) / (6 * (a + b))
        w_prev = (b**2 + 3 * a * b) / (6 * a)
        w_prev2 = -(b**3) / (6 * a * (a + b))
        tail = torch.stack([w_prev2, w_prev, w_last])  # (3,)
        q = q.index_add(0, torch.arange(n - 3, n, device=x.device), tail)
    return q
