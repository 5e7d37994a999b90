"""Rebuild a smaller model on load by replaying the steps its record lists.

A model made smaller by `cut` (pruning, INN resampling) carries a
`anywidth.record.ModelRecord` whose steps `save_checkpoint` stores under
``extra["steps"]``. `load_model` builds the zoo model and hands it here: each ``"cut"`` step
is traced on inputs of zeros of the recorded shapes and cut to the recorded sizes, so the
saved weights then load strictly. Nothing but the JSON record is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from anywidth.graph import Cutter, channel_groups, keep_first
from anywidth.record import zeros_like_spec
from anywidth.train.checkpoint import register_structure_hook

__all__ = ["register_step_replayer"]


def _replay_cut(model: nn.Module, step: Mapping[str, Any]) -> nn.Module:
    inputs = zeros_like_spec(step["inputs"])
    example = inputs[0] if len(inputs) == 1 else inputs
    groups = channel_groups(model.eval(), example)
    keep = keep_first(groups, step["sizes"])
    return Cutter(model, example, groups=groups)(keep, method=step.get("method", "cut"))


StepReplayer = Callable[[nn.Module, Mapping[str, Any]], nn.Module]
_REPLAYERS: dict[str, StepReplayer] = {"cut": _replay_cut}


def register_step_replayer(kind: str, fn: StepReplayer) -> None:
    """Let `load_model` replay record steps of ``kind`` (``fn(model, step) -> model``).

    Methods that change a model's structure in their own way (low-rank decomposition)
    register here, next to the ``"cut"`` steps every width method ends in.
    """
    if kind in _REPLAYERS and _REPLAYERS[kind] is not fn:
        raise ValueError(f"a replayer for record steps of kind {kind!r} is already registered")
    _REPLAYERS[kind] = fn


def _replay_steps(model: nn.Module, meta: dict[str, Any], state: dict[str, torch.Tensor]):
    for number, step in enumerate(meta["extra"]["steps"], start=1):
        kind = step.get("kind")
        if kind not in _REPLAYERS:
            raise ValueError(
                f"step {number} of the record is of kind {kind!r}, which this anywidth cannot "
                f"replay (it knows {sorted(_REPLAYERS)}); upgrade anywidth"
            )
        model = _REPLAYERS[kind](model, step)
    return model


def _replay_widths(model: nn.Module, meta: dict[str, Any], state: dict[str, torch.Tensor]):
    """Checkpoints of anywidth 0.1 recorded one cut as ``extra["widths"]``."""
    old = meta["extra"]["widths"]
    step = {"sizes": old["sizes"], "inputs": [{"shape": old["input_shape"], "dtype": "float32"}]}
    return _replay_cut(model, step)


register_structure_hook("steps", _replay_steps)
register_structure_hook("widths", _replay_widths)
