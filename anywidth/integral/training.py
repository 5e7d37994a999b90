"""Training an INN with random widths: the shared loop of `anywidth.train.width`.

What makes width-random training stable (the authors' code diverged on a digits resnet20
because it folds BatchNorm away): the sandwich rule, in-place distillation, and BatchNorm
kept as a real layer that uses batch statistics in training and is recalibrated for
inference (see `anywidth.train.width`). The INN adds one thing: λ gradients are rescaled
to the discrete network's pace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from anywidth.data import Loaders
from anywidth.integral.model import IntegralModel
from anywidth.train import TrainConfig, TrainResult
from anywidth.train.task import CLASSIFICATION, Task
from anywidth.train.width import (
    WidthTrainConfig,
    random_plan,
    recalibrate_full_bn_,
    smallest_plan,
    train_width_random_,
    width_random_loss,
)

__all__ = [
    "WidthTrainConfig",
    "pace_groups",
    "random_plan",
    "recalibrate_integral_bn_",
    "smallest_plan",
    "train_integral_",
    "width_random_loss",
]


def recalibrate_integral_bn_(inn: IntegralModel, data: Iterable, batches: int = 20) -> None:
    """Re-estimate the INN's BatchNorm statistics at full width, in place.

    The statistics are measured on the full-width model (`IntegralModel.resample` at full
    width) and written back into the weight functions of the running statistics, where the
    full-width grid is the node grid (uniform grid, one node per channel). Other widths then
    sample these refreshed functions; recalibrate a resampled model for its exact values.
    """
    recalibrate_full_bn_(inn, data, batches=batches)


def train_integral_(
    inn: IntegralModel,
    loaders: Loaders,
    config: TrainConfig,
    width: WidthTrainConfig | None = None,
    task: Task | str = CLASSIFICATION,
) -> TrainResult:
    """Train an INN in place with random widths (see `WidthTrainConfig`).

    `anywidth.train.width.train_width_random_` with λ trained at the discrete network's
    pace: under SGD its gradients are rescaled by 1/q² (`_discrete_pace_hooks`); under
    Adam-type optimisers, which normalise gradients, each λ gets a learning rate divided by
    its mean quadrature weight instead (`pace_groups`). ``width.method`` is not read (this
    is the integral method). ``task`` chooses the loss and the validation metric
    (`anywidth.train.task.super_resolution` for super-resolution).

    Returns:
        The `TrainResult` of the run.

    Example:
        >>> inn = to_integral(model, x)
        >>> train_integral_(inn, loaders, TrainConfig(epochs=5, lr=0.01), WidthTrainConfig())
        >>> small = recalibrate_bn(inn.resample(target_macs=0.25), loaders.train)
    """
    hooks, groups = [], None
    if config.optimizer == "adamw":
        groups = pace_groups(inn)
        # The (m/n)² narrow-width weights match the SGD gradient rescaling below; Adam
        # normalises steps per parameter, and was measured (super-resolution) without them.
        width = dataclasses.replace(width or WidthTrainConfig(), narrow_pace=0.0)
    else:
        hooks = _discrete_pace_hooks(inn)
    try:
        return train_width_random_(inn, loaders, config, width, task, groups)
    finally:
        for hook in hooks:
            hook.remove()


def pace_groups(inn: IntegralModel) -> list[dict[str, Any]]:
    """Optimizer groups that move an INN's weights at the discrete network's pace under Adam.

    Each λ with an integrated dimension gets ``lr_scale = 1 / mean(q)`` (q its node
    quadrature weights, about 1/n), every other parameter ``lr_scale = 1``.
    """
    scales = inn.lam_scales()
    lams = dict(inn.named_lams())
    scaled = {id(lams[name]) for name in scales}
    groups = [
        {"params": [lams[name]], "lr_scale": float(1.0 / scale.float().mean())}
        for name, scale in scales.items()
    ]
    rest = [p for p in inn.parameters() if id(p) not in scaled]
    if rest:
        groups.append({"params": rest, "lr_scale": 1.0})
    return groups


def _discrete_pace_hooks(inn: IntegralModel) -> list:
    """Rescale λ gradients by 1/q² so λ trains at the pace of the discrete weights.

    λ = W / q with q ≈ 1/n along integrated dims, so plain gradient steps on λ would move
    the weights n² times too slowly (this is a reparametrisation: SGD on q·λ). Adam-type
    optimisers normalise gradients, so for them this changes nothing: train INNs with SGD.
    """
    lams = dict(inn.named_lams())
    hooks = []
    for name, scale in inn.lam_scales().items():
        factor = scale.pow(-2)
        hooks.append(lams[name].register_hook(lambda grad, f=factor: grad * f))
    return hooks
