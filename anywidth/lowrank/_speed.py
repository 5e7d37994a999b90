"""Low rank that pays: per layer, the dense layer, the 1-slice or the k-slice factors by
measured time as well as error.

After the allocation (`Allocator`), every factored layer is timed on the setting's
runtime, batch and threads — dense, as chosen, and (for a k-slice choice) as one slice at
the largest rank of the same size — through the per-layer latency table (`LayerTimes`:
each conv of a factored layer is an entry, so the identical layers of a ResNet are timed
once). Of the factored forms measured faster than the dense layer, the one with the
smallest error is kept; when none is faster the layer stays dense. The model can then miss
a MAC or parameter budget (the report says so), but it is never slower than dense layer
by layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from anywidth.latency import LatencyConfig
from anywidth.latency_table import LayerTimes, timed_layers
from anywidth.lowrank._factors import LayerInfo, factored_module
from anywidth.lowrank.allocate import Allocator, Choice

__all__ = ["faster_than_dense"]


def _one_slice(allocator: Allocator, index: int, choice: Choice) -> Choice | None:
    """The 1-slice factorisation of the largest rank no larger than ``choice``."""
    base = allocator.size(index, Choice(1, 0))
    unit = allocator.size(index, Choice(1, 1)) - base
    j = min((allocator.size(index, choice) - base) // unit, allocator.layers[index].max_rank(1))
    return Choice(1, j) if j >= 1 else None


def _factored_ms(table: LayerTimes, info: LayerInfo, choice: Choice, shape: tuple) -> float:
    module = factored_module(info.module, choice.k, choice.j)
    return table.layers_ms(module, torch.zeros(shape))


def faster_than_dense(
    model: torch.nn.Module,
    example_input,
    infos: Sequence[LayerInfo],
    choices: Sequence[Choice],
    allocator: Allocator,
    setting: LatencyConfig,
    folder: str | None = None,
) -> tuple[list[Choice], list[str]]:
    """The allocation with each factored layer re-chosen by measured time and error.

    Returns:
        ``(choices, names of the layers kept dense because factoring was slower)``.
    """
    table = LayerTimes.shared(setting, folder)
    shapes = {name: shape for name, _, shape in timed_layers(model, example_input)}
    out, kept_dense = [], []
    for i, (info, choice) in enumerate(zip(infos, choices, strict=True)):
        if choice.dense:
            out.append(choice)
            continue
        shape = shapes[info.name]
        dense_ms = table.layer_ms(info.module, shape)
        options = [choice]
        if choice.k > 1 and (one := _one_slice(allocator, i, choice)) is not None:
            options.append(one)
        faster = [o for o in options if _factored_ms(table, info, o, shape) < dense_ms]
        if faster:
            out.append(min(faster, key=lambda o: allocator.error(i, o)))
        else:
            out.append(Choice())
            kept_dense.append(info.name)
    return out, kept_dense
