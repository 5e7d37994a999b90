"""Low-rank compression: ALDS (a rank and a number of slices per layer) and uniform SVD.

Example:
    >>> from anywidth.lowrank import LowRankConfig, decompose
    >>> small, report = decompose(model, x, LowRankConfig(method="alds", target_params=0.5))
    >>> report.max_error, report.param_ratio
"""

from anywidth.lowrank._factors import LowRankConv2d, LowRankLinear
from anywidth.lowrank.decompose import (
    LayerReport,
    LowRankConfig,
    LowRankReport,
    apply_ranks,
    decompose,
)

__all__ = [
    "LayerReport",
    "LowRankConfig",
    "LowRankConv2d",
    "LowRankLinear",
    "LowRankReport",
    "apply_ranks",
    "decompose",
]
