"""anywidth.analysis: layer-rank diagnostics and ReXNet's channel configurations.

The paper studies that use them (ReXNet's rank study and channel search) live in the
repository's top-level `studies` package, which calls this library.
"""

# channels first: the model zoo imports it while anywidth.models is still loading.
from anywidth.analysis.channels import (  # isort: skip
    linear_channels,
    piecewise_channels,
    stagewise_channels,
)
from anywidth.analysis.ranks import LayerRank, layer_ranks

__all__ = [
    "LayerRank",
    "layer_ranks",
    "linear_channels",
    "piecewise_channels",
    "stagewise_channels",
]
