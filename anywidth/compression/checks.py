"""Checks of what a user hands a compression function, with errors that name the argument.

A wrong example input, data that are not batches, or a weight that is NaN would otherwise
surface as a torch error deep inside a method (``conv2d() received an invalid combination
of arguments``); these checks say which argument is wrong and how to fix it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from anywidth.measure import eval_mode

__all__ = ["check_batches", "check_example_input", "warn_non_finite"]


def _shapes(example_input: object) -> str:
    items = example_input if isinstance(example_input, tuple) else (example_input,)
    return ", ".join(str(tuple(t.shape)) for t in items)


@torch.no_grad()
def check_example_input(
    model: nn.Module, example_input: object, name: str = "example_input"
) -> tuple[torch.Tensor, ...]:
    """``example_input`` as a tuple of tensors, after one forward pass of ``model`` on it.

    Raises:
        TypeError: not a tensor or a tuple of tensors.
        ValueError: the model fails on it; the message names ``name``, the shape given and
            the failure, and says what to pass.

    Example:
        >>> check_example_input(torch.nn.Linear(3, 2), torch.randn(1, 4))
        Traceback (most recent call last):
        ValueError: example_input: the model fails on an input of shape (1, 4): ...
    """
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise TypeError(
            f"{name} must be a tensor (or a tuple of tensors) of the shape the model expects, "
            f"got {type(example_input).__name__}; e.g. one batch: next(iter(loader))[0][:1]"
        )
    try:
        with eval_mode(model):
            model(*inputs)
    except Exception as err:  # any torch failure means the input does not fit
        raise ValueError(
            f"{name}: the model fails on an input of shape {_shapes(example_input)}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}; pass a "
            "batch of the shape the model expects, e.g. next(iter(loader))[0][:1]"
        ) from err
    return inputs


def _batch_ok(batch: object) -> bool:
    if isinstance(batch, torch.Tensor):
        return True
    if isinstance(batch, Mapping):  # keyword inputs (Hugging Face)
        return all(isinstance(v, torch.Tensor) for v in batch.values())
    if isinstance(batch, (tuple, list)) and batch:
        return isinstance(batch[0], torch.Tensor | Mapping)
    return False


def check_batches(data: object, name: str = "data") -> None:
    """Raise unless ``data`` is one tensor or a re-iterable collection of batches.

    A batch is a tensor, an ``(inputs, labels, ...)`` tuple or list whose first item is a
    tensor, or a dict of tensors. The first batch is looked at; a one-shot iterator (a
    generator) is refused, since methods read the data more than once.

    Raises:
        TypeError: what ``data`` is and what to pass instead, naming ``name``.
        ValueError: ``data`` yielded no batch.

    Example:
        >>> check_batches([1, 2, 3])
        Traceback (most recent call last):
        TypeError: data: a batch must be a tensor, an (inputs, labels) tuple or a dict ...
    """
    if isinstance(data, torch.Tensor):
        return
    how = "pass a DataLoader, a Loaders record or a list of (inputs, labels) batches"
    if isinstance(data, str | bytes | Mapping) or not isinstance(data, Iterable):
        raise TypeError(f"{name} must be batches, got {type(data).__name__}; {how}")
    if isinstance(data, Iterator):
        raise TypeError(
            f"{name} is a one-shot iterator ({type(data).__name__}), but it is read more than "
            f"once; {how}"
        )
    first = _first_batch(data)
    if first is None:
        raise ValueError(f"{name} yielded no batch; {how}")
    if not _batch_ok(first):
        raise TypeError(
            f"{name}: a batch must be a tensor, an (inputs, labels) tuple or a dict of tensors, "
            f"got {type(first).__name__} ({first!r:.40}); {how}"
        )


def _first_batch(data: Iterable) -> object:
    """The first batch of ``data``, read without moving any random state: a shuffled
    DataLoader draws its order from torch's generator (or its own), so a look ahead would
    change the order that every later pass over it sees."""
    sampler = getattr(data, "sampler", None)
    generators = [
        g
        for g in (getattr(data, "generator", None), getattr(sampler, "generator", None))
        if isinstance(g, torch.Generator)
    ]
    saved = [g.get_state() for g in generators]
    with torch.random.fork_rng(devices=[]):
        first = next(iter(data), None)
    for generator, state in zip(generators, saved, strict=True):
        generator.set_state(state)
    return first


def warn_non_finite(model: nn.Module, name: str = "model") -> list[str]:
    """Warn (``RuntimeWarning``) about every parameter or buffer holding a NaN or inf.

    Returns:
        The names of those tensors (empty when every value is finite).

    Example:
        >>> net = torch.nn.Linear(2, 2)
        >>> net.weight.data[0, 0] = float("nan")
        >>> warn_non_finite(net)
        ['weight']
    """
    bad = [
        n
        for n, t in [*model.named_parameters(), *model.named_buffers()]
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.warn(
            f"{name} has NaN or inf values in {shown}; scores and budgets computed from them "
            "are meaningless: check the checkpoint or the training run",
            RuntimeWarning,
            stacklevel=3,
        )
    return bad
