"""Plain models from an IntegralModel's discretized tensors, through `anywidth.graph.cut`.

`Exporter` keeps one `Cutter` of the source per dtype (the INN may have been cast), so the
trace and channel analysis are done once per INN. It builds the exported model of
`IntegralModel.resample` and the resized copy of the source's own modules that eval-mode
calls run (`Exporter.eager`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, fx, nn

from anywidth.graph import ChannelGroup, Cutter, keep_first

__all__ = ["Exporter", "cast_input", "float_dtype"]


class Exporter:
    """Cuts one source model to plans, with given tensors in place of the source's.

    Args:
        source: the (channel-permuted) source model; only its structure is used.
        example_input: the input ``groups`` were traced with.
        groups: the source's channel groups, fixed ones included.
    """

    def __init__(self, source: nn.Module, example_input, groups: list[ChannelGroup]) -> None:
        self.source, self.example_input, self.groups = source, example_input, list(groups)
        self.cutters: dict[torch.dtype, Cutter] = {}

    def __deepcopy__(self, memo: dict) -> Exporter:
        """A copy without `Cutter`\\ s (rebuilt on demand).

        A Cutter holds a raw fx graph, whose linked nodes exhaust Python's recursion limit
        under ``copy.deepcopy`` for deep networks (resnet56).
        """
        new = Exporter.__new__(Exporter)
        memo[id(self)] = new
        new.source = copy.deepcopy(self.source, memo)
        new.example_input = copy.deepcopy(self.example_input, memo)
        new.groups = copy.deepcopy(self.groups, memo)
        new.cutters = {}
        return new

    def cutter(self, dtype: torch.dtype) -> Cutter:
        """The `Cutter` of the source in ``dtype``, made on first use: it traces once, and
        holds the cast source and example input."""
        if dtype not in self.cutters:
            source, example = self.source, self.example_input
            if float_dtype(source) != dtype:
                source, example = copy.deepcopy(source).to(dtype), cast_input(example, dtype)
            self.cutters[dtype] = Cutter(source, example, groups=self.groups)
        return self.cutters[dtype]

    def resample(
        self, plan: Mapping[str, int], tensors: Mapping[str, Tensor], like: Tensor
    ) -> nn.Module:
        """What the `Cutter` makes of the source at ``plan`` holding ``tensors``, on the
        device of ``like`` (the model itself is passed on, not converted or wrapped)."""
        small = self.cutter(like.dtype)(
            keep_first(self.groups, plan), replace=tensors, method="resample"
        )
        return small.to(like.device)

    def eager(
        self,
        plan: Mapping[str, int],
        tensors: Mapping[str, Tensor],
        like: Tensor,
        reference: nn.Module,
    ) -> nn.Module | None:
        """A frozen, eval-mode copy of the source's own modules resized to ``plan`` and
        holding ``tensors``, if `Cutter.eager` can make one that gives ``reference``'s
        outputs on the example input; else None.

        It runs the source's own forward, without fx dispatch.
        """
        eager = self.cutter(like.dtype).eager(keep_first(self.groups, plan), replace=tensors)
        if eager is None:
            return None
        eager = eager.to(like.device).eval().requires_grad_(False)
        example = cast_input(self.example_input, like.dtype)
        inputs = example if isinstance(example, tuple) else (example,)
        inputs = tuple(t.to(like.device) if isinstance(t, Tensor) else t for t in inputs)
        with torch.no_grad():
            same = _same_outputs(eager(*inputs), reference(*inputs))
        return eager if same else None


def _same_outputs(a, b) -> bool:
    """Equal output structures whose tensors agree to float rounding."""
    left, right = [], []
    fx.node.map_aggregate(a, lambda v: left.append(v) if isinstance(v, Tensor) else None)
    fx.node.map_aggregate(b, lambda v: right.append(v) if isinstance(v, Tensor) else None)
    return len(left) == len(right) and all(
        x.shape == y.shape and torch.allclose(x, y, rtol=1e-4, atol=1e-5 * float(y.abs().max()))
        for x, y in zip(left, right, strict=True)
    )


def cast_input(example, dtype: torch.dtype):
    """``example`` (a tensor or a tuple) with its floating tensors in ``dtype``."""
    if isinstance(example, Tensor):
        return example.to(dtype) if example.is_floating_point() else example
    return tuple(cast_input(e, dtype) for e in example)


def float_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of the module's first floating tensor (the default dtype if none)."""
    for t in [*module.parameters(), *module.buffers()]:
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()
