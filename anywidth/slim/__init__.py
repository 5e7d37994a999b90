"""Slimmable networks: one set of weights, every width keeps the first channels.

`to_slimmable` sorts a trained model's channels by importance and wraps it as a
`SlimmableModel`; `train_any_width` trains it (or an INN) with random widths through the
one width-random loop of `anywidth.train.width`; `shrink` exports a plain smaller model
from either at a plan or budget (through `anywidth.graph.cut`), partition-tuned (INN) and
BatchNorm-recalibrated by default.

Example:
    >>> from anywidth.slim import shrink, train_any_width
    >>> slim, _ = train_any_width(model, x, loaders, TrainConfig(epochs=6, lr=0.02))
    >>> small, report = shrink(slim, loaders.train, target_macs=0.25)
"""

from anywidth.slim.export import ShrinkConfig, ShrinkReport, shrink
from anywidth.slim.model import SlimmableModel, to_slimmable
from anywidth.slim.training import train_any_width
from anywidth.train.width import WidthTrainConfig

__all__ = [
    "ShrinkConfig",
    "ShrinkReport",
    "SlimmableModel",
    "WidthTrainConfig",
    "shrink",
    "to_slimmable",
    "train_any_width",
]
