"""anywidth.analysis: ReXNet's rank study, layer-rank diagnostics, channel configurations."""

# channels first: the model zoo imports it while anywidth.models is still loading.
from anywidth.analysis.channels import (  # isort: skip
    linear_channels,
    piecewise_channels,
    stagewise_channels,
)
from anywidth.analysis.rank_study import RankPoint, RankStudyConfig, RankStudyResult, rank_study
from anywidth.analysis.ranks import LayerRank, layer_ranks

__all__ = [
    "LayerRank",
    "RankPoint",
    "RankStudyConfig",
    "RankStudyResult",
    "layer_ranks",
    "linear_channels",
    "piecewise_channels",
    "rank_study",
    "stagewise_channels",
]
