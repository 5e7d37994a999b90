"""The model registry: `@register_model`, `create_model`, `list_models`."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable

from torch import nn

from anywidth.record import ModelRecord, set_record_

__all__ = ["register_model", "create_model", "list_models", "model_kwargs"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model factory under its function name.

    Args:
        fn: a function returning an ``nn.Module``; its keyword arguments become the
            options `create_model` accepts.

    Returns:
        ``fn`` unchanged, so this works as a decorator.

    Example:
        >>> @register_model
        ... def my_net(num_classes: int = 10) -> nn.Module: ...
    """
    name = fn.__name__
    if name in _REGISTRY and _REGISTRY[name] is not fn:
        raise ValueError(f"a model named {name!r} is already registered; pick another name")
    _REGISTRY[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered models matching a glob ``pattern``, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: a name from `list_models()`.
        **kwargs: options of that model's factory, e.g. ``num_classes=10``.

    Returns:
        A freshly initialised model. It carries a `anywidth.record.ModelRecord` of its name
        and options, so checkpoints of it (and of smaller models made from it) reload with
        ``load_model(path)`` alone.

    Example:
        >>> model = create_model("resnet20", num_classes=10)
    """
    if name not in _REGISTRY:
        close = fnmatch.filter(_REGISTRY, f"*{name[:4]}*") if name else []
        hint = f" Did you mean one of {close}?" if close else ""
        raise KeyError(f"unknown model {name!r}.{hint} See anywidth.list_models().")
    fn = _REGISTRY[name]
    params = inspect.signature(fn).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise TypeError(f"model {name!r} has no option(s) {unknown}; it accepts {sorted(params)}")
    model = fn(**kwargs)
    set_record_(model, ModelRecord(name, dict(kwargs)))
    return model


def model_kwargs(name: str) -> dict[str, object]:
    """Default keyword arguments of a registered model's factory."""
    fn = _REGISTRY[name]
    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
