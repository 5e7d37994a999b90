"""`IntegralConfig`: how a trained network becomes an integral neural network."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anywidth._config import Config
from anywidth.integral.quadrature import QUADRATURE_RULES

__all__ = ["IntegralConfig", "PARTITIONS", "NODE_INITS"]

PARTITIONS: tuple[str, ...] = ("uniform", "trainable")
NODE_INITS: tuple[str, ...] = ("lstsq", "sample")


@dataclass
class IntegralConfig(Config):
    """Options of `to_integral`; validated on construction, round-trips through dicts.

    Args:
        rule: quadrature along integrated dimensions: ``"trapezoid"`` (default),
            ``"rectangle"`` or ``"simpson"``.
        nodes: parameter nodes of each group's weight functions. ``None``: the original
            width (conversion is exact). A float in (0, 1]: that fraction of every
            resizable group's width (rounded, at least 1), which compresses the stored
            parameters. A dict ``{group name or glob: int}``: per group (between 1 and the
            group's width); groups it does not match keep their width.
        nodes_init: how λ is fitted when a group has fewer nodes than channels. ``"lstsq"``
            (default): least squares, so the function sampled back at the original channel
            coordinates is as close as possible to the discrete weights (separable: the
            pseudo-inverse of the interpolation matrix along each dimension).
            ``"sample"``: λ is the cubic interpolant of the discrete weights read at the
            node coordinates (cheaper, a little less accurate).
        partition: ``"uniform"`` (linspace points) or ``"trainable"`` (one trainable
            monotone map of [0, 1] per group; see `anywidth.integral.grid`).
        reorder: sort each group's channels by a short open path through their weights
            (INN-init) before converting, so that weights vary smoothly.
        fixed: group names or globs never made continuous (kept whole and discrete).
        seed: seed of the channel-ordering search.
        order_time_limit: optional seconds per group for the ordering search (None: run
            the local search to convergence).

    Example:
        >>> IntegralConfig(rule="simpson", nodes=0.5, fixed=["fc:*"])
    """

    rule: str = "trapezoid"
    nodes: float | dict[str, int] | None = None
    nodes_init: str = "lstsq"
    partition: str = "uniform"
    reorder: bool = True
    fixed: tuple[str, ...] = ()
    seed: int = 0
    order_time_limit: float | None = None

    def __post_init__(self) -> None:
        _choice("rule", self.rule, QUADRATURE_RULES)
        _choice("nodes_init", self.nodes_init, NODE_INITS)
        _choice("partition", self.partition, PARTITIONS)
        self.nodes = _check_nodes(self.nodes)
        if isinstance(self.fixed, str):
            self.fixed = (self.fixed,)
        self.fixed = tuple(self.fixed)
        if not all(isinstance(p, str) and p for p in self.fixed):
            raise ValueError(f"IntegralConfig.fixed must be group names or globs, got {self.fixed}")
        if not isinstance(self.reorder, bool):
            raise ValueError(f"IntegralConfig.reorder must be True or False, got {self.reorder!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"IntegralConfig.seed must be an int, got {self.seed!r}")
        if self.order_time_limit is not None and not self.order_time_limit > 0:
            raise ValueError(
                f"IntegralConfig.order_time_limit must be positive or None, got "
                f"{self.order_time_limit}"
            )


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"IntegralConfig.{name}={value!r}; use one of {list(options)}")


def _check_nodes(nodes: Any) -> float | dict[str, int] | None:
    if nodes is None:
        return None
    if isinstance(nodes, Mapping):
        out = {}
        for key, value in nodes.items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"IntegralConfig.nodes entries must be {{group name or glob: int}}, got "
                    f"{key!r}: {value!r}"
                )
            if value < 1:
                raise ValueError(f"IntegralConfig.nodes[{key!r}]={value}; a group needs >= 1 node")
            out[key] = value
        return out
    if isinstance(nodes, (int, float)) and not isinstance(nodes, bool) and 0 < nodes <= 1:
        return float(nodes)
    raise ValueError(
        f"IntegralConfig.nodes={nodes!r}; use None (original widths), a fraction in (0, 1], "
        "or a dict {group name or glob: number of nodes}"
    )
