"""Numerical ranks of layer outputs on data, per layer and per channel group.

The shared interface behind `anywidth.analysis.layer_ranks` and the rank-guided width
plans of pruning and INN (``"rank"`` allocation): a layer's output ``(B, C, *spatial)`` is
read as a matrix of ``B * prod(spatial)`` rows and ``C`` columns; its numerical rank is the
number of singular values above ``rtol * sigma_max``. Only the ``C x C`` Gram matrix is
kept (accumulated in float64 over batches), so any amount of data fits in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from anywidth.graph._types import ChannelGroup, GraphError
from anywidth.graph.groups import match_names
from anywidth.measure import forward_hooked

__all__ = [
    "DEFAULT_RTOL",
    "LayerRank",
    "gram_matrices",
    "gram_rank",
    "group_rank_ratios",
    "output_ranks",
    "rank_priority",
]

DEFAULT_RTOL = 1e-3
"""Singular values below 1e-3 of the largest (1e-6 of its energy) count as unused."""

_RANKED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class LayerRank:
    """The numerical rank of one layer's output.

    Attributes:
        name: the module's qualified name.
        channels: output channels (matrix columns).
        rank: singular values above ``rtol * sigma_max``.
        rows: matrix rows seen (batch times spatial positions).
    """

    name: str
    channels: int
    rank: int
    rows: int

    @property
    def ratio(self) -> float:
        """``rank / channels``: 1 when every output channel direction is used."""
        return self.rank / self.channels

    @property
    def row_limited(self) -> bool:
        """Fewer rows than channels: the data, not the layer, caps the rank (use more)."""
        return self.rows < self.channels


def gram_rank(gram: torch.Tensor, rtol: float = DEFAULT_RTOL) -> int:
    """Numerical rank of a matrix ``Y`` from its Gram matrix ``G = Y^T Y``.

    The singular values of ``Y`` are the square roots of ``G``'s eigenvalues; those above
    ``rtol * sigma_max`` count. float64 Gram matrices resolve ``rtol`` down to about 1e-7.
    """
    eig = torch.linalg.eigvalsh(gram.double()).clamp_min(0.0)  # ascending
    top = float(eig[-1])
    if top <= 0.0:
        return 0
    return int((eig > (rtol**2) * top).sum())


def _default_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, _RANKED)]


RowsFn = Callable[[str, nn.Module, tuple, object], torch.Tensor]


def _output_rows(name: str, _module: nn.Module, _inputs: tuple, out) -> torch.Tensor:
    """A layer's output ``(B, C, *spatial)`` as ``(rows, C)``."""
    if not isinstance(out, torch.Tensor) or out.dim() < 2:
        raise GraphError(
            f"layer {name!r} returns {type(out).__name__} "
            f"{tuple(getattr(out, 'shape', ()))}; ranks need a (batch, channels, ...) "
            "tensor: pick layers with layers=..."
        )
    return out.detach().movedim(1, -1).reshape(-1, out.shape[1])


def gram_matrices(
    model: nn.Module,
    data,
    layers: Mapping[str, nn.Module],
    max_batches: int,
    rows: RowsFn = _output_rows,
) -> dict[str, tuple[torch.Tensor, int]]:
    """``{name: (Σ YᵀY float64, rows seen)}`` over the first ``max_batches`` batches of
    ``data`` through ``model``, Y = ``rows(name, module, inputs, output)`` of each of its
    ``layers`` (by default the output, ``(rows, channels)``); eval mode, ``no_grad``.

    Raises:
        ValueError: ``data`` gives no batch.
    """
    grams: dict[str, list] = {}

    def hook(name):
        def record(module, inputs, out):
            y = rows(name, module, inputs, out).double()
            g = grams.setdefault(name, [torch.zeros(y.shape[1], y.shape[1]).double(), 0])
            g[0] += y.T @ y
            g[1] += y.shape[0]

        return record

    forward_hooked(model, data, [(m, hook(name)) for name, m in layers.items()], max_batches)
    return {n: (grams[n][0], grams[n][1]) for n in layers if n in grams}


