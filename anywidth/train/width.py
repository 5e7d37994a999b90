"""Width-random training: one loop for every model that runs at any width plan.

A *width model* is an `anywidth.width.WidthModel`: `anywidth.slim.SlimmableModel` (each
width keeps the first channels) or `anywidth.integral.IntegralModel` (each width samples
weight functions). Training uses its ``resizable`` groups, ``at(plan)``, ``resample(plan)``,
``load_running_stats_(buffers)`` and ``loss_weight(plan, power)``, and is the same for both:

- the sandwich rule: every step runs the full width and the smallest width, plus random
  widths in between;
- in-place distillation: narrower widths learn from the full width's (detached) output;
- BatchNorm normalises with batch statistics in training (narrow widths' running-statistics
  updates are discarded) and is recalibrated, per plan, for inference.

Widths are drawn as in universally slimmable networks: one ratio per plan, the same for
every group (``sampling="shared"``), or independently per group (``"per-group"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from anywidth._config import Config
from anywidth.data import Loaders
from anywidth.train.config import TrainConfig
from anywidth.train.distributed import broadcast_buffers_, evaluate_sharded
from anywidth.train.loop import TrainResult, train_
from anywidth.train.losses import LossFn
from anywidth.train.recalibrate import recalibrate_bn_
from anywidth.train.task import CLASSIFICATION, Task, as_task
from anywidth.width import WidthModel

__all__ = [
    "METHODS",
    "SAMPLINGS",
    "WidthTrainConfig",
    "random_plan",
    "recalibrate_full_bn_",
    "smallest_plan",
    "step_seed",
    "train_width_random_",
    "width_random_loss",
]

METHODS: tuple[str, ...] = ("slice", "integral")
SAMPLINGS: tuple[str, ...] = ("shared", "per-group")


@dataclass
class WidthTrainConfig(Config):
    """How widths are drawn and combined in each training step.

    Args:
        method: what a width is: ``"slice"`` (keep the first, most important channels:
            slimmable training) or ``"integral"`` (sample the INN's weight functions);
            read by `anywidth.slim.train_any_width`, which builds the model.
        min_ratio: the smallest width of every group, as a fraction of its size.
        random_plans: random plans per step besides the full and the smallest width.
        sampling: ``"shared"``: one ratio drawn per plan for every group (US-Nets);
            ``"per-group"``: an independent width for every group.
        distill: narrower widths learn from the full width's output (else from labels).
        temperature: distillation temperature.
        consistency: weight of a mean-squared consistency term between the logits of two
            random plans (0 disables it).
        narrow_pace: weight each narrower width's loss by the model's
            ``loss_weight(plan, narrow_pace)`` (the INN: (m/n)^narrow_pace; 2 trains every
            width at its discrete pace under the λ-gradient rescaling, 1 the shared
            full-width weights, 0 turns it off; see `IntegralModel.loss_weight`). A
            slimmable model's weight is 1, so it is unaffected;
            `anywidth.integral.train_integral_` turns it off under Adam
            (``optimizer="adamw"``), which rescales steps itself.
        recalibrate_batches: batches used to re-estimate BatchNorm statistics after each
            epoch, so that validation and later resampling start from fresh statistics.
        seed: seeds the width draws.

    Example:
        >>> WidthTrainConfig(method="slice", min_ratio=0.3, random_plans=1)
    """

    method: str = "slice"
    min_ratio: float = 0.3
    random_plans: int = 1
    sampling: str = "shared"
    distill: bool = True
    temperature: float = 1.0
    consistency: float = 0.0
    narrow_pace: float = 2.0
    recalibrate_batches: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"WidthTrainConfig.method={self.method!r}; use one of {list(METHODS)}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(
                f"WidthTrainConfig.sampling={self.sampling!r}; use one of {list(SAMPLINGS)}"
            )
        if not 0 < self.min_ratio <= 1:
            raise ValueError(f"WidthTrainConfig.min_ratio={self.min_ratio} must be in (0, 1]")
        if not self.narrow_pace >= 0:
            raise ValueError(f"WidthTrainConfig.narrow_pace={self.narrow_pace} must be >= 0")
        if self.random_plans < 0:
            raise ValueError("WidthTrainConfig.random_plans must be >= 0")
        if self.temperature <= 0 or self.consistency < 0 or self.recalibrate_batches < 1:
            raise ValueError(
                "WidthTrainConfig needs temperature > 0, consistency >= 0 and "
                "recalibrate_batches >= 1"
            )


def _low(size: int, min_ratio: float) -> int:
    return max(1, math.ceil(min_ratio * size))


def _check(model: object, where: str) -> None:
    if not isinstance(model, WidthModel):
        raise TypeError(
            f"{where}: model must be an anywidth.width.WidthModel, got {type(model).__name__}; "
            "make one with anywidth.slim.to_slimmable(model, x) or "
            "anywidth.integral.to_integral(model, x)"
        )


def smallest_plan(model: WidthModel, min_ratio: float) -> dict[str, int]:
    """Every resizable group of a width model at ``ceil(min_ratio * size)`` channels."""
    return {g.name: _low(g.size, min_ratio) for g in model.resizable}


def random_plan(
    model: WidthModel, min_ratio: float, generator: torch.Generator, sampling: str = "per-group"
) -> dict[str, int]:
    """A random plan between the smallest width and the full width.

    ``"per-group"``: every group's width uniform in ``[ceil(min_ratio * size), size]``.
    ``"shared"``: one ratio ``r`` uniform in ``[min_ratio, 1]``, every group at
    ``round(r * size)`` (clamped to the same range), as universally slimmable networks do.
    """
    if sampling == "shared":
        r = min_ratio + (1 - min_ratio) * float(torch.rand((), generator=generator))
        return {
            g.name: min(g.size, max(_low(g.size, min_ratio), round(r * g.size)))
            for g in model.resizable
        }
    plan = {}
    for g in model.resizable:
        low = _low(g.size, min_ratio)
        plan[g.name] = int(torch.randint(low, g.size + 1, (1,), generator=generator))
    return plan


def step_seed(seed: int, step: int) -> int:
    """The seed of step ``step``'s width draws: each step its own, independent of how
    many processes train or where the run was resumed."""
    return (seed << 32) + step


def width_random_loss(
    model: WidthModel,
    config: WidthTrainConfig,
    label_smoothing: float = 0.0,
    task: Task | str = CLASSIFICATION,
) -> LossFn:
    """A ``loss_fn(module, inputs, targets) -> (loss, outputs)`` for `anywidth.train.train_`.

    Full width on the targets; the smallest width and ``config.random_plans`` random widths
    on the full width's detached output (or the targets, without ``distill``); the loss is
    the sum over widths, as in slimmable training (the full width keeps its whole gradient).
    The outputs returned (for the metric) are the full width's.

    Args:
        model: the `anywidth.width.WidthModel`.
        config: how widths are drawn and combined.
        label_smoothing: for classification.
        task: the `anywidth.train.task.Task`: classification (narrow widths distil the
            full width's logits with a KL term at ``config.temperature``) or
            super-resolution (every width is scored with the image loss, narrow widths
            against the full width's output); the consistency term is its ``gap``: the
            mean squared difference of two plans' logits, or the mean absolute difference of
            two plans' images (the INN seed's ``|Net(X, P1) − Net(X, P2)|``). A loss string
            (``"cross_entropy"``, ``"l1"``, ``"l2"``) still names one.

    Widths are drawn from one generator; `train_` calls the loss's ``begin_step(step)``
    before each batch, which re-seeds it from ``(config.seed, step)``: every process of a
    DDP run draws the same widths in a step (so their gradients are of the same
    sub-networks), and a resumed run draws what the uninterrupted one did.

    Raises:
        TypeError: ``model`` is not a `anywidth.width.WidthModel`.
        ValueError: an unknown ``task`` string.
    """
    _check(model, "width_random_loss")
    task = as_task(task)
    generator = torch.Generator().manual_seed(config.seed)
    smallest = smallest_plan(model, config.min_ratio)
    weigh = model.loss_weight if config.narrow_pace else None
    power = config.narrow_pace

    def fit(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return task.fit(outputs, targets, label_smoothing)

    def follow(outputs: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return task.follow(outputs, teacher, config.temperature)

    def begin_step(step: int) -> None:
        generator.manual_seed(step_seed(config.seed, step))

    def loss_fn(module: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
        with model.at(None):
            full = module(inputs)  # (B, K) logits or (B, C, H, W) images
        losses = [fit(full, targets)]
        teacher = full.detach()
        plans = [smallest] + [
            random_plan(model, config.min_ratio, generator, config.sampling)
            for _ in range(config.random_plans)
        ]
        outputs = []
        for plan in plans:
            with model.at(plan):
                outputs.append(module(inputs))
            narrow = follow(outputs[-1], teacher) if config.distill else fit(outputs[-1], targets)
            losses.append(narrow if weigh is None else weigh(plan, power) * narrow)
        total = torch.stack(losses).sum()
        if config.consistency > 0 and len(outputs) >= 2:
            total = total + config.consistency * task.gap(outputs[-1], outputs[-2])
        return total, full

    loss_fn.begin_step = begin_step
    return loss_fn


@torch.no_grad()
def recalibrate_full_bn_(model: WidthModel, data: Iterable, batches: int = 20) -> None:
    """Re-estimate a width model's full-width BatchNorm statistics, in place.

    Measured on ``model.resample(None)`` and written back with ``load_running_stats_``;
    other widths start from these (recalibrate a resampled model for its exact values).
    In a multi-process run every rank must call this with the same ``data``; the result
    is rank 0's, broadcast to the others.
    """
    full = model.resample(None)
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in full.modules()):
        return  # e.g. EDSR, SRCNN: no statistics to refresh
    recalibrate_bn_(full, data, batches=batches)
    broadcast_buffers_(full, "sharing the recalibrated BatchNorm statistics")
    model.load_running_stats_(dict(full.named_buffers()))


def train_width_random_(
    model: WidthModel,
    loaders: Loaders,
    config: TrainConfig,
    width: WidthTrainConfig | None = None,
    task: Task | str = CLASSIFICATION,
    param_groups: list[dict[str, Any]] | None = None,
) -> TrainResult:
    """Train a width model in place with random widths (see `WidthTrainConfig`).

    After every epoch the BatchNorm statistics (if any) are recalibrated at full width and
    the full-width and smallest-width scores on the validation split are added to the
    epoch's record (``val_<metric>``, ``val_<metric>_smallest``, e.g. ``val_accuracy``); its
    ``seconds`` count the training steps only (not recalibration or validation).

    Args:
        model: the `anywidth.width.WidthModel` (`anywidth.slim.SlimmableModel` or an INN);
            trained in place.
        loaders: ``train`` trains and recalibrates, ``val`` is scored after every epoch.
        config: the training run.
        width: how widths are drawn; default ``WidthTrainConfig()``.
        task: the loss (see `width_random_loss`) and what validation scores
            (`anywidth.train.task.super_resolution` for PSNR).
        param_groups: optimizer groups, passed to `train_` (e.g. per-group ``lr_scale``).

    Under ``torchrun`` this is DDP training through `train_`: every rank draws the same
    widths in a step; BatchNorm is recalibrated by every rank on the same batches of the
    whole (unsharded) train loader, so the statistics are those one process would get,
    whatever the number of processes, and rank 0's are broadcast to guard against
    non-deterministic kernels; validation is split over the ranks and summed.

    Returns:
        The `TrainResult` of the run.

    Raises:
        TypeError: ``model`` is not a `anywidth.width.WidthModel`.

    Example:
        >>> slim = to_slimmable(model, x)
        >>> train_width_random_(slim, loaders, TrainConfig(epochs=5), WidthTrainConfig())
        >>> small = recalibrate_bn(slim.resample(target_macs=0.25), loaders.train)
    """
    _check(model, "train_width_random_")
    width = width or WidthTrainConfig()
    task = as_task(task)
    metric = task.metric
    loss_fn = width_random_loss(model, width, config.label_smoothing, task)
    smallest = smallest_plan(model, width.min_ratio)
    batches = width.recalibrate_batches

    def after_epoch(epoch: int, metrics: dict) -> None:
        recalibrate_full_bn_(model, loaders.train, batches=batches)
        full = evaluate_sharded(model.resample(None), loaders.val, metric=metric)
        metrics[f"val_{metric.name}"] = full[metric.name]
        narrow = model.resample(smallest)
        recalibrate_bn_(narrow, loaders.train, batches=batches)
        broadcast_buffers_(narrow, "sharing the smallest width's BatchNorm statistics")
        narrow_score = evaluate_sharded(narrow, loaders.val, metric=metric)
        metrics[f"val_{metric.name}_smallest"] = narrow_score[metric.name]

    return train_(
        model, loaders.train, config, loss_fn=loss_fn, metric=metric,
        param_groups=param_groups, on_epoch_end=after_epoch,
    )  # fmt: skip
