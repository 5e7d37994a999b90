"""How many λ nodes each resizable group of an `IntegralModel` gets.

Width plans themselves (shared with slimmable models) are made in `anywidth.width`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

from anywidth.graph import ChannelGroup, PlanError, lookup

__all__ = ["resolve_nodes"]


def resolve_nodes(
    groups: Iterable[ChannelGroup], nodes: float | Mapping[str, int] | None
) -> dict[str, int]:
    """Nodes per resizable group from `IntegralConfig.nodes`.

    Raises:
        PlanError: a pattern that matches no resizable group, or more nodes than channels.
    """
    groups = list(groups)
    free = [g for g in groups if not g.fixed]
    out = {g.name: g.size for g in free}
    if nodes is None:
        return out
    if isinstance(nodes, float):
        return {g.name: max(1, round(nodes * g.size)) for g in free}
    by_name = {g.name: g for g in free}
    for pattern, count in nodes.items():
        matched = fnmatch.filter(list(by_name), pattern)
        if not matched and fnmatch.filter([g.name for g in groups], pattern):
            raise PlanError(
                f"IntegralConfig.nodes pattern {pattern!r} matches only fixed channel groups, "
                "which stay discrete"
            )
        if not matched:
            lookup(by_name, pattern)  # raises with close names
        for name in matched:
            if count > by_name[name].size:
                raise PlanError(
                    f"IntegralConfig.nodes gives {count} nodes to channel group {name!r}, "
                    f"which has {by_name[name].size} channels; use at most that many"
                )
            out[name] = count
    return out
