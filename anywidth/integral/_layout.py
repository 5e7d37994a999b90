"""Which dimensions of which tensors are continuous, and how λ maps to discrete tensors.

A source tensor (parameter or buffer) has one `DimLayout` per dimension that holds a
resizable channel group. The dimension is cut into `Segment`s: the runs of channels of
each group that lives there (several for a concatenation, or for the tied runs of a grouped
conv) and the runs no resizable group covers (fixed groups, the input's channels, the
logits), which stay plain. The λ tensor of the source tensor has the same layout with each
group segment holding ``nodes * block`` entries instead of ``size * block``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from anywidth.graph import ChannelGroup, GraphError
from anywidth.integral.grid import Grid, UniformGrid
from anywidth.integral.interpolation import interpolation_matrix, sample
from anywidth.integral.partition import uniform_points
from anywidth.integral.quadrature import quadrature_weights

__all__ = [
    "DENSE_MAX_NODES",
    "DimLayout",
    "GroupSampler",
    "Segment",
    "TensorLayout",
    "build_layouts",
    "fit_lam",
    "group_samplers",
    "sample_tensor",
    "tied_aliases",
]

DENSE_MAX_NODES = 256
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class Segment:
    """A run of a dimension: ``length`` entries from ``start`` in the discrete tensor.

    ``group`` is None for a plain run; otherwise the run holds the group's channels, each
    owning ``block`` consecutive entries, and λ stores ``nodes * block`` entries for it.
    """

    start: int
    length: int
    group: str | None = None
    block: int = 1
    nodes: int = 0

    @property
    def lam_length(self) -> int:
        return self.length if self.group is None else self.nodes * self.block


@dataclass(frozen=True)
class DimLayout:
    """One continuous dimension; ``integrated`` dims get quadrature weights."""

    dim: int
    integrated: bool
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class TensorLayout:
    """How one source tensor is stored as λ and sampled back."""

    name: str
    is_param: bool
    shape: tuple[int, ...]
    dims: tuple[DimLayout, ...]
    var_eps: float | None = None  # BatchNorm running_var: sampled values are floored

    def lam_shape(self) -> tuple[int, ...]:
        shape = list(self.shape)
        for d in self.dims:
            shape[d.dim] = sum(s.lam_length for s in d.segments)
        return tuple(shape)


def _integrated(model: nn.Module, name: str, dim: int) -> bool:
    """Input-channel dims of conv/linear weights are integrated; everything else is sampled."""
    owner, _, attr = name.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    if attr != "weight":
        return False
    if isinstance(module, _TRANSPOSED):
        return dim == 0
    return isinstance(module, (*_CONV, nn.Linear)) and dim == 1


def _var_eps(model: nn.Module, name: str) -> float | None:
    owner, _, attr = name.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    if attr == "running_var" and isinstance(getattr(module, "eps", None), float):
        return module.eps
    return None


def build_layouts(
    model: nn.Module,
    names: Iterable[str],
    groups: Iterable[ChannelGroup],
    nodes: Mapping[str, int],
) -> dict[str, TensorLayout]:
    """The layout of every named tensor of ``model`` given its resizable groups' nodes."""
    runs: dict[tuple[str, int], list[Segment]] = {}
    for g in groups:
        if g.fixed:
            continue
        for m in g.members:
            seg = Segment(m.offset, g.size * m.block, g.name, m.block, nodes[g.name])
            runs.setdefault((m.name, m.dim), []).append(seg)
    params = dict(model.named_parameters(remove_duplicate=False))  # tied ones too
    buffers = dict(model.named_buffers(remove_duplicate=False))
    layouts = {}
    for name in names:
        tensor = params[name] if name in params else buffers[name]
        dims = tuple(
            DimLayout(dim, _integrated(model, name, dim), _fill(runs[(name, dim)], length, name))
            for dim, length in enumerate(tensor.shape)
            if (name, dim) in runs
        )
        var_eps = _var_eps(model, name) if dims else None
        layouts[name] = TensorLayout(name, name in params, tuple(tensor.shape), dims, var_eps)
    return layouts


def tied_aliases(
    model: nn.Module,
    groups: Iterable[ChannelGroup],
    nodes: Mapping[str, int],
    names: Collection[str] | None = None,
) -> dict[str, str]:
    """``{alias: first name}`` for every tensor of ``model`` held under several names
    (of ``names`` only, when given: those a traced skeleton holds).

    A tied tensor is one tensor, so it gets one λ; that needs every one of its names to
    have the same layout (the same resizable groups on the same dimensions, integrated
    alike).

    Raises:
        GraphError: a tied tensor whose names lie in different channel groups; the message
            names both and says what to do.
    """
    named = itertools.chain(
        model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False)
    )
    by_tensor: dict[int, list[str]] = {}
    for name, tensor in named:
        if names is None or name in names:
            by_tensor.setdefault(id(tensor), []).append(name)
    shared = [found for found in by_tensor.values() if len(found) > 1]
    if not shared:
        return {}
    layouts = build_layouts(model, [n for found in shared for n in found], list(groups), nodes)
    aliases = {}
    for found in shared:
        # A module held by two parents (CoaT's shared position encoding) is read under one
        # of its names only: the names with no channel group follow the one that has them.
        read = [n for n in found if layouts[n].dims] or found[:1]
        canonical = read[0]
        for alias in read[1:]:
            _check_same_layout(layouts, canonical, alias)
        aliases.update({alias: canonical for alias in found if alias != canonical})
    return aliases


