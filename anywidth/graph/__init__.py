"""Trace a model, find its channel groups, and cut it to a width plan.

The piece every compression method stands on: `channel_groups` finds the coupled channels,
`cut` builds the smaller model, `plan_macs`/`plan_params` price a plan without building it,
and `width_agnostic` gives one model that runs at every width plan (tensors of any cut).

Example:
    >>> from anywidth.graph import channel_groups, cut, keep_first
    >>> x = torch.randn(1, 3, 32, 32)
    >>> groups = channel_groups(model, x)
    >>> half = {g.name: g.size // 2 for g in groups if not g.fixed}
    >>> small = cut(model, x, keep_first(groups, half))
"""

from anywidth.graph._types import ChannelGroup, GraphError, Member, PlanError
from anywidth.graph.budget import Budget, plan_for_budget
from anywidth.graph.cut import Cutter, cut
from anywidth.graph.dynamic import fix_unreadable, plan_shapes, width_agnostic
from anywidth.graph.export import export_onnx
from anywidth.graph.groups import (
    Analysis,
    analyze_channels,
    channel_groups,
    check_sizes,
    group_sizes,
    keep_first,
    lookup,
    match_names,
)
from anywidth.graph.layers import Channels, LayerCost, LayerIO, LayerSpec, register_layer
from anywidth.graph.permute import permute_channels
from anywidth.graph.plan import WidthCost, plan_macs, plan_params
from anywidth.graph.ranks import LayerRank, group_rank_ratios, output_ranks, rank_priority

# The specs of the torch.nn layers (conv, linear, norms...), registered like a user's own.
import anywidth.graph._layers_torch  # noqa: E402, F401  isort: skip

__all__ = [
    "Analysis",
    "Budget",
    "ChannelGroup",
    "Channels",
    "Cutter",
    "GraphError",
    "LayerCost",
    "LayerIO",
    "LayerRank",
    "LayerSpec",
    "Member",
    "PlanError",
    "WidthCost",
    "analyze_channels",
    "channel_groups",
    "check_sizes",
    "cut",
    "export_onnx",
    "fix_unreadable",
    "group_rank_ratios",
    "group_sizes",
    "keep_first",
    "lookup",
    "match_names",
    "output_ranks",
    "permute_channels",
    "plan_for_budget",
    "plan_macs",
    "plan_params",
    "plan_shapes",
    "rank_priority",
    "register_layer",
    "width_agnostic",
]
