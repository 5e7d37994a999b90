"""One verb for every method: `compress(model, example_input, config, data)`.

`Budget` says how small (one meaning for every method), `compress` dispatches on the
config's type to the method that registered for it, and `CompressionReport` says what was
done, with `anywidth.measure.Report` measurements before and after.

Example:
    >>> from anywidth import Budget, compress
    >>> from anywidth.pruning import PruneConfig
    >>> small, report = compress(model, x, PruneConfig(budget=Budget(macs=0.5)), loaders)
    >>> print(report)
"""

from anywidth.compression.api import (
    Compressed,
    compress,
    handled_configs,
    register_handler,
    train_batches,
)
from anywidth.compression.budget import Budget
from anywidth.compression.report import CompressionReport

__all__ = [
    "Budget",
    "Compressed",
    "CompressionReport",
    "compress",
    "handled_configs",
    "register_handler",
    "train_batches",
]