def _check_same_layout(layouts: Mapping[str, TensorLayout], canonical: str, alias: str) -> None:
    if dataclasses.replace(layouts[alias], name=canonical) == layouts[canonical]:
        return
    mine, theirs = _groups_of(layouts[canonical]), _groups_of(layouts[alias])
    if mine == theirs:
        why = f"its layers integrate it along different dimensions (groups {mine})"
    else:
        why = (
            f"its channels belong to channel groups {mine} as {canonical!r} and "
            f"{theirs} as {alias!r}, which can take different widths"
        )
    raise GraphError(
        f"{canonical!r} and {alias!r} are one tensor (tied weights), but {why}, so "
        "one weight function cannot serve both. Untie them (give "
        f"{alias!r} its own copy: nn.Parameter(t.detach().clone())) or keep these "
        f"groups fixed: IntegralConfig(fixed={sorted({*mine, *theirs})})"
    )


def _groups_of(layout: TensorLayout) -> list[str]:
    return sorted({s.group for d in layout.dims for s in d.segments if s.group is not None})


def _fill(segments: list[Segment], length: int, name: str) -> tuple[Segment, ...]:
    """Sort the group runs of a dimension and add plain runs for the gaps."""
    out, pos = [], 0
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.start < pos:
            raise GraphError(f"anywidth internal error: overlapping channel groups on {name!r}")
        if seg.start > pos:
            out.append(Segment(pos, seg.start - pos))
        out.append(seg)
        pos = seg.start + seg.length
    if pos < length:
        out.append(Segment(pos, length - pos))
    return tuple(out)


def _map_segments(x: Tensor, d: DimLayout, sizes: list[int], fn) -> Tensor:
    """Apply ``fn(chunk, segment)`` to every group segment of dimension ``d``; concatenate."""
    pieces = []
    for seg, chunk in zip(d.segments, x.split(sizes, dim=d.dim), strict=True):
        pieces.append(chunk if seg.group is None else fn(chunk, seg))
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, d.dim)


def _along(q: Tensor, ndim: int, dim: int) -> Tensor:
    """``q`` shaped to broadcast along ``dim`` of a tensor of rank ``ndim``."""
    shape = [1] * ndim
    shape[dim] = q.numel()
    return q.reshape(shape)


@dataclass
class GroupSampler:
    """How one group's dimension is sampled at one width, shared by all its tensors.

    ``points`` (m,) are the sample coordinates, None when they are exactly the nodes
    (sampling is then skipped). Groups of up to `DENSE_MAX_NODES` nodes sample with one
    dense ``(m, nodes)`` interpolation matrix, built once per discretization (a single
    matmul per tensor); larger groups use the four-tap gather of
    `anywidth.integral.interpolation.sample`, whose cost is linear in the width.
    ``weights`` (m,) are the quadrature weights of integrated dimensions.
    """

    points: Tensor | None
    weights: Tensor
    matrix: Tensor | None = None

    @classmethod
    def build(cls, points: Tensor, nodes: int, weights: Tensor, exact: bool) -> GroupSampler:
        if exact:
            return cls(None, weights)
        matrix = interpolation_matrix(points, nodes) if nodes <= DENSE_MAX_NODES else None
        return cls(points, weights, matrix)

    def __call__(self, c: Tensor, dim: int, detach: bool) -> Tensor:
        """Sample ``c`` along ``dim`` (nodes → m); ``detach``: no gradient to the grid."""
        if self.points is None:
            return c
        if self.matrix is None:
            points = self.points.detach() if detach else self.points
            return sample(c, {dim: points})
        matrix = self.matrix.detach() if detach else self.matrix  # (m, nodes)
        return (c.movedim(dim, -1) @ matrix.T).movedim(-1, dim)


def group_samplers(
    grids: Mapping[str, Grid],
    plan: Mapping[str, int],
    nodes: Mapping[str, int],
    rule: str,
    like: Tensor,
) -> dict[str, GroupSampler]:
    """Per resizable group: its points at the planned width, interpolation and quadrature.

    Args:
        grids: ``{group: Grid}`` for every resizable group.
        plan: ``{group: size}`` for the same groups.
        nodes: ``{group: number of λ nodes}``.
        rule: the quadrature rule.
        like: a tensor of the dtype and device to sample in.
    """
    out = {}
    for name, grid in grids.items():
        size = plan[name]
        points = grid.points(size, dtype=like.dtype, device=like.device)  # (size,)
        weights = quadrature_weights(points, rule)  # (size,)
        exact = isinstance(grid, UniformGrid) and size == nodes[name]
        out[name] = GroupSampler.build(points, nodes[name], weights, exact)
    return out


