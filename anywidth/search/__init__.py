"""TAS: search layer widths and block depths under a MAC target, then distil the result.

`search_shape` learns a distribution over candidate widths for every channel group and over
the number of blocks of every run of skippable blocks, and returns the argmax shape;
`SearchResult.materialize` builds it as a smaller model of the user's class; `distill_`
trains it from the unpruned model through the training loop.

Example:
    >>> result = search_shape(model, x, loaders, SearchConfig(target_macs=0.5, epochs=10))
    >>> small = result.materialize()
    >>> distill_(small, model, loaders, TrainConfig(epochs=10), DistillConfig())
"""

from anywidth.search.config import DistillConfig, SearchConfig
from anywidth.search.distill import distill_, distillation_loss
from anywidth.search.ops import cost_loss, cwi, gumbel_softmax, pick
from anywidth.search.search import SearchResult, search_shape

__all__ = [
    "DistillConfig",
    "SearchConfig",
    "SearchResult",
    "cost_loss",
    "cwi",
    "distill_",
    "distillation_loss",
    "gumbel_softmax",
    "pick",
    "search_shape",
]
