"""anywidth: make a trained network smaller by changing the width of its layers.

Importing `anywidth` is cheap: its names below are imported on first use (PEP 562), and
each subpackage is imported only when asked for.

Example:
    >>> import anywidth
    >>> from anywidth.pruning import PruneConfig
    >>> model = anywidth.create_model("resnet20", num_classes=10)
    >>> x = torch.randn(1, 3, 32, 32)
    >>> config = PruneConfig(budget=anywidth.Budget(macs=0.5))
    >>> small, report = anywidth.compress(model, x, config, data=loaders)
    >>> print(report)   # params, MACs and accuracy before and after, and what was done
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Budget",
    "CompressionReport",
    "Config",
    "__version__",
    "compress",
    "create_model",
    "list_models",
    "register_model",
]

_HOMES = {
    "Budget": "anywidth.budget",
    "CompressionReport": "anywidth.compression",
    "Config": "anywidth._config",
    "compress": "anywidth.compression",
    "create_model": "anywidth.models",
    "list_models": "anywidth.models",
    "register_model": "anywidth.models",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anywidth")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+local"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = _version()
    elif name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    else:
        raise AttributeError(f"module 'anywidth' has no attribute {name!r}")
    globals()[name] = value  # found once; later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