def sample_tensor(
    lam: Tensor, layout: TensorLayout, samplers: Mapping[str, GroupSampler]
) -> Tensor:
    """The discrete tensor of ``layout`` at the given grids.

    Args:
        lam: the stored λ, shape ``layout.lam_shape()``.
        layout: the tensor's layout.
        samplers: ``{group: GroupSampler}`` for every resizable group.
    """
    out = lam
    for d in layout.dims:
        if not d.integrated and all(
            s.group is None or samplers[s.group].points is None for s in d.segments
        ):
            continue  # every run is read at its nodes: the dimension is λ as stored

        def one(chunk: Tensor, seg: Segment, d: DimLayout = d) -> Tensor:
            c = chunk.unflatten(d.dim, (seg.nodes, seg.block))  # (..., nodes, block, ...)
            sampler = samplers[seg.group]
            # Buffers (BatchNorm statistics) carry no gradient, not even to the grid.
            c = sampler(c, d.dim, detach=not layout.is_param)  # (..., m, block, ...)
            if d.integrated:
                c = c * _along(sampler.weights, c.ndim, d.dim)
            return c.flatten(d.dim, d.dim + 1)

        out = _map_segments(out, d, [s.lam_length for s in d.segments], one)
    if layout.var_eps is not None:
        # Cubic interpolation can overshoot below zero between small variances; the floor
        # never exceeds the smallest stored value, so values at the nodes are unchanged.
        floor = torch.clamp(torch.clamp(lam.detach().min(), max=layout.var_eps), min=0.0)
        out = torch.maximum(out, floor)
    return in_default_layout(out)


def in_default_layout(t: Tensor) -> Tensor:
    """``t`` with exactly the strides of a new tensor of its shape (a copy only if needed).

    Sampling along a dimension leaves it innermost in memory (``movedim`` after a matmul),
    so a conv weight would come out channels-last, or with strides that only look
    channels-last: a ``(8, 4, 1, 1)`` weight with strides ``(4, 1, 4, 4)`` is contiguous,
    yet PyTorch reads it as channels-last and runs the convolution in that layout. On CPUs
    without AVX-512, oneDNN's weight gradient of a small strided 1x1 convolution in that
    layout corrupts the heap on one thread (docs/known_issues.md), so every discrete tensor
    leaves here in the layout of the source model's own weights. ``Tensor.contiguous()`` is
    not enough: it keeps the strides of size-1 dimensions.
    """
    if t.stride() == _default_strides(t.shape):
        return t
    return t.clone(memory_format=torch.contiguous_format)


def _default_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def fit_lam(
    tensor: Tensor,
    layout: TensorLayout,
    samplers: Mapping[str, GroupSampler],
    method: str,
    *,
    refit_points: bool = False,
) -> Tensor:
    """λ whose samples at the full-width grids reproduce ``tensor`` (exactly when nodes = size).

    Integrated dimensions are first divided by the full-width quadrature weights. A group
    with fewer nodes than channels is fitted along its dimension by least squares
    (``"lstsq"``: the pseudo-inverse of its interpolation matrix) or by reading the cubic
    interpolant of the channels at the node coordinates (``"sample"``). Otherwise the
    channels are taken to sit at the nodes (true for every grid at conversion), unless
    ``refit_points``: then every group whose full-width points are not its nodes (a
    trained grid) is fitted by least squares at those points.
    """
    out = tensor.detach()
    for d in layout.dims:

        def one(chunk: Tensor, seg: Segment, d: DimLayout = d) -> Tensor:
            size = seg.length // seg.block
            sampler = samplers[seg.group]
            c = chunk.unflatten(d.dim, (size, seg.block))  # (..., size, block, ...)
            if d.integrated:
                c = c / _along(sampler.weights, c.ndim, d.dim)
            if refit_points and sampler.points is not None:
                c = _fit_dim(c, d.dim, sampler.points, seg.nodes, "lstsq")
            elif seg.nodes != size:
                c = _fit_dim(c, d.dim, sampler.points, seg.nodes, method)
            return c.flatten(d.dim, d.dim + 1)

        out = _map_segments(out, d, [s.length for s in d.segments], one)
    return in_default_layout(out)


def _fit_dim(c: Tensor, dim: int, points: Tensor, nodes: int, method: str) -> Tensor:
    if method == "sample":
        return sample(c, {dim: uniform_points(nodes, dtype=c.dtype, device=c.device)})
    matrix = interpolation_matrix(points.detach().double(), nodes)  # (size, nodes)
    solve = torch.linalg.pinv(matrix).to(c.dtype)  # (nodes, size)
    moved = c.movedim(dim, -1)  # (..., size)
    return (moved @ solve.T).movedim(-1, dim)  # (..., nodes) back in place
