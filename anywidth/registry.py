"""Where anywidth finds the code that rebuilds saved models and the compression methods.

One table, by name: each entry is a ``"module:function"`` string that is imported the first
time it is needed, so importing one subpackage never imports the others for their side
effects. `anywidth.train.load_model` asks here for the structure hook of every key of a
checkpoint's ``extra`` record, and the ``"steps"`` hook asks here how to replay each step
of a model's record (`anywidth.record.ModelRecord`); `anywidth.compress` imports the
method modules listed here when it names the configs it takes. Code outside anywidth
registers its own hooks and replayers with the two ``register_*`` functions.

Example:
    >>> from anywidth.registry import register_step_replayer
    >>> def replay_fold(model, step):
    ...     return fold_batchnorm(model, step["layers"])
    >>> register_step_replayer("fold", replay_fold)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "COMPRESSION_MODULES",
    "STEP_REPLAYERS",
    "STRUCTURE_HOOKS",
    "StepReplayer",
    "StructureHook",
    "load_compression_methods",
    "register_step_replayer",
    "register_structure_hook",
    "resolve",
    "step_kinds",
    "step_replayer",
    "structure_hook",
]

StructureHook = Callable[[Any, dict, dict], Any]
"""``fn(model, meta, state) -> model``: reshape a freshly built model before its weights load."""

StepReplayer = Callable[[Any, Mapping[str, Any]], Any]
"""``fn(model, step) -> model``: redo one step of a model's record on a fresh model."""

STRUCTURE_HOOKS: dict[str, str] = {
    "steps": "anywidth.record:replay_steps",
    "widths": "anywidth.record:replay_widths",
    "integral": "anywidth.integral.io:replay_integral_extra",  # files before INN records
}
"""The built-in structure hooks, by the ``extra`` key of the checkpoint they act on."""

STEP_REPLAYERS: dict[str, str] = {
    "cut": "anywidth.graph.cut:replay_cut",
    "decompose": "anywidth.lowrank.decompose:replay_decompose",
    "skip": "anywidth.search.search:replay_skip",
    "integral": "anywidth.integral.io:replay_integral",
}
"""The built-in step replayers, by the ``"kind"`` of the record step they redo."""

COMPRESSION_MODULES: tuple[str, ...] = (
    "anywidth.pruning.prune",
    "anywidth.lowrank.decompose",
    "anywidth.search.compress",
    "anywidth.slim.export",
    "anywidth.compare.auto",
)
"""The modules that register `anywidth.compress` handlers (imported by
`load_compression_methods`)."""

_hooks: dict[str, Callable | str] = dict(STRUCTURE_HOOKS)
_replayers: dict[str, Callable | str] = dict(STEP_REPLAYERS)


def resolve(entry: Callable | str) -> Callable:
    """The function a table entry names: itself, or ``"module:function"`` imported now.

    Raises:
        ValueError: ``entry`` is a string without exactly one ``":"``.
    """
    if callable(entry):
        return entry
    module, sep, name = entry.partition(":")
    if not sep or not module or not name or ":" in name:
        raise ValueError(f"entry {entry!r}: write a function as 'package.module:function'")
    return getattr(importlib.import_module(module), name)


def _register(table: dict, what: str, key: str, fn: Callable | str) -> None:
    if key in table and resolve(table[key]) is not resolve(fn):
        raise ValueError(f"{what} {key!r} is already registered to another function")
    table[key] = fn


def register_structure_hook(key: str, fn: StructureHook | str) -> None:
    """Let code that changes a model's structure rebuild it before its weights load.

    `anywidth.train.load_model` first builds the model from the zoo by name and kwargs. A
    model that was later reshaped no longer fits that fresh build, so the code that
    reshaped it records what it did under ``extra[key]`` when saving, and registers a hook
    for ``key``. For every key of ``meta["extra"]`` that has a hook, in the order the keys
    were saved, `load_model` calls ``fn(model, meta, state)`` where ``state`` is the saved
    model ``state_dict``; the hook returns the reshaped model (it may return a new module).

    Args:
        key: the ``extra`` key the hook handles, e.g. ``"pruned_widths"``.
        fn: ``fn(model, meta, state) -> model``, or ``"module:function"`` naming it.

    Raises:
        ValueError: another function is already registered for ``key``.

    Example:
        >>> def rebuild_widths(model, meta, state):
        ...     return cut_to_widths(model, meta["extra"]["pruned_widths"])
        >>> register_structure_hook("pruned_widths", rebuild_widths)
    """
    _register(_hooks, "a structure hook for", key, fn)


def structure_hook(key: str) -> StructureHook | None:
    """The structure hook for the ``extra`` key ``key`` (imported now), or None."""
    return resolve(_hooks[key]) if key in _hooks else None


def register_step_replayer(kind: str, fn: StepReplayer | str) -> None:
    """Let `anywidth.train.load_model` replay record steps of ``kind``.

    Every width method ends in a ``"cut"`` step; a method that changes a model's structure
    in its own way (a low-rank decomposition, skipped blocks) records steps of its own kind
    and says here how to redo them.

    Args:
        kind: the step's ``"kind"``.
        fn: ``fn(model, step) -> model``, or ``"module:function"`` naming it.

    Raises:
        ValueError: another function is already registered for ``kind``.
    """
    _register(_replayers, "a replayer for record steps of kind", kind, fn)


def step_kinds() -> list[str]:
    """The step kinds this anywidth can replay."""
    return sorted(_replayers)


def step_replayer(kind: str) -> StepReplayer:
    """The replayer for record steps of ``kind`` (imported now).

    Raises:
        KeyError: no replayer is registered for ``kind``.
    """
    if kind not in _replayers:
        raise KeyError(f"no replayer for record steps of kind {kind!r} (known: {step_kinds()})")
    return resolve(_replayers[kind])


def load_compression_methods() -> None:
    """Import every module in `COMPRESSION_MODULES`, so each registers its handler."""
    for module in COMPRESSION_MODULES:
        importlib.import_module(module)
