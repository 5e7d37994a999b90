"""Training an INN with a random width for every channel group at every step.

What makes width-random training stable (the authors' code diverged on a digits resnet20
because it folds BatchNorm away): the sandwich rule — every step runs the full width and the
smallest width, plus random widths in between; in-place distillation — narrower widths learn
from the full width's (detached) output rather than from the labels alone; BatchNorm kept
as a real layer that uses batch statistics in training and is recalibrated for inference.
An optional consistency term ties two random widths' outputs together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from anywidth._config import config_from_dict, config_to_dict
from anywidth.data import Loaders
from anywidth.integral.model import IntegralModel
from anywidth.measure import evaluate
from anywidth.train import TrainConfig, TrainResult, recalibrate_bn_, train_
from anywidth.train.tune import distillation_loss

__all__ = [
    "WidthTrainConfig",
    "random_plan",
    "recalibrate_integral_bn_",
    "train_integral_",
    "width_random_loss",
]


@dataclass
class WidthTrainConfig:
    """How widths are drawn and combined in each training step.

    Args:
        min_ratio: the smallest width of every group, as a fraction of its size.
        random_plans: random plans per step besides the full and the smallest width.
        distill: narrower widths learn from the full width's output (else from labels).
        temperature: distillation temperature.
        consistency: weight of a mean-squared consistency term between the logits of two
            random plans (0 disables it).
        recalibrate_batches: batches used to re-estimate BatchNorm statistics after each
            epoch, so that validation and later resampling start from fresh statistics.
        seed: seeds the width draws.

    Example:
        >>> WidthTrainConfig(min_ratio=0.3, random_plans=2)
    """

    min_ratio: float = 0.3
    random_plans: int = 1
    distill: bool = True
    temperature: float = 1.0
    consistency: float = 0.0
    recalibrate_batches: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.min_ratio <= 1:
            raise ValueError(f"WidthTrainConfig.min_ratio={self.min_ratio} must be in (0, 1]")
        if self.random_plans < 0:
            raise ValueError("WidthTrainConfig.random_plans must be >= 0")
        if self.temperature <= 0 or self.consistency < 0 or self.recalibrate_batches < 1:
            raise ValueError(
                "WidthTrainConfig needs temperature > 0, consistency >= 0 and "
                "recalibrate_batches >= 1"
            )

    def to_dict(self) -> dict:
        """A JSON-friendly dict with the record ``"version"``; `from_dict` rebuilds it."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WidthTrainConfig:
        """Rebuild from `to_dict` output; unknown keys or a newer version raise ValueError."""
        return config_from_dict(cls, data)


def smallest_plan(inn: IntegralModel, min_ratio: float) -> dict[str, int]:
    """Every resizable group at ``ceil(min_ratio * size)`` channels."""
    return {g.name: max(1, math.ceil(min_ratio * g.size)) for g in inn.resizable}


def random_plan(inn: IntegralModel, min_ratio: float, generator: torch.Generator) -> dict[str, int]:
    """A width drawn uniformly from ``[ceil(min_ratio * size), size]`` for every group."""
    plan = {}
    for g in inn.resizable:
        low = max(1, math.ceil(min_ratio * g.size))
        plan[g.name] = int(torch.randint(low, g.size + 1, (1,), generator=generator))
    return plan


def width_random_loss(inn: IntegralModel, config: WidthTrainConfig, label_smoothing: float = 0.0):
    """A ``loss_fn(model, images, labels) -> (loss, logits)`` for `anywidth.train.train_`.

    Full width on the labels; the smallest width and ``config.random_plans`` random widths
    on the full width's detached output (or the labels, without ``distill``); the loss is the
    sum over widths, as in slimmable training (the full width keeps its whole gradient).
    The logits returned (for accuracy) are the full width's.
    """
    generator = torch.Generator().manual_seed(config.seed)
    smallest = smallest_plan(inn, config.min_ratio)

    def loss_fn(model: nn.Module, images: torch.Tensor, labels: torch.Tensor):
        ce = nn.functional.cross_entropy
        with inn.at(None):
            full = model(images)  # (B, K)
        losses = [ce(full, labels, label_smoothing=label_smoothing)]
        teacher = full.detach()
        plans = [smallest] + [
            random_plan(inn, config.min_ratio, generator) for _ in range(config.random_plans)
        ]
        outputs = []
        for plan in plans:
            with inn.at(plan):
                logits = model(images)
            outputs.append(logits)
            if config.distill:
                losses.append(distillation_loss(logits, teacher, config.temperature))
            else:
                losses.append(ce(logits, labels, label_smoothing=label_smoothing))
        loss = torch.stack(losses).sum()
        if config.consistency > 0 and len(outputs) >= 2:
            loss = loss + config.consistency * (outputs[-1] - outputs[-2]).pow(2).mean()
        return loss, full

    return loss_fn


@torch.no_grad()
def recalibrate_integral_bn_(inn: IntegralModel, data: Iterable, batches: int = 20) -> None:
    """Re-estimate the INN's BatchNorm statistics at full width, in place.

    The statistics are measured on the full-width model (`IntegralModel.resample` at full
    width) and written back into the weight functions of the running statistics, where the
    full-width grid is the node grid (uniform grid, one node per channel). Other widths then
    sample these refreshed functions; recalibrate a resampled model for its exact values.
    """
    full = inn.resample(None)
    recalibrate_bn_(full, data, batches=batches)
    inn.load_running_stats_(dict(full.named_buffers()))


def train_integral_(
    inn: IntegralModel,
    loaders: Loaders,
    config: TrainConfig,
    width: WidthTrainConfig | None = None,
) -> TrainResult:
    """Train an INN in place with random widths (see `WidthTrainConfig`) through `train_`.

    After every epoch the BatchNorm statistics are recalibrated at full width and the
    full-width and smallest-width accuracies on the validation split are added to the
    epoch's record (``val_accuracy``, ``val_accuracy_smallest``).

    Returns:
        The `TrainResult` of the run.

    Example:
        >>> inn = to_integral(model, x)
        >>> train_integral_(inn, loaders, TrainConfig(epochs=5, lr=0.01), WidthTrainConfig())
        >>> small = recalibrate_bn(inn.resample(target_macs=0.25), loaders.train)
    """
    width = width or WidthTrainConfig()
    loss_fn = width_random_loss(inn, width, label_smoothing=config.label_smoothing)
    hooks = _discrete_pace_hooks(inn)
    smallest = smallest_plan(inn, width.min_ratio)

    def after_epoch(epoch: int, metrics: dict) -> None:
        recalibrate_integral_bn_(inn, loaders.train, batches=width.recalibrate_batches)
        metrics["val_accuracy"] = evaluate(inn, loaders.val)["accuracy"]
        narrow = inn.resample(smallest)
        recalibrate_bn_(narrow, loaders.train, batches=width.recalibrate_batches)
        metrics["val_accuracy_smallest"] = evaluate(narrow, loaders.val)["accuracy"]

    try:
        return train_(inn, loaders.train, config, loss_fn=loss_fn, on_epoch_end=after_epoch)
    finally:
        for hook in hooks:
            hook.remove()


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
