"""The one way config dataclasses become dicts and back: versioned, strict about keys.

Every config (`TrainConfig`, `IntegralConfig`, `PruneConfig`, ...) is a dataclass derived
from `Config`, whose ``to_dict`` (`config_to_dict`) and ``from_dict`` (`config_from_dict`)
store it in checkpoints and read it back, so that a misspelt or stale key is an error naming
the key, the config and the valid keys, and a record written by a newer anywidth is refused
instead of silently misread. `Config` is public as ``anywidth.Config``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar

__all__ = ["CONFIG_VERSION", "Config", "check_keys", "config_from_dict", "config_to_dict"]

CONFIG_VERSION = 1
"""The record version `config_to_dict` writes; a record without one is version 1."""

VERSION_KEY = "version"

C = TypeVar("C")


def check_keys(kind: str, data: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise ``ValueError`` if ``data`` has a key outside ``valid``.

    The message names every unknown key (with the closest valid name, if one is close),
    the config ``kind`` and the full list of valid keys.

    Example:
        >>> check_keys("TrainConfig", {"lr_max": 1.0}, ["lr", "epochs"])
        Traceback (most recent call last):
        ValueError: unknown TrainConfig field 'lr_max' (did you mean 'lr'?); valid fields: ...
    """
    valid = sorted(valid)
    unknown = sorted(set(data) - set(valid), key=str)
    if not unknown:
        return
    named = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    plural = "s" if len(unknown) > 1 else ""
    raise ValueError(
        f"unknown {kind} field{plural} {', '.join(named)}; valid fields: {', '.join(valid)}"
    )


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a JSON-friendly dict with ``"version"``; tuples become lists."""
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    data[VERSION_KEY] = CONFIG_VERSION
    return data


def config_from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Rebuild ``cls`` from a `config_to_dict` record (or a hand-written subset of it).

    Raises:
        ValueError: an unknown key (named, with the valid ones), or a ``"version"`` that is
            not a positive int or is newer than `CONFIG_VERSION`; invalid values raise from
            the config's own validation.
    """
    kind = cls.__name__
    data = dict(data)
    version = data.pop(VERSION_KEY, 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{kind} record version must be a positive int, got {version!r}")
    if version > CONFIG_VERSION:
        raise ValueError(
            f"{kind} record version {version} is newer than this anywidth reads "
            f"(up to {CONFIG_VERSION}); upgrade anywidth to load it"
        )
    check_keys(kind, data, [f.name for f in fields(cls)] + [VERSION_KEY])
    return cls(**data)


class Config:
    """The base of every config dataclass: one ``to_dict`` and ``from_dict`` for all.

    Derive a ``@dataclass`` from it; validate in ``__post_init__``.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class FoldConfig(Config):
        ...     layers: tuple[str, ...] = ()
        >>> FoldConfig.from_dict(FoldConfig(("fc",)).to_dict())
        FoldConfig(layers=['fc'])
    """

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict with the record ``"version"``; `from_dict` rebuilds it."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """The config a `to_dict` result describes (a missing ``"version"`` reads as 1).

        Raises:
            ValueError: an unknown key (named, with the valid ones), a record version newer
                than this anywidth reads, or an invalid value.
        """
        return config_from_dict(cls, data)
