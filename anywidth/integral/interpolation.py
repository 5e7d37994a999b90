"""Cubic-convolution weight functions: sample parameters λ at arbitrary channel coordinates.

A continuous dimension with ``n`` nodes carries parameters ``λ_0 … λ_{n-1}`` at the nodes
``j / (n − 1)`` of ``[0, 1]``. Its value at a point ``x`` is
``F(x) = Σ_j λ_j u(x (n − 1) − j)`` with ``u`` the Keys cubic convolution kernel. The kernel
reaches two nodes to each side, so near the ends it needs the virtual nodes ``λ_{−1}`` and
``λ_n``. They are extrapolated with Keys's boundary condition
``λ_{−1} = 3λ_0 − 3λ_1 + λ_2`` (and its mirror at the right end), which reproduces
polynomials up to degree 2 at the ends and keeps the O(h³) accuracy of the interior
(for the default ``a = −0.5``). Folding the virtual nodes' kernel weights onto the real
nodes makes sampling a plain ``(points, nodes)`` matrix. With two nodes the boundary
condition is linear (``λ_{−1} = 2λ_0 − λ_1``) and interpolation is linear; with one node
the function is constant.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cubic_kernel", "interpolation_matrix", "sample"]


def cubic_kernel(s: Tensor, a: float = -0.5) -> Tensor:
    """Keys cubic convolution kernel, elementwise.

    ``u(s) = (a+2)|s|³ − (a+3)|s|² + 1`` for ``|s| ≤ 1``,
    ``a|s|³ − 5a|s|² + 8a|s| − 4a`` for ``1 < |s| < 2``, else ``0``. ``u(0) = 1`` and
    ``u(k) = 0`` at every other integer, so interpolation returns the nodes exactly;
    ``a = −0.5`` gives third-order accuracy.

    Args:
        s: Offsets in units of the node spacing, any shape.
        a: Kernel parameter.

    Returns:
        Kernel values, same shape and dtype as ``s``.

    Example:
        >>> cubic_kernel(torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]))
        tensor([ 1.0000,  0.5625,  0.0000, -0.0625,  0.0000])
    """
    t = s.abs()
    t2 = t * t
    t3 = t2 * t
    inner = (a + 2) * t3 - (a + 3) * t2 + 1
    outer = a * t3 - 5 * a * t2 + 8 * a * t - 4 * a
    zero = torch.zeros_like(t)
    return torch.where(t <= 1, inner, torch.where(t < 2, outer, zero))


def interpolation_matrix(points: Tensor, num_nodes: int, a: float = -0.5) -> Tensor:
    """Matrix ``M`` with ``F(points) = M @ λ`` for a weight function with ``num_nodes`` nodes.

    Each row has at most four non-zero entries and sums to one. At a node the row is
    exactly the corresponding unit vector: points within a few float rounding errors of a
    node are snapped onto it (in value; the gradient is unchanged), so a uniform grid of
    ``num_nodes`` points gives exactly the identity.

    Args:
        points: Sample coordinates of shape ``(m,)`` in ``[0, 1]``, floating point.
            Gradients flow back to them.
        num_nodes: Number of parameter nodes ``n`` (placed at ``j / (n − 1)``).
        a: Kernel parameter of :func:`cubic_kernel`.

    Returns:
        Matrix of shape ``(m, num_nodes)``, same dtype and device as ``points``.

    Raises:
        ValueError: If ``points`` is not a floating 1-D tensor, lies outside ``[0, 1]``, or
            ``num_nodes < 1``.

    Example:
        >>> m = interpolation_matrix(torch.tensor([0.0, 0.25, 1.0]), 3)
        >>> m
        tensor([[ 1.0000,  0.0000,  0.0000],
                [ 0.3750,  0.7500, -0.1250],
                [ 0.0000,  0.0000,  1.0000]])
    """
    if num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
    s = _node_coordinates(points, num_nodes)  # (m,)
    if num_nodes == 1:
        return torch.ones(points.numel(), 1, dtype=points.dtype, device=points.device)
    n = num_nodes
    # Real nodes 0..n-1 plus the virtual nodes -1 and n.
    nodes = torch.arange(-1, n + 1, dtype=points.dtype, device=points.device)  # (n+2,)
    u = cubic_kernel(s[:, None] - nodes[None, :], a)  # (m, n+2)
    ghost_left, real, ghost_right = u[:, :1], u[:, 1:-1], u[:, -1:]  # (m,1) (m,n) (m,1)
    fold = _ghost_extrapolation(n, points)  # (n,)
    return real + ghost_left * fold[None, :] + ghost_right * fold.flip(0)[None, :]


def _node_coordinates(points: Tensor, n: int) -> Tensor:
    """Validate points in [0, 1] and map them to node units ``x (n − 1)``, snapped at nodes."""
    if points.ndim != 1 or not points.is_floating_point():
        raise ValueError(
            f"points must be a floating 1-D tensor, got {points.dtype} {tuple(points.shape)}"
        )
    if points.numel() and (points.min() < -1e-4 or points.max() > 1 + 1e-4):
        raise ValueError(
            f"points must lie in [0, 1], got range [{float(points.min())}, {float(points.max())}]"
        )
    s = points * max(n - 1, 1)  # (m,)
    # A node stored as a float is only within rounding of j/(n-1); snap such points onto the
    # node (value only, the gradient is unchanged) so nodes are reproduced bit for bit.
    nearest = s.round()
    tol = 16 * torch.finfo(s.dtype).eps * max(n - 1, 1)
    return torch.where((s - nearest).abs() <= tol, s + (nearest - s).detach(), s)


def _ghost_extrapolation(n: int, like: Tensor) -> Tensor:
    """Coefficients ``c`` with ``λ_{−1} = Σ_j c_j λ_j`` (mirrored for ``λ_n``)."""
    c = torch.zeros(n, dtype=like.dtype, device=like.device)
    if n == 2:
        c[0], c[1] = 2.0, -1.0
    else:
        c[0], c[1], c[2] = 3.0, -3.0, 1.0
    return c


def sample(lam: Tensor, grids: dict[int, Tensor], a: float = -0.5) -> Tensor:
    """Sample a weight function separably along its continuous dimensions.

    For every dimension ``d`` in ``grids`` the parameters are multiplied along ``d`` by
    ``interpolation_matrix(grids[d], lam.shape[d])`` (computed as a four-tap gather, not a
    dense product, so the cost is linear in the width); the size of ``d`` becomes
    ``len(grids[d])``. Dimensions not in ``grids`` (e.g. the kernel window of a conv) are
    left as they are. Gradients flow to ``lam`` and to the points.

    Args:
        lam: Parameters of any rank, e.g. ``(C_out, C_in, kH, kW)`` for a conv.
        grids: Map from dimension (negative allowed) to the points sampled along it.
        a: Kernel parameter of :func:`cubic_kernel`.

    Returns:
        The sampled tensor; dimension ``d`` has size ``len(grids[d])``.

    Raises:
        ValueError: If a dimension is out of range or named twice.

    Example:
        >>> lam = torch.randn(64, 32, 3, 3)
        >>> w = sample(lam, {0: torch.linspace(0, 1, 48), 1: torch.linspace(0, 1, 32)})
        >>> w.shape
        torch.Size([48, 32, 3, 3])
    """
    out = lam
    seen: set[int] = set()
    for dim, points in grids.items():
        if not -lam.ndim <= dim < lam.ndim:
            raise ValueError(f"dimension {dim} out of range for a tensor of rank {lam.ndim}")
        d = dim % lam.ndim
        if d in seen:
            raise ValueError(f"dimension {d} appears twice in grids")
        seen.add(d)
        out = _sample_dim(out, points.to(lam.device, lam.dtype), d, a)
    return out


def _sample_dim(lam: Tensor, points: Tensor, dim: int, a: float) -> Tensor:
    """``interpolation_matrix(points, n) @ lam`` along ``dim``, as a four-tap gather.

    Same values as the dense matrix product, in O(m) instead of O(m n) work per fibre: the
    virtual nodes are appended to the parameters, then each point mixes its four nodes.
    """
    n = lam.shape[dim]
    s = _node_coordinates(points, n)  # (m,)
    m = s.shape[0]
    x = lam.movedim(dim, 0)  # (n, ...)
    if n == 1:
        return x.expand(m, *x.shape[1:]).movedim(0, dim)
    flat = x.reshape(n, -1)  # (n, R)
    if n == 2:
        left, right = 2 * flat[:1] - flat[1:2], 2 * flat[1:] - flat[:1]
    else:
        left = 3 * flat[:1] - 3 * flat[1:2] + flat[2:3]
        right = 3 * flat[-1:] - 3 * flat[-2:-1] + flat[-3:-2]
    padded = torch.cat([left, flat, right])  # (n+2, R): nodes -1 .. n
    base = s.detach().floor().clamp(0, n - 2).long()  # (m,) node left of each point
    taps = torch.arange(4, device=s.device)  # nodes base-1 .. base+2 = padded rows base ..
    weight = cubic_kernel((s - base)[:, None] - (taps[None, :] - 1), a)  # (m, 4)
    rows = padded.index_select(0, (base[:, None] + taps[None, :]).reshape(-1))  # (m*4, R)
    out = torch.bmm(weight[:, None, :], rows.view(m, 4, flat.shape[1])).squeeze(1)  # (m, R)
    return out.reshape(m, *x.shape[1:]).movedim(0, dim)
