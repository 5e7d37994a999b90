"""Find the runs of skippable blocks a depth search may shorten.

A block can be skipped when its output has its input's shape: replacing it by the identity
leaves a valid model. A *run* is a chain of such blocks, consecutive children of one
``nn.Sequential``, each fed the previous one's output; the depth candidates of a run keep
its first ``k`` blocks, ``k = 0..n``. By default only residual blocks are candidates (the
block's input reaches an addition directly: the identity blocks of ResNets and
MobileNetV2), since skipping a plain conv or a norm layer is rarely what a user wants.
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from anywidth.graph import match_names

__all__ = ["find_runs", "skip_blocks_"]

_ADDS = {operator.add, operator.iadd, torch.add, "add", "add_"}


class _Calls:
    """What every child of every Sequential was called with and returned, once run."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[object, object]]] = {}

    def hook(self, name: str):
        def record(module, args, output):
            self.seen.setdefault(name, []).append((args, output))

        return record


def _children_of_sequentials(model: nn.Module) -> dict[str, list[str]]:
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential) and len(module) > 0:
            out[name] = [
                f"{name}.{child}" if name else child for child, _ in module.named_children()
            ]
    return out


def _record_calls(model: nn.Module, example_input, names: list[str]) -> _Calls:
    calls = _Calls()
    handles = [model.get_submodule(n).register_forward_hook(calls.hook(n)) for n in names]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            inputs = example_input if isinstance(example_input, tuple) else (example_input,)
            model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return calls


def _is_residual(block: nn.Module) -> bool:
    """The block's input reaches an addition directly (through identities at most)."""
    try:
        graph = fx.symbolic_trace(block).graph
    except Exception:  # noqa: BLE001  untraceable: not auto-detected, may still be named
        return False
    frontier = [n for n in graph.nodes if n.op == "placeholder"][:1]
    while frontier:
        node = frontier.pop()
        for user in node.users:
            if user.target in _ADDS:
                return True
            if user.op == "call_module" and isinstance(
                block.get_submodule(user.target), nn.Identity
            ):
                frontier.append(user)
    return False


def _shape_of(value) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def find_runs(model: nn.Module, example_input, patterns: tuple[str, ...] | None) -> list[list[str]]:
    """The runs of skippable blocks: lists of module names, in call order.

    Args:
        model: the network (run once in eval mode; not changed).
        example_input: its input.
        patterns: names or globs of the blocks allowed to be skipped; None picks every
            residual block that keeps its input's shape.

    Raises:
        ValueError: a named block changes the shape of its input, is not a child of an
            ``nn.Sequential`` fed by the previous child, or is not called exactly once.
    """
    parents = _children_of_sequentials(model)
    children = [c for names in parents.values() for c in names]
    calls = _record_calls(model, example_input, children)
    named = None
    if patterns is not None:
        noun = "block (a child of an nn.Sequential, the only blocks that can be skipped)"
        named = match_names(patterns, children, "SearchConfig.blocks", noun)
    runs = []
    for names in parents.values():
        run: list[str] = []
        previous_output = None
        for name in names:
            ok, why = _skippable(name, calls.seen.get(name, []), previous_output)
            wanted = (
                name in named
                if named is not None
                else ok and _is_residual(model.get_submodule(name))
            )
            if named is not None and wanted and not ok:
                raise ValueError(f"SearchConfig.blocks: block {name!r} cannot be skipped: {why}")
            if wanted:
                run.append(name)
            elif run:
                runs.append(run)
                run = []
            seen = calls.seen.get(name, [])
            previous_output = seen[0][1] if len(seen) == 1 else None
        if run:
            runs.append(run)
    return runs


def _skippable(name: str, seen: list, previous_output) -> tuple[bool, str]:
    if len(seen) != 1:
        return False, f"it is called {len(seen)} times in one forward pass (once is needed)"
    args, output = seen[0]
    if len(args) != 1 or _shape_of(args[0]) is None:
        return False, "it does not take exactly one tensor"
    shape_in, shape_out = _shape_of(args[0]), _shape_of(output)
    if shape_in != shape_out:
        return False, (
            f"its output shape {shape_out} differs from its input shape {shape_in}; only a "
            "block whose output has its input's shape can be skipped"
        )
    if previous_output is not None and args[0] is not previous_output:
        return False, "its input is not the previous block's output"
    return True, ""


def skip_blocks_(model: nn.Module, names: list[str]) -> None:
    """Replace the named blocks by ``nn.Identity`` in place (names of the others unchanged)."""
    for name in names:
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner) if owner else model, attr, nn.Identity())
