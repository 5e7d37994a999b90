"""Save and load an `IntegralModel` through the general checkpoint path (safetensors + JSON).

An INN carries a record (`IntegralModel.anywidth_record`) like every cut model: its
source's record plus one step of kind ``"integral"`` (the conversion config, the example
input, every group's name, size and fixed flag, the nodes per group, the current sizes and
the channel permutation applied to the source). `anywidth.train.save_checkpoint` stores
it with the tensors ``model.lam.*`` (λ) and ``model.grids.*`` (trainable partitions), and
`anywidth.train.load_model` replays it: build the zoo model (or copy the one passed as
``model=``), replay the source's earlier steps, then this one: re-derive the channel groups,
check them against the step, skip the channel ordering, and load λ and the partitions
exactly. The source's own weights are never needed again. Never pickle.

`save_integral` and `load_integral` are thin aliases of that path, kept for scripts.

Importing this module registers the ``"integral"`` step replayer, and the structure hook
that reads files written before INNs had a record (``extra["integral"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anywidth.graph import analyze_channels, fix_unreadable
from anywidth.integral._record import FORMAT, KIND, example_of
from anywidth.integral.config import IntegralConfig
from anywidth.integral.model import IntegralModel
from anywidth.record import zoo_origin
from anywidth.train.checkpoint import (
    CheckpointError,
    load_model,
    save_checkpoint,
)

__all__ = ["KEY", "load_integral", "replay_integral", "replay_integral_extra", "save_integral"]

KEY = KIND


def save_integral(
    inn: IntegralModel, path: str | Path, *, metrics: Mapping[str, Any] | None = None
) -> Path:
    """``save_checkpoint(path, inn, metrics=metrics)``: `load_integral` (or `load_model`)
    reads it back exactly.

    Args:
        inn: the integral model (its ``model_name``/``model_kwargs`` are recorded; without
            a name, loading needs the rebuilt source model passed in).
        path: the file to write; parent folders are created.
        metrics: recorded as they are.

    Returns:
        The path written.

    Example:
        >>> inn = to_integral(anywidth.create_model("resnet20"), x)  # records its zoo name
        >>> save_integral(inn, "runs/resnet20.inn.safetensors")
    """
    return save_checkpoint(
        path,
        inn,
        metrics=dict(metrics or {}),
        reader="read it back with load_integral(path, model=<a freshly built source model>)",
    )


def load_integral(path: str | Path, model: nn.Module | None = None) -> IntegralModel:
    """``load_model(path, model=model)``, refusing files that hold no integral model.

    Args:
        path: the file.
        model: a freshly built model of the source architecture; needed only when the file
            records no zoo name (it is not changed and its weights are not used).

    Returns:
        The `IntegralModel` on CPU, in eval mode, at the sizes it was saved with.

    Raises:
        CheckpointError: the file is unreadable, holds no integral model, its zoo model
            cannot be rebuilt, or the rebuilt model's groups differ from the record.

    Example:
        >>> inn = load_integral("runs/resnet20.inn.safetensors")
        >>> small = inn.resample(target_macs=0.5)
    """
    inn, _ = load_model(path, model=model)
    if not isinstance(inn, IntegralModel):
        raise CheckpointError(
            f"{path}: not an integral model (its record has no {KIND!r} step); load plain "
            "checkpoints with anywidth.train.load_model"
        )
    return inn


def replay_integral(model: nn.Module, step: Mapping[str, Any]) -> IntegralModel:
    """An `IntegralModel` of ``model`` with the step's structure; its tensors are loaded
    afterwards (by `load_model`)."""
    if step.get("format", 0) > FORMAT:
        raise ValueError(f"integral record format {step['format']} is too new; upgrade anywidth")
    config = IntegralConfig.from_dict(step["config"])
    example = example_of(step)
    model = model.to(getattr(torch, step["dtype"])).eval()
    groups = fix_unreadable(model, example, analyze_channels(model, example, fixed=config.fixed))
    found = [{"name": g.name, "size": g.size, "fixed": g.fixed} for g in groups]
    if found != step["groups"]:
        raise ValueError(
            "the rebuilt model's channel groups differ from the saved ones; it is not the "
            "architecture the integral model was converted from"
        )
    model_name, model_kwargs = zoo_origin(model, None, None)
    inn = IntegralModel(
        model,
        example,
        groups,
        config,
        nodes=step["nodes"],
        permutation=step["permutation"],
        model_name=model_name,
        model_kwargs=model_kwargs,
        init=False,
    )
    inn.set_sizes_(step["sizes"])
    return inn


def replay_integral_extra(
    model: nn.Module, meta: dict[str, Any], state: Mapping[str, torch.Tensor]
) -> IntegralModel:
    """Files written before INNs had a record kept the step under ``extra["integral"]``."""
    return replay_integral(model, meta["extra"][KEY])
