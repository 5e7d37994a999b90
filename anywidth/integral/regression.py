"""Width-random INN training for image-to-image tasks (super-resolution), through `train_`.

The classifier recipe (`anywidth.integral.training`) distils narrow widths from the full
width's logits with a KL term; an image model's outputs are images, so here every width is
scored with an L1 (or L2) image loss, narrow widths against the full width's detached output
(in-place distillation) or against the targets. The seed's consistency objective
``|Net(X, P1) − Net(X, P2)|`` between two random partitions' sizes is an option.

EDSR and SRCNN train with Adam, which normalises gradients: the 1/q² gradient rescaling
that keeps SGD on λ at the discrete pace does nothing there, so `pace_groups` gives each λ
a learning rate divided by its mean quadrature weight instead.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from anywidth.data import Loaders
from anywidth.integral.model import IntegralModel
from anywidth.integral.training import WidthTrainConfig, random_plan, smallest_plan
from anywidth.integral.tuning import TuneConfig, _trainable_grids_
from anywidth.metrics import Metric
from anywidth.train import TrainConfig, TrainResult, train_
from anywidth.train.losses import LOSS_KINDS, LossFn
from anywidth.train.width import step_seed

__all__ = [
    "pace_groups",
    "train_integral_images_",
    "tune_partition_images",
    "width_random_image_loss",
]


def width_random_image_loss(
    inn: IntegralModel, config: WidthTrainConfig, kind: str = "l1"
) -> LossFn:
    """A ``loss_fn(model, inputs, targets) -> (loss, outputs)`` for image targets.

    Full width against the targets; the smallest width and ``config.random_plans`` random
    widths against the full width's detached output (``distill``) or the targets; plus
    ``config.consistency ·`` mean ``|out(P1) − out(P2)|`` of the last two plans. The
    outputs returned are the full width's. Widths are re-seeded every step (``begin_step``,
    called by `train_`), as in `anywidth.train.width.width_random_loss`.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"image loss must be one of {LOSS_KINDS}, got {kind!r}")
    criterion = F.l1_loss if kind == "l1" else F.mse_loss
    generator = torch.Generator().manual_seed(config.seed)
    smallest = smallest_plan(inn, config.min_ratio)

    def loss_fn(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
        with inn.at(None):
            full = model(inputs)  # (B, C, H, W)
        losses = [criterion(full, targets)]
        reference = full.detach() if config.distill else targets
        plans = [smallest] + [
            random_plan(inn, config.min_ratio, generator) for _ in range(config.random_plans)
        ]
        outputs = []
        for plan in plans:
            with inn.at(plan):
                outputs.append(model(inputs))
            losses.append(criterion(outputs[-1], reference))
        loss = torch.stack(losses).sum()
        if config.consistency > 0 and len(outputs) >= 2:
            loss = loss + config.consistency * (outputs[-1] - outputs[-2]).abs().mean()
        return loss, full

    def begin_step(step: int) -> None:
        generator.manual_seed(step_seed(config.seed, step))

    loss_fn.begin_step = begin_step
    return loss_fn


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


def train_integral_images_(
    inn: IntegralModel,
    loaders: Loaders,
    config: TrainConfig,
    metric: Metric,
    width: WidthTrainConfig | None = None,
    kind: str = "l1",
) -> TrainResult:
    """Train an image-to-image INN in place with random widths, through `train_`.

    With ``config.optimizer == "adamw"`` the λ tensors get `pace_groups`; with SGD the
    gradients are rescaled instead (as for classifiers). Validation scores the full width.

    Example:
        >>> inn = to_integral(create_model("srcnn"), low_res[:1])
        >>> train_integral_images_(inn, loaders, TrainConfig(optimizer="adamw", lr=1e-3,
        ...                        weight_decay=0), psnr_metric(3), WidthTrainConfig())
    """
    width = width or WidthTrainConfig(min_ratio=0.5)
    loss_fn = width_random_image_loss(inn, width, kind)
    hooks, groups = [], None
    if config.optimizer == "adamw":
        groups = pace_groups(inn)
    else:
        lams = dict(inn.named_lams())
        for name, scale in inn.lam_scales().items():
            factor = scale.pow(-2)
            hooks.append(lams[name].register_hook(lambda grad, f=factor: grad * f))
    try:
        return train_(
            inn, loaders.train, config, val_loader=loaders.val, loss_fn=loss_fn,
            metric=metric, param_groups=groups,
        )  # fmt: skip
    finally:
        for hook in hooks:
            hook.remove()


def tune_partition_images(
    inn: IntegralModel,
    plan: dict[str, int] | float,
    data: Iterable,
    config: TuneConfig | None = None,
    kind: str = "l1",
) -> IntegralModel:
    """A copy of an image-to-image ``inn`` whose partitions are tuned for running at ``plan``.

    Weights stay frozen; only the grids move, for ``config.steps`` Adam steps on the image
    loss against the targets (plus, with ``config.distill``, against the full-width INN's
    output). The image counterpart of `anywidth.integral.tune_partition` (these models have
    no BatchNorm). The caller's INN is not changed.
    """
    config = config or TuneConfig()
    criterion = F.l1_loss if kind == "l1" else F.mse_loss
    sizes = inn.width_plan(plan)
    tuned = copy.deepcopy(inn)
    _trainable_grids_(tuned)
    tuned.config = dataclasses.replace(tuned.config, partition="trainable")
    optimizer = torch.optim.Adam(list(tuned.grid_parameters()), lr=config.lr)
    batches = itertools.cycle(data)
    with tuned.at(sizes):
        for _ in range(config.steps):
            inputs, targets = next(batches)
            outputs = tuned(inputs)  # (B, C, H, W)
            loss = criterion(outputs, targets)
            if config.distill:
                with torch.no_grad(), inn.at(None):
                    teacher = inn(inputs)
                loss = loss + criterion(outputs, teacher)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return tuned.eval()
