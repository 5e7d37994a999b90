"""One verb for every method: `compress(model, example_input, config, data)`.

`Budget` says how small (one meaning for every method), `compress` dispatches on the
config's type to the method that registered for it, and `CompressionReport` says what was
done, with `anywidth.measure.Report` measurements before and after.

Example:
    >>> import torch, anywidth
    >>> from anywidth import Budget, compress
    >>> from anywidth.lowrank import LowRankConfig
    >>> model = anywidth.create_model("tiny_resnet", num_classes=10)
    >>> x = torch.randn(1, 3, 8, 8)
    >>> small, report = compress(model, x, LowRankConfig(budget=Budget(params=0.5)))
    >>> report.method, report.met_budget
    ('lowrank', True)
"""

from anywidth.budget import Budget
from anywidth.compression.api import (
    Compressed,
    compress,
    handled_configs,
    reference_model,
    register_handler,
    train_batches,
)
from anywidth.compression.report import CompressionReport, SlowerWarning

__all__ = [
    "Budget",
    "Compressed",
    "CompressionReport",
    "SlowerWarning",
    "compress",
    "handled_configs",
    "reference_model",
    "register_handler",
    "train_batches",
]