def output_ranks(
    model: nn.Module,
    data,
    layers: Iterable[str] | None = None,
    *,
    rtol: float = DEFAULT_RTOL,
    max_batches: int = 4,
) -> dict[str, LayerRank]:
    """The numerical rank of each layer's output; see `anywidth.analysis.layer_ranks`."""
    if not 0 < rtol < 1:
        raise ValueError(f"rtol={rtol} must be in (0, 1); {DEFAULT_RTOL} is the default")
    if max_batches < 1:
        raise ValueError(f"max_batches={max_batches} must be >= 1")
    every = [n for n, _ in model.named_modules() if n]
    if layers is None:
        names = _default_names(model)
    else:
        chosen = match_names(list(layers), every, "layers", "module of the model")
        names = [n for n in every if n in chosen]
    if not names:
        raise GraphError(
            f"{type(model).__name__} has no Conv/Linear layer to rank; name layers with layers="
        )
    modules = dict(model.named_modules())
    grams = gram_matrices(model, data, {n: modules[n] for n in names}, max_batches)
    return {n: LayerRank(n, g.shape[0], gram_rank(g, rtol), rows) for n, (g, rows) in grams.items()}


def _producers(group: ChannelGroup, modules: Mapping[str, nn.Module]) -> list[tuple[str, slice]]:
    """``(module, output channel slice)`` of every Conv/Linear whose outputs are the group."""
    out = []
    for m in group.members:
        owner, _, leaf = m.name.rpartition(".")
        if leaf == "weight" and m.dim == 0 and isinstance(modules.get(owner), _RANKED):
            out.append((owner, slice(m.offset, m.offset + group.size * m.block)))
    return out


def group_rank_ratios(
    model: nn.Module,
    data,
    groups: Iterable[ChannelGroup],
    *,
    rtol: float = DEFAULT_RTOL,
    max_batches: int = 4,
) -> dict[str, float]:
    """``{resizable group: rank ratio of its outputs}``, for rank-guided width plans.

    A group's ratio is the largest over the Conv/Linear layers producing its channels (a
    residual group is deficient only if every producer is); a group without such a
    producer gets 1.0.
    """
    modules = dict(model.named_modules())
    free = [g for g in groups if not g.fixed]
    producers = {g.name: _producers(g, modules) for g in free}
    names = sorted({n for p in producers.values() for n, _ in p})
    layers = {n: modules[n] for n in names}
    grams = gram_matrices(model, data, layers, max_batches) if names else {}
    ratios = {}
    for g in free:
        best = 0.0
        for name, span in producers[g.name]:
            sub = grams[name][0][span, span]
            best = max(best, gram_rank(sub, rtol) / sub.shape[0])
        ratios[g.name] = best if producers[g.name] else 1.0
    return ratios


def rank_priority(
    groups: Iterable[ChannelGroup],
    ratios: Mapping[str, float],
    scores: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Priorities for `plan_for_budget` that keep channels in proportion to output rank.

    The channel in position ``k`` of its group (by descending ``scores``; by index without
    scores) gets ``1 - k / (ratio * size)``: under any budget a group keeps about
    ``t * ratio * size`` channels for one common ``t``, so rank-deficient groups give up
    more. With every ratio 1 this is the uniform (same fraction everywhere) allocation.
    """
    out = {}
    for g in groups:
        if g.fixed:
            continue
        effective = max(ratios.get(g.name, 1.0) * g.size, 1.0)
        position = torch.arange(g.size, dtype=torch.float64)
        if scores is not None:
            order = torch.argsort(scores[g.name].double(), descending=True, stable=True)
            position = torch.empty_like(position)
            position[order] = torch.arange(g.size, dtype=torch.float64)
        out[g.name] = 1.0 - position / effective
    return out
