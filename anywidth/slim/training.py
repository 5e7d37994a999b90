"""`train_any_width`: train once, ship at any width, by slicing or through an INN."""

from __future__ import annotations

import torch
from torch import nn

from anywidth.data import Loaders
from anywidth.integral import IntegralConfig, IntegralModel, to_integral
from anywidth.integral.training import train_integral_
from anywidth.slim.model import SlimmableModel, to_slimmable
from anywidth.train import TrainConfig, TrainResult
from anywidth.train.task import CLASSIFICATION, Task
from anywidth.train.width import WidthTrainConfig, train_width_random_

__all__ = ["train_any_width"]


def train_any_width(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    loaders: Loaders,
    config: TrainConfig,
    width: WidthTrainConfig | None = None,
    integral: IntegralConfig | None = None,
    task: Task | str = CLASSIFICATION,
) -> tuple[SlimmableModel | IntegralModel, TrainResult]:
    """Make a trained model run at any width, and train it with random widths.

    ``width.method="slice"``: `to_slimmable` (channels sorted by importance, each width
    keeps the first ones); ``"integral"``: `anywidth.integral.to_integral` with ``integral``
    (each width samples the weight functions). Both are then trained by the same loop,
    `anywidth.train.width.train_width_random_` (sandwich rule, in-place distillation); the
    INN with its λ gradients rescaled to the discrete network's pace.

    Args:
        model: the trained network (not changed).
        example_input: a tensor (or tuple) of the shape the model expects.
        loaders: the data (``train`` trains and recalibrates, ``val`` is reported).
        config: the training run (SGD).
        width: the width sampling and the method; default ``WidthTrainConfig()`` (slice).
        integral: the INN's conversion options (``method="integral"`` only).
        task: the loss and the validation metric: `anywidth.train.task.CLASSIFICATION`,
            or ``super_resolution(scale)`` (see `anywidth.train.width.width_random_loss`).

    Returns:
        ``(width model, training record)``; ``width_model.resample(target_macs=0.25)`` is
        a plain smaller model (recalibrate its BatchNorm before use).

    Example:
        >>> slim, result = train_any_width(model, x, loaders, TrainConfig(epochs=6, lr=0.02))
        >>> small = recalibrate_bn(slim.resample(target_macs=0.25), loaders.train)
    """
    width = width or WidthTrainConfig()
    if width.method == "slice":
        if integral is not None:
            raise ValueError("train_any_width: integral= applies only to method='integral'")
        wide = to_slimmable(model, example_input)
        return wide, train_width_random_(wide, loaders, config, width, task)
    inn = to_integral(model, example_input, integral or IntegralConfig())
    return inn, train_integral_(inn, loaders, config, width, task)
