"""Checkpoints as one ``.safetensors`` file: tensors plus a JSON record, never pickle.

Layout of a checkpoint file:

- tensors ``model.<name>``: the model's ``state_dict()``;
- tensors ``optimizer.state.<index>.<key>``: optimizer state (momentum buffers, Adam moments);
- tensors ``rng.torch``, ``rng.cuda.<i>``, ``rng.numpy``, ``rng.python``: RNG states as uint8;
- string metadata ``"anywidth"``: a JSON document with ``format_version``, ``model``
  (``name``, ``kwargs``), ``epoch``, ``metrics``, ``history``, ``config``, ``optimizer``
  (type, ``param_groups``, non-tensor state), ``scheduler`` (its ``state_dict()``), ``rng``
  (non-tensor RNG state), ``extra`` (free-form, see
  `anywidth.registry.register_structure_hook`) and ``anywidth_version``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from anywidth.models import create_model
from anywidth.record import get_record, zoo_origin
from anywidth.registry import StructureHook, register_structure_hook, structure_hook
from anywidth.train._state import (
    MODEL_PREFIX,
    CheckpointError,
    dump_json,
    flatten_optimizer,
    load_model_state,
    rng_state,
    with_prefix,
)
from anywidth.train.config import TrainConfig

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "StructureHook",
    "load_model",
    "read_checkpoint",
    "register_structure_hook",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
META_KEY = "anywidth"


@dataclass
class Checkpoint:
    """The contents of a checkpoint file.

    Attributes:
        path: the file it was read from.
        meta: the JSON record (see the module docstring for its keys).
        tensors: every stored tensor by its prefixed name.

    Example:
        >>> ckpt = read_checkpoint("runs/digits/best.safetensors")
        >>> ckpt.meta["model"]["name"], ckpt.meta["metrics"]["val_accuracy"]
        ('resnet20', 0.97)
    """

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    def model_state(self) -> dict[str, torch.Tensor]:
        """The model's ``state_dict`` (the ``model.`` tensors with the prefix removed)."""
        return with_prefix(self.tensors, MODEL_PREFIX)


