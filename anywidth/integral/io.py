"""Save and load an `IntegralModel` (safetensors + JSON, never pickle), no re-conversion.

The file is an ordinary anywidth checkpoint (`anywidth.train.save_checkpoint`): the
tensors ``model.lam.*`` (λ) and ``model.grids.*`` (trainable partitions), and under
``extra["integral"]`` a JSON record of the conversion: the config, the example input's
shape and dtype, every group's name, size and fixed flag, the nodes per group, the current
sizes and the channel permutation applied to the source. Loading rebuilds the zoo model
from the checkpoint's ``model`` record (or takes a freshly built model), re-derives its
channel groups, checks them against the record, skips the channel ordering and restores
λ and the partitions exactly. The source's own weights are never needed again: every
tensor of the INN comes from the file.

Importing this module registers the ``"integral"`` structure hook, so
`anywidth.train.load_model` returns an `IntegralModel` for these files too.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anywidth.graph import analyze_channels, fix_unreadable
from anywidth.integral.config import IntegralConfig
from anywidth.integral.model import IntegralModel
from anywidth.models import create_model
from anywidth.train.checkpoint import (
    CheckpointError,
    read_checkpoint,
    save_checkpoint,
)

__all__ = ["KEY", "load_integral", "rebuild_integral", "save_integral"]

KEY = "integral"
_FORMAT = 1


def save_integral(
    inn: IntegralModel, path: str | Path, *, metrics: Mapping[str, Any] | None = None
) -> Path:
    """Write ``inn`` to one ``.safetensors`` file that `load_integral` reads back exactly.

    Args:
        inn: the integral model (its ``model_name``/``model_kwargs`` are recorded; without
            a name, `load_integral` needs the rebuilt model passed in).
        path: the file to write; parent folders are created.
        metrics: recorded as they are.

    Returns:
        The path written.

    Example:
        >>> inn = to_integral(anywidth.create_model("resnet20"), x)  # records its zoo name
        >>> save_integral(inn, "runs/resnet20.inn.safetensors")
    """
    example = inn.example_input
    inputs = [example] if isinstance(example, torch.Tensor) else list(example)
    record = {
        "format": _FORMAT,
        "config": inn.config.to_dict(),
        "input_shape": list(inputs[0].shape),
        "input_dtype": str(inputs[0].dtype).removeprefix("torch."),
        "inputs": [_input_record(t) for t in inputs],
        "dtype": str(_lam_dtype(inn)).removeprefix("torch."),
        "groups": [{"name": g.name, "size": g.size, "fixed": g.fixed} for g in inn.groups],
        "nodes": dict(inn.nodes),
        "sizes": inn.sizes,
        "permutation": inn.permutation,
    }
    return save_checkpoint(
        path,
        inn,
        model_name=inn.model_name,
        model_kwargs=inn.model_kwargs,
        metrics=dict(metrics or {}),
        extra={KEY: record},
        reader="read it back with load_integral(path, model=<a freshly built source model>)",
    )


def load_integral(path: str | Path, model: nn.Module | None = None) -> IntegralModel:
    """Read an `IntegralModel` written by `save_integral`.

    Args:
        path: the file.
        model: a freshly built model of the source architecture; needed only when the file
            records no zoo name (its weights are not used).

    Returns:
        The `IntegralModel` on CPU, in eval mode, at the sizes it was saved with.

    Raises:
        CheckpointError: the file is unreadable, holds no integral record, its zoo model
            cannot be rebuilt, or the rebuilt model's groups differ from the record.

    Example:
        >>> inn = load_integral("runs/resnet20.inn.safetensors")
        >>> small = inn.resample(target_macs=0.5)
    """
    checkpoint = read_checkpoint(path)
    meta = checkpoint.meta
    if KEY not in (meta.get("extra") or {}):
        raise CheckpointError(
            f"{checkpoint.path}: not an integral model (no {KEY!r} record); load plain "
            "checkpoints with anywidth.train.load_model"
        )
    model = _zoo_model(meta, checkpoint.path) if model is None else copy.deepcopy(model)
    state = checkpoint.model_state()
    inn = rebuild_integral(model, meta, state, checkpoint.path)
    try:
        inn.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"{checkpoint.path}: the saved tensors do not fit the rebuilt integral model "
            f"({str(error).splitlines()[0]})"
        ) from None
    return inn.eval()


def _zoo_model(meta: dict[str, Any], path: Path) -> nn.Module:
    name, kwargs = meta["model"].get("name"), meta["model"].get("kwargs") or {}
    if name is None:
        raise CheckpointError(
            f"{path}: the integral model records no zoo model name; pass the rebuilt source "
            "model: load_integral(path, model=MyNet(...)), or convert with "
            "to_integral(..., model_name=...)"
        )
    try:
        return create_model(name, **kwargs)
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: cannot rebuild model {name!r}: {error}") from None


def rebuild_integral(
    model: nn.Module, meta: dict[str, Any], state: Mapping[str, torch.Tensor], path=None
) -> IntegralModel:
    """An `IntegralModel` with the record's structure; its tensors are loaded afterwards."""
    record = meta["extra"][KEY]
    if record.get("format", 0) > _FORMAT:
        raise CheckpointError(f"{path}: integral record format {record['format']} is too new")
    config = IntegralConfig.from_dict(record["config"])
    dtype = getattr(torch, record["dtype"])
    example = _example(record)
    model = model.to(dtype).eval()
    groups = fix_unreadable(model, example, analyze_channels(model, example, fixed=config.fixed))
    found = [{"name": g.name, "size": g.size, "fixed": g.fixed} for g in groups]
    if found != record["groups"]:
        raise CheckpointError(
            f"{path}: the rebuilt model's channel groups differ from the saved ones; it is "
            "not the architecture the integral model was converted from"
        )
    inn = IntegralModel(
        model,
        example,
        groups,
        config,
        nodes=record["nodes"],
        permutation=record["permutation"],
        model_name=meta["model"].get("name"),
        model_kwargs=meta["model"].get("kwargs"),
        init=False,
    )
    inn.set_sizes_(record["sizes"])
    return inn


# Integer inputs (token ids, attention masks) are stored with their values: a model traced
# by torch.export may take value-dependent paths (e.g. a mask with padding), and the record
# must rebuild the very graph the INN was converted with. Images are stored as a shape.
_MAX_STORED_VALUES = 1 << 16


def _input_record(t: torch.Tensor) -> dict[str, Any]:
    out: dict[str, Any] = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    if not t.is_floating_point() and t.numel() <= _MAX_STORED_VALUES:
        out["values"] = t.flatten().tolist()
    return out


def _example(record: dict[str, Any]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """The example input of the record: one tensor, or a tuple for multi-input models.

    Files written before multi-input records hold ``input_shape``/``input_dtype`` only."""
    inputs = record.get("inputs") or [
        {"shape": record["input_shape"], "dtype": record["input_dtype"]}
    ]
    tensors = []
    for item in inputs:
        dtype = getattr(torch, item["dtype"])
        if "values" in item:
            tensors.append(torch.tensor(item["values"], dtype=dtype).reshape(item["shape"]))
        else:
            tensors.append(torch.zeros(item["shape"], dtype=dtype))
    return tensors[0] if len(tensors) == 1 else tuple(tensors)


def _lam_dtype(inn: IntegralModel) -> torch.dtype:
    for t in inn.lam.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()
