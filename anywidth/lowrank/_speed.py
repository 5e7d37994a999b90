"""Low rank that pays: per layer, the dense layer, the 1-slice or the k-slice factors by
measured time as well as error.

After the allocation (`Allocator`), every factored layer is timed on the setting's
runtime, batch and threads — dense, as chosen, and (for a k-slice choice) as one slice at
the largest rank of the same size — through the per-layer latency table (`LayerTimes`:
each conv of a factored layer is an entry, so the identical layers of a ResNet are timed
once). Of the factored forms measured faster than the dense layer, the one with the
smallest error is kept; when none is faster the layer stays dense. The model can then miss
a MAC or parameter budget (the report says so), but it is never slower than dense layer
by layer. `LayerClock` also predicts a whole allocation's latency ratio, which a latency
budget is searched on (`anywidth.lowrank._latency`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from anywidth.latency import LatencyConfig
from anywidth.latency_table import LayerTimes, timed_layers
from anywidth.lowrank._factors import LayerInfo, factored_module
from anywidth.lowrank.allocate import Allocator, Choice

__all__ = ["LayerClock", "faster_than_dense"]


class LayerClock:
    """Table times of a model's factorable layers, dense and factored, and of the model.

    Args:
        model: the dense model.
        example_input: its example input (each layer's input shapes are recorded on it).
        infos: the factorable layers.
        setting: runtime, batch and threads of the table.
        folder: where the table is kept (None: in memory only).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        example_input,
        infos: Sequence[LayerInfo],
        setting: LatencyConfig,
        folder: str | None = None,
    ) -> None:
        self.table = LayerTimes.shared(setting, folder)
        calls = timed_layers(model, example_input)
        self.infos = list(infos)
        self.shapes = {i.name: [s for name, _, s in calls if name == i.name] for i in self.infos}
        self.full_ms = sum(self.table.layer_ms(m, shape) for _, m, shape in calls)
        self.dense_ms = [self._ms(info.module, info.name) for info in self.infos]
        self._factored: dict[tuple[int, int, int], float] = {}

    def _ms(self, module: torch.nn.Module, name: str) -> float:
        """The summed table time of ``module``'s conv and linear layers over ``name``'s calls."""
        return sum(self.table.layers_ms(module, torch.zeros(s)) for s in self.shapes[name])

    def ms(self, index: int, choice: Choice) -> float:
        """Layer ``index``'s time in the form ``choice``."""
        if choice.dense:
            return self.dense_ms[index]
        key = (index, choice.k, choice.j)
        if key not in self._factored:
            info = self.infos[index]
            module = factored_module(info.module, choice.k, choice.j)
            self._factored[key] = self._ms(module, info.name)
        return self._factored[key]

    def ratio(self, choices: Sequence[Choice]) -> float:
        """The predicted latency of the model with ``choices`` over the dense model's: the
        summed table time of its conv and linear layers over the dense model's (the rest of
        the model, normalisation, activations and framework, is left out; the measurement
        that follows corrects for it)."""
        changed = sum(self.ms(i, c) - self.dense_ms[i] for i, c in enumerate(choices))
        return (self.full_ms + changed) / self.full_ms


def _one_slice(allocator: Allocator, index: int, choice: Choice) -> Choice | None:
    """The 1-slice factorisation of the largest admissible rank no larger than ``choice``."""
    base = allocator.size(index, Choice(1, 0))
    unit = allocator.size(index, Choice(1, 1)) - base
    j = min((allocator.size(index, choice) - base) // unit, allocator.layers[index].max_rank(1))
    j = allocator.round_down(1, j)
    return Choice(1, j) if j >= 1 else None


def faster_than_dense(
    clock: LayerClock, allocator: Allocator, choices: Sequence[Choice]
) -> tuple[list[Choice], list[str]]:
    """The allocation with each factored layer re-chosen by measured time and error.

    Returns:
        ``(choices, names of the layers kept dense because factoring was slower)``.
    """
    out, kept_dense = [], []
    for i, choice in enumerate(choices):
        if choice.dense:
            out.append(choice)
            continue
        options = [choice]
        if choice.k > 1 and (one := _one_slice(allocator, i, choice)) is not None:
            options.append(one)
        faster = [o for o in options if clock.ms(i, o) < clock.dense_ms[i]]
        if faster:
            out.append(min(faster, key=lambda o: allocator.error(i, o)))
        else:
            out.append(Choice())
            kept_dense.append(clock.infos[i].name)
    return out, kept_dense
