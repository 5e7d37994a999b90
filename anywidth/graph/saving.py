"""Save and reload models that `cut` made smaller.

A cut model no longer matches a fresh build of its zoo model, so its checkpoint records
the widths of every cut group and the input shape used to trace it. `load_model` sees that
record (the ``"widths"`` key of the checkpoint's ``extra``), builds the zoo model, cuts it
to the same widths, and then loads the weights strictly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anywidth.graph.cut import cut
from anywidth.graph.groups import channel_groups, keep_first
from anywidth.train.checkpoint import register_structure_hook, save_checkpoint

__all__ = ["save_cut_model", "widths_record"]

KEY = "widths"


def widths_record(sizes: Mapping[str, int], input_shape: Sequence[int]) -> dict[str, Any]:
    """The ``extra["widths"]`` record that lets `load_model` rebuild a cut model."""
    return {"sizes": {k: int(v) for k, v in sizes.items()}, "input_shape": list(input_shape)}


def save_cut_model(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str,
    model_kwargs: Mapping[str, Any],
    sizes: Mapping[str, int],
    input_shape: Sequence[int],
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a cut model as a checkpoint that `anywidth.train.load_model` can rebuild.

    Args:
        path: the ``.safetensors`` file to write.
        model: the smaller model returned by `cut` (or by a method that ends in `cut`).
        model_name: the zoo name of the model it was cut from.
        model_kwargs: the ``create_model`` options of that model.
        sizes: ``{group name: new size}`` of the groups that were cut.
        input_shape: the example input's shape used to trace it (batch size 1 is fine).
        metrics: recorded as they are (e.g. accuracy after pruning).
        extra: further records kept beside the widths.

    Example:
        >>> save_cut_model("small.safetensors", small, model_name="resnet20",
        ...                model_kwargs={"num_classes": 10}, sizes=report.changed_sizes,
        ...                input_shape=(1, 3, 32, 32))
    """
    record = dict(extra or {})
    record[KEY] = widths_record(sizes, input_shape)
    return save_checkpoint(
        path,
        model,
        model_name=model_name,
        model_kwargs=dict(model_kwargs),
        metrics=dict(metrics or {}),
        extra=record,
    )


def _rebuild(model: nn.Module, meta: dict[str, Any], state: Mapping[str, torch.Tensor]):
    record = meta["extra"][KEY]
    example = torch.zeros(record["input_shape"])
    groups = channel_groups(model.eval(), example)
    return cut(model, example, keep_first(groups, record["sizes"]), groups=groups)


register_structure_hook(KEY, _rebuild)
