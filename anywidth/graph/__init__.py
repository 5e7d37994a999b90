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
from anywidth.graph.cut import cut
from anywidth.graph.dynamic import fix_unreadable, plan_shapes, width_agnostic
from anywidth.graph.export import export_onnx
from anywidth.graph.groups import channel_groups, group_sizes, keep_first
from anywidth.graph.permute import permute_channels
from anywidth.graph.plan import WidthCost, plan_macs, plan_params

__all__ = [
    "ChannelGroup",
    "GraphError",
    "Member",
    "PlanError",
    "WidthCost",
    "channel_groups",
    "cut",
    "export_onnx",
    "fix_unreadable",
    "group_sizes",
    "keep_first",
    "permute_channels",
    "plan_macs",
    "plan_params",
    "plan_shapes",
    "width_agnostic",
]
