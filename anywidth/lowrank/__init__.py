"""Low-rank compression: ALDS (a rank and a number of slices per layer) and uniform SVD.

Example:
    >>> from anywidth.lowrank import LowRankConfig, decompose
    >>> small, report = decompose(model, x, LowRankConfig(method="alds", target_params=0.5))
    >>> report.max_error, report.param_ratio
"""

from collections.abc import Mapping
from typing import Any

from torch import nn

from anywidth.lowrank._factors import LowRankConv2d, LowRankLinear
from anywidth.lowrank.decompose import (
    LayerReport,
    LowRankConfig,
    LowRankReport,
    apply_ranks,
    decompose,
)
from anywidth.train._replay import register_step_replayer

__all__ = [
    "LayerReport",
    "LowRankConfig",
    "LowRankConv2d",
    "LowRankLinear",
    "LowRankReport",
    "apply_ranks",
    "decompose",
]


def _replay_decompose(model: nn.Module, step: Mapping[str, Any]) -> nn.Module:
    """Shape the factored layers a saved record lists; the checkpoint's weights fill them."""
    plan = {name: (int(k), int(j)) for name, (k, j) in step["layers"].items()}
    return apply_ranks(model, plan, method=step.get("method", "lowrank"))


register_step_replayer("decompose", _replay_decompose)
