"""What a model is and what was done to it: the record every anywidth model carries.

`anywidth.create_model` writes the zoo name and options on the model it builds; every method
that makes a model smaller (`cut`, `prune`, INN `resample`, ...) copies that record onto the
smaller model and appends one step saying what it did. `anywidth.train.save_checkpoint`
stores the record, and `anywidth.train.load_model` replays it — build the zoo model, then
each step — so saving and loading a smaller model needs no extra arguments.

Example:
    >>> model = anywidth.create_model("resnet20", num_classes=10)
    >>> small, _ = prune(model, x, PruneConfig(target_macs=0.5))
    >>> get_record(small).model_name, get_record(small).steps[-1]["method"]
    ('resnet20', 'prune')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from anywidth.registry import step_kinds, step_replayer

__all__ = [
    "ModelRecord",
    "add_step_",
    "get_record",
    "input_spec",
    "replay_steps",
    "replay_widths",
    "set_record_",
    "zoo_origin",
    "zeros_like_spec",
]

_ATTR = "anywidth_record"


@dataclass(frozen=True)
class ModelRecord:
    """The zoo origin of a model and the structural steps applied to it, in order.

    Attributes:
        model_name: the `anywidth.create_model` name, or None for a model built elsewhere.
        model_kwargs: the options it was created with.
        steps: one JSON-friendly dict per step that changed the model's structure; each has
            a ``"kind"`` (how `load_model` replays it, e.g. ``"cut"``) and a ``"method"``
            (what chose it, e.g. ``"prune"``), plus what replaying needs (for a cut: the
            new group ``"sizes"`` and the traced ``"inputs"``).
    """

    model_name: str | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    steps: tuple[Mapping[str, Any], ...] = ()

    def with_step(self, step: Mapping[str, Any]) -> ModelRecord:
        """A copy with one more step."""
        return ModelRecord(self.model_name, dict(self.model_kwargs), (*self.steps, dict(step)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_kwargs": dict(self.model_kwargs),
            "steps": [dict(s) for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRecord:
        unknown = sorted(set(data) - {"model_name", "model_kwargs", "steps"})
        if unknown:
            raise ValueError(
                f"ModelRecord got unknown key(s) {unknown}; valid keys are "
                "'model_name', 'model_kwargs', 'steps'"
            )
        return cls(
            data.get("model_name"),
            dict(data.get("model_kwargs") or {}),
            tuple(dict(s) for s in data.get("steps") or ()),
        )


def get_record(model: nn.Module) -> ModelRecord | None:
    """The record of ``model``, or None when it was not built by anywidth.

    A class may compute its record when it is read, as a property named
    ``anywidth_record``: `anywidth.integral.IntegralModel` does, so that its last step holds
    its current sizes (`set_record_` cannot replace such a record).
    """
    record = getattr(model, _ATTR, None)
    return record if isinstance(record, ModelRecord) else None


def set_record_(model: nn.Module, record: ModelRecord) -> None:
    """Attach ``record`` to ``model`` (replacing any earlier one)."""
    object.__setattr__(model, _ATTR, record)


def add_step_(small: nn.Module, source: nn.Module, step: Mapping[str, Any]) -> None:
    """Give ``small`` the record of ``source`` (the model it was made from) plus ``step``."""
    set_record_(small, (get_record(source) or ModelRecord()).with_step(step))


def zoo_origin(
    model: nn.Module, model_name: str | None, model_kwargs: Mapping[str, Any] | None
) -> tuple[str | None, dict[str, Any]]:
    """The zoo name and options to record for ``model``: those given, else its record's."""
    record = get_record(model)
    if model_name is None and record is not None and record.model_name is not None:
        kwargs = record.model_kwargs if model_kwargs is None else model_kwargs
        return record.model_name, dict(kwargs)
    return model_name, dict(model_kwargs or {})


def input_spec(example_input: torch.Tensor | Sequence) -> list[dict[str, Any]]:
    """Shapes and dtypes of an example input, enough to rebuild one of zeros."""
    inputs = (example_input,) if isinstance(example_input, torch.Tensor) else example_input
    return [
        {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        for t in inputs
        if isinstance(t, torch.Tensor)
    ]


def zeros_like_spec(spec: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, ...]:
    """Inputs of zeros with the shapes and dtypes `input_spec` recorded."""
    return tuple(torch.zeros(s["shape"], dtype=getattr(torch, s["dtype"])) for s in spec)


def replay_steps(model: nn.Module, meta: Mapping[str, Any], state: Mapping[str, torch.Tensor]):
    """The structure hook for ``extra["steps"]``: redo each recorded step on ``model``.

    Each step is handed to the replayer `anywidth.registry` lists for its ``"kind"``
    (``"cut"``: trace on zeros of the recorded input shapes and cut to the recorded sizes),
    so the saved weights then load strictly. Nothing but the JSON record is needed.
    """
    for number, step in enumerate(meta["extra"]["steps"], start=1):
        kind = step.get("kind")
        if kind not in step_kinds():
            raise ValueError(
                f"step {number} of the record is of kind {kind!r}, which this anywidth cannot "
                f"replay (it knows {step_kinds()}); upgrade anywidth"
            )
        model = step_replayer(kind)(model, step)
    return model


def replay_widths(model: nn.Module, meta: Mapping[str, Any], state: Mapping[str, torch.Tensor]):
    """The structure hook for ``extra["widths"]``: anywidth 0.1 recorded one cut there."""
    old = meta["extra"]["widths"]
    step = {"sizes": old["sizes"], "inputs": [{"shape": old["input_shape"], "dtype": "float32"}]}
    return step_replayer("cut")(model, step)
