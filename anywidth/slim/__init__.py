"""Slimmable networks: one set of weights, every width keeps the first channels.

`to_slimmable` sorts a trained model's channels by importance and wraps it as a
`SlimmableModel`; `train_any_width` trains it (or an INN) with random widths through the
one width-random loop of `anywidth.train.width`; `SlimmableModel.resample` exports a plain
smaller model at a plan or budget through `anywidth.graph.cut`.

Example:
    >>> from anywidth.slim import train_any_width
    >>> slim, _ = train_any_width(model, x, loaders, TrainConfig(epochs=6, lr=0.02))
    >>> small = recalibrate_bn(slim.resample(target_macs=0.25), loaders.train)
"""

from anywidth.slim.model import SlimmableModel, to_slimmable
from anywidth.slim.training import train_any_width
from anywidth.train.width import WidthTrainConfig

__all__ = ["SlimmableModel", "WidthTrainConfig", "to_slimmable", "train_any_width"]
