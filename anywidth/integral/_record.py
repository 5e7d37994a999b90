"""The record step of an `IntegralModel`: how `load_model` rebuilds it without re-converting.

One JSON-friendly dict of kind ``"integral"``: the conversion config, the example input
(shapes and dtypes; integer inputs with their values), λ's dtype, every group's name, size
and fixed flag, the nodes per group, the current sizes and the channel permutation applied
to the source. `anywidth.integral.io` replays it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from anywidth.integral.model import IntegralModel

__all__ = ["FORMAT", "KIND", "example_of", "integral_step"]

KIND = "integral"
FORMAT = 1

# Integer inputs (token ids, attention masks) are stored with their values: a model traced
# by torch.export may take value-dependent paths (e.g. a mask with padding), and the record
# must rebuild the very graph the INN was converted with. Images are stored as a shape.
_MAX_STORED_VALUES = 1 << 16


def integral_step(inn: IntegralModel) -> dict[str, Any]:
    """The ``"integral"`` record step of ``inn`` as it is now (its current sizes included)."""
    example = inn.example_input
    inputs = [example] if isinstance(example, torch.Tensor) else list(example)
    return {
        "kind": KIND,
        "method": KIND,
        "format": FORMAT,
        "config": inn.config.to_dict(),
        "inputs": [_input_record(t) for t in inputs],
        "dtype": str(inn.dtype).removeprefix("torch."),
        "groups": [{"name": g.name, "size": g.size, "fixed": g.fixed} for g in inn.groups],
        "nodes": dict(inn.nodes),
        "sizes": inn.sizes,
        "permutation": inn.permutation,
    }


def _input_record(t: torch.Tensor) -> dict[str, Any]:
    out: dict[str, Any] = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    if not t.is_floating_point() and t.numel() <= _MAX_STORED_VALUES:
        out["values"] = t.flatten().tolist()
    return out


def example_of(step: dict[str, Any]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """The example input of a step: one tensor, or a tuple for multi-input models.

    Files written before multi-input records hold ``input_shape``/``input_dtype`` only."""
    inputs = step.get("inputs") or [{"shape": step["input_shape"], "dtype": step["input_dtype"]}]
    tensors = []
    for item in inputs:
        dtype = getattr(torch, item["dtype"])
        if "values" in item:
            tensors.append(torch.tensor(item["values"], dtype=dtype).reshape(item["shape"]))
        else:
            tensors.append(torch.zeros(item["shape"], dtype=dtype))
    return tensors[0] if len(tensors) == 1 else tuple(tensors)