def _cpu_tensors(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU copies; tensors sharing storage are cloned (safetensors
    refuses shared memory, e.g. tied weights)."""
    out, seen = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[prefix + name] = tensor
    return out


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    epoch: int | None = None,
    config: TrainConfig | dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    history: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    reader: str | None = None,
) -> Path:
    """Write ``model`` (and optionally training state) to one ``.safetensors`` file.

    The file is written next to ``path`` and renamed into place, so an interrupted save
    never leaves a half-written checkpoint. The current RNG states are always stored.
    The model's `anywidth.record.ModelRecord` (written by ``create_model`` and extended by
    every method that makes a model smaller) supplies the zoo name and options, and its
    structural steps are stored under ``extra["steps"]`` for `load_model` to replay.

    Args:
        path: the file to write; parent folders are created.
        model: its ``state_dict()`` is stored under ``model.``.
        model_name: the zoo name `load_model` rebuilds it with; by default the one in the
            model's record. A model not built by ``create_model`` needs it for `load_model`
            (without it the file is written, with a logged warning, and only its tensors
            can be read back: `read_checkpoint`).
        model_kwargs: the kwargs of ``create_model(model_name, **model_kwargs)``; by
            default those in the model's record.
        metrics: e.g. ``{"val_accuracy": 0.97}``.
        epoch: completed epochs.
        config: the `TrainConfig` (or its dict) of the run.
        optimizer: store its state, for resuming.
        scheduler: a ``torch.optim.lr_scheduler`` whose ``state_dict()`` is JSON-friendly.
        history: per-epoch metric records.
        extra: free-form JSON-friendly data for other parts of the library; keys with a
            registered structure hook are acted on by `load_model`.
        reader: how to read the file back when the model has no zoo name, for the logged
            warning (default: `load_model` cannot rebuild it, `read_checkpoint` reads its
            tensors); e.g. `anywidth.integral.save_integral` names `load_integral`.

    Returns:
        The path written.

    Example:
        >>> small, _ = prune(anywidth.create_model("resnet20"), x, PruneConfig(0.5))
        >>> save_checkpoint("runs/small.safetensors", small, metrics={"val_accuracy": 0.9})
    """
    path = Path(path)
    record = get_record(model)
    model_name, model_kwargs = zoo_origin(model, model_name, model_kwargs)
    if model_name is None:
        logger.warning(
            "save_checkpoint(%s): the %s was not built by anywidth.create_model and no "
            "model_name= was given: %s",
            path,
            type(model).__name__,
            reader
            or "load_model cannot rebuild it from this file alone (read_checkpoint reads "
            "its tensors)",
        )
    extra = dict(extra or {})
    if record is not None and record.steps:
        extra.setdefault("steps", [dict(step) for step in record.steps])
    tensors = _cpu_tensors(MODEL_PREFIX, model.state_dict())
    rng_tensors, rng_meta = rng_state()
    tensors.update(_cpu_tensors("", rng_tensors))
    optimizer_meta = None
    if optimizer is not None:
        optimizer_tensors, optimizer_meta = flatten_optimizer(optimizer)
        tensors.update(_cpu_tensors("", optimizer_tensors))
    document = {
        "format_version": FORMAT_VERSION,
        "anywidth_version": _version(),
        "model": {"name": model_name, "kwargs": model_kwargs},
        "epoch": epoch,
        "metrics": metrics,
        "history": history,
        "config": config.to_dict() if isinstance(config, TrainConfig) else config,
        "optimizer": optimizer_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_meta,
        "extra": extra,
    }
    metadata = {META_KEY: dump_json(document, path, "the run record")}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        safetensors.torch.save_file(tensors, str(partial), metadata=metadata)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    logger.debug("saved checkpoint %s (%d tensors)", path, len(tensors))
    return path


def _version() -> str:
    from anywidth import __version__

    return __version__


def _read_header(data: bytes, path: Path) -> dict[str, Any]:
    """Parse and sanity-check the safetensors header ourselves for precise messages."""
    hint = "re-save it, or use an earlier checkpoint"
    if len(data) < 8:
        raise CheckpointError(
            f"{path}: {len(data)} bytes is too short to be a safetensors checkpoint; {hint}"
        )
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise CheckpointError(
            f"{path}: not a safetensors file, or truncated (header claims {size} bytes, file "
            f"has {len(data)}); {hint}"
        )
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object); {hint}")
    ends = [
        entry["data_offsets"][1]
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    available = len(data) - 8 - size
    if ends and max(ends) > available:
        raise CheckpointError(
            f"{path}: truncated: the tensors need {max(ends)} bytes of data but only "
            f"{available} are there; {hint}"
        )
    return header


def _parse_meta(header: dict[str, Any], path: Path) -> dict[str, Any]:
    raw = (header.get("__metadata__") or {}).get(META_KEY)
    if raw is None:
        raise CheckpointError(
            f"{path}: a safetensors file but not an anywidth checkpoint (no {META_KEY!r} "
            f"metadata); write checkpoints with anywidth.train.save_checkpoint, or read plain "
            f"tensors with safetensors.torch.load_file"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: the {META_KEY!r} metadata is not JSON ({error})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int) or not isinstance(meta.get("model"), dict):
        raise CheckpointError(
            f"{path}: the {META_KEY!r} metadata lacks 'format_version' or 'model'; the file "
            f"was not written by save_checkpoint"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this anywidth reads "
            f"({FORMAT_VERSION}); upgrade anywidth"
        )
    return meta


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file written by `save_checkpoint` (no code is executed).

    Args:
        path: a ``.safetensors`` checkpoint.

    Returns:
        A `Checkpoint` with the JSON record and all tensors (on CPU).

    Raises:
        CheckpointError: the file is missing, not safetensors, truncated, or has no
            anywidth record; the message names the file and what to do.

    Example:
        >>> ckpt = read_checkpoint("runs/digits/last.safetensors")
        >>> ckpt.meta["epoch"], sorted(ckpt.model_state())[:1]
        (30, ['bn1.bias'])
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such checkpoint file; check the path (training writes "
            f"last.safetensors and best.safetensors into its checkpoint_dir)"
        )
    data = path.read_bytes()
    meta = _parse_meta(_read_header(data, path), path)
    try:
        tensors = safetensors.torch.load(data)
    except Exception as error:  # safetensors raises its own untyped errors
        raise CheckpointError(
            f"{path}: corrupt tensor data ({error}); re-save it, or use an earlier checkpoint"
        ) from None
    return Checkpoint(path=path, meta=meta, tensors=tensors)


def _build_model(meta: dict[str, Any], path: Path) -> nn.Module:
    name, kwargs = meta["model"].get("name"), meta["model"].get("kwargs") or {}
    if name is None:
        raise CheckpointError(
            f"{path}: the checkpoint records no zoo model name (the model was not built by "
            "anywidth.create_model and was saved without model_name=); build the model "
            "yourself and pass it, load_model(path, model=MyNet(...)), or load "
            "read_checkpoint(path).model_state() into it"
        )
    try:
        return create_model(name, **kwargs)
    except KeyError as error:
        raise CheckpointError(
            f"{path}: the checkpoint's model {name!r} is not in the zoo ({error.args[0]}); "
            f"import the module that registers it before loading"
        ) from None
    except TypeError as error:
        raise CheckpointError(
            f"{path}: cannot rebuild model {name!r} with kwargs {kwargs} ({error})"
        ) from None


def load_model(
    path: str | Path, model: nn.Module | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from the zoo and load a checkpoint's weights into it strictly.

    The model is built with ``create_model(name, **kwargs)`` from the checkpoint's record
    (or copied from ``model``), reshaped by any registered structure hooks for keys of
    ``meta["extra"]`` (see `register_structure_hook`): the steps of its record (a cut, a
    decomposition, an INN conversion...) are replayed, then the weights are loaded with
    every key and shape checked.

    Args:
        path: a checkpoint written by `save_checkpoint`.
        model: a freshly built model of the saved architecture, for files whose model was
            not built by ``create_model``; a copy is used (``model`` is not changed, and its
            weights are not used).

    Returns:
        ``(model, meta)``: the model on CPU in eval mode, and the checkpoint's JSON record.

    Raises:
        CheckpointError: the file is unreadable, the model name is unknown, or the weights
            do not fit the model.

    Example:
        >>> model, meta = load_model("runs/digits/best.safetensors")
        >>> meta["metrics"]["val_accuracy"]
        0.97
    """
    checkpoint = read_checkpoint(path)
    if model is None:
        model = _build_model(checkpoint.meta, checkpoint.path)
    else:
        model = copy.deepcopy(model)
    state = checkpoint.model_state()
    for key in checkpoint.meta.get("extra") or {}:
        hook = structure_hook(key)
        if hook is not None:
            try:
                model = hook(model, checkpoint.meta, state)
            except Exception as error:
                raise CheckpointError(
                    f"{checkpoint.path}: the structure hook for {key!r} failed: {error}"
                ) from error
    load_model_state(model, state, checkpoint.path)
    return model.eval(), checkpoint.meta
