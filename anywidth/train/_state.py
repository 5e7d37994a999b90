"""Turning training state into tensors + JSON and back (optimizer, RNG, model state)."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "OPTIMIZER_PREFIX",
    "MODEL_PREFIX",
    "RNG_PREFIX",
    "dump_json",
    "flatten_optimizer",
    "restore_optimizer",
    "rng_state",
    "set_rng_state",
    "load_model_state",
    "with_prefix",
]

logger = logging.getLogger(__name__)

MODEL_PREFIX = "model."
OPTIMIZER_PREFIX = "optimizer.state."
RNG_PREFIX = "rng."


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit the model.

    The message names the file, says what is wrong and what to do about it.
    """


def with_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``tensors`` whose name starts with ``prefix``, prefix removed."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def dump_json(document: Any, path: Path, what: str) -> str:
    """``json.dumps`` with numbers-as-tensors allowed and a clear error otherwise."""
    try:
        return json.dumps(document, default=_json_default)
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path}: cannot store {what} in the checkpoint metadata ({error}); it must be "
            f"JSON-serialisable (numbers, strings, bools, None, lists, dicts)"
        ) from None


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-friendly rest."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIMIZER_PREFIX}{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    meta = {
        "type": type(optimizer).__name__,
        "param_groups": state_dict["param_groups"],
        "state": scalars,
    }
    return tensors, meta


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    meta: dict,
    tensors: Mapping[str, torch.Tensor],
    path: Path,
) -> None:
    """Load what `flatten_optimizer` wrote back into ``optimizer``."""
    if meta.get("type") != type(optimizer).__name__:
        raise CheckpointError(
            f"{path}: holds {meta.get('type')} state but the run uses "
            f"{type(optimizer).__name__}; resume with the same optimizer setting"
        )
    state: dict[int, dict[str, Any]] = {}
    for index, entries in meta.get("state", {}).items():
        state.setdefault(int(index), {}).update(entries)
    for name, value in with_prefix(tensors, OPTIMIZER_PREFIX).items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = []
    for saved, current in zip(meta["param_groups"], optimizer.param_groups, strict=False):
        # JSON turned tuples (AdamW betas) into lists; give them their type back.
        groups.append(
            {
                k: tuple(v) if isinstance(current.get(k), tuple) and isinstance(v, list) else v
                for k, v in saved.items()
            }
        )
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(
            f"{path}: optimizer state does not fit this model's parameters ({error}); "
            f"resume only with the model and settings that wrote the checkpoint"
        ) from None


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Torch (CPU and CUDA), numpy and Python RNG states as uint8 tensors + scalars."""
    tensors = {f"{RNG_PREFIX}torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for device, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{RNG_PREFIX}cuda.{device}"] = state
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    tensors[f"{RNG_PREFIX}numpy"] = torch.from_numpy(keys.astype("<u4").view(np.uint8))
    version, internal, gauss_next = random.getstate()
    words = np.asarray(internal, dtype="<u4").view(np.uint8)
    tensors[f"{RNG_PREFIX}python"] = torch.from_numpy(words)
    meta = {
        "numpy": {"pos": pos, "has_gauss": has_gauss, "cached_gaussian": cached_gaussian},
        "python": {"version": version, "gauss_next": gauss_next},
    }
    return tensors, meta


def set_rng_state(meta: dict, tensors: Mapping[str, torch.Tensor]) -> None:
    """Restore the RNG states `rng_state` captured."""
    states = with_prefix(tensors, RNG_PREFIX)
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    cuda = [states[f"cuda.{i}"] for i in range(len(states)) if f"cuda.{i}" in states]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    elif cuda:
        logger.warning("checkpoint has CUDA RNG states for %d devices; not restored", len(cuda))
    if "numpy" in states and "numpy" in meta:
        keys = states["numpy"].numpy().view("<u4").astype(np.uint32)
        n = meta["numpy"]
        np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    if "python" in states and "python" in meta:
        words = tuple(int(w) for w in states["python"].numpy().view("<u4"))
        random.setstate((meta["python"]["version"], words, meta["python"]["gauss_next"]))


def load_model_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """``model.load_state_dict(state, strict=True)`` with a readable mismatch report."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = [
        f"{label} {_first(items)}"
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", shapes),
        )
        if items
    ]
    if problems:
        raise CheckpointError(
            f"{path}: the saved weights do not fit the model ({'; '.join(problems)}). The "
            f"weights come from a different architecture than the one built for them; if their "
            f"widths were changed (pruning, resampling), import the module that registers the "
            f"structure hook for the checkpoint's 'extra' record before loading"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: could not load the weights ({error})") from None


def _first(items: list[str], count: int = 5) -> str:
    more = f" and {len(items) - count} more" if len(items) > count else ""
    return "[" + ", ".join(items[:count]) + "]" + more
