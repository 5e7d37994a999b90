"""`layer_ranks`: where a trained network under-uses its width, from its outputs' ranks."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from anywidth.graph.ranks import DEFAULT_RTOL, LayerRank, output_ranks

__all__ = ["DEFAULT_RTOL", "LayerRank", "layer_ranks"]


def layer_ranks(
    model: nn.Module,
    data,
    layers: Iterable[str] | None = None,
    *,
    rtol: float = DEFAULT_RTOL,
    max_batches: int = 4,
) -> dict[str, LayerRank]:
    """The numerical rank and rank ratio of every layer's output on real data.

    A layer's output ``(B, C, *spatial)`` is read as a matrix with ``B * prod(spatial)``
    rows (conv outputs flattened over batch and space) and ``C`` columns. Its rank is the
    number of singular values above ``rtol * sigma_max`` (default ``1e-3``: a direction
    carrying less than a millionth of the largest one's energy counts as unused). A ratio
    well below 1 means the layer's outputs span fewer directions than it has channels.
    The model runs in eval mode under ``no_grad``; it is not changed.

    Args:
        model: the network.
        data: an input tensor, or an iterable of input tensors or ``(input, target)``
            batches (e.g. a DataLoader).
        layers: module names or globs to rank (e.g. ``["layer3.*"]``); default every
            Conv1d/2d/3d and Linear. A chosen module must return a tensor whose dim 1 is
            its channels.
        rtol: relative singular-value threshold in (0, 1); float64 Gram matrices resolve
            it down to about 1e-7.
        max_batches: batches of ``data`` used.

    Returns:
        ``{module name: LayerRank}`` in the model's module order (``.rank``, ``.channels``,
        ``.ratio``, ``.rows``; ``.row_limited`` when fewer rows than channels cap the rank).

    Raises:
        PlanError: a ``layers`` pattern matching no module (close names suggested).
        GraphError: a chosen module returns no ``(batch, channels, ...)`` tensor.
        ValueError: a bad ``rtol`` or ``max_batches``, or empty ``data``.

    Example:
        >>> ranks = layer_ranks(model, loaders.train)
        >>> [(n, r.rank, r.channels) for n, r in ranks.items() if r.ratio < 0.9]
    """
    return output_ranks(model, data, layers, rtol=rtol, max_batches=max_batches)
