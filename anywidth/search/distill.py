"""`distill_`: train a (found, smaller) student from a teacher through the training loop."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from anywidth.data import Loaders
from anywidth.search.config import DistillConfig
from anywidth.train import TrainConfig, TrainResult, train_
from anywidth.train.loop import EpochHook
from anywidth.train.losses import LossFn
from anywidth.train.losses import distillation_loss as kd_loss

__all__ = ["distill_", "distillation_loss", "distillation_loss_fn"]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    config: DistillConfig,
) -> torch.Tensor:
    """``(1 − w)·CE(z_s, y) + w·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))``, batch mean: the
    package's one distillation loss (`anywidth.train.losses.distillation_loss`) mixed with
    cross-entropy on the labels.

    Example:
        >>> s = torch.tensor([[2.0, 0.0]])
        >>> loss = distillation_loss(s, s, torch.tensor([0]), DistillConfig(4, weight=1.0))
        >>> loss.item()
        0.0
    """
    w = config.weight
    ce = F.cross_entropy(student_logits, labels)
    return (1 - w) * ce + w * kd_loss(student_logits, teacher_logits, config.temperature)


def distillation_loss_fn(teacher: nn.Module, config: DistillConfig) -> LossFn:
    """A training-loop loss: the student's logits scored against ``teacher``'s (eval mode,
    no gradients)."""

    def loss_fn(model: nn.Module, images: torch.Tensor, labels: torch.Tensor):
        logits = model(images)  # (B, K)
        with torch.no_grad():
            target = teacher(images)
        return distillation_loss(logits, target, labels, config), logits

    return loss_fn


def distill_(
    student: nn.Module,
    teacher: nn.Module,
    data: Loaders | Iterable,
    train_config: TrainConfig,
    config: DistillConfig | None = None,
    *,
    val_loader: Iterable | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    checkpoint_extra: dict[str, Any] | None = None,
    on_epoch_end: EpochHook | None = None,
) -> TrainResult:
    """Train ``student`` in place by knowledge distillation from ``teacher``.

    Runs `anywidth.train.train_` with the distillation loss, so checkpoints, exact resume,
    DDP and the schedule are those of every other training run. The teacher is not
    changed: a copy of it runs in eval mode on ``train_config.device``.

    Args:
        student: the model to train (e.g. `SearchResult.materialize`); changed in place.
        teacher: the unpruned model.
        data: a `Loaders` record or a train loader, as for `train_`.
        train_config: epochs, learning rate, schedule...
        config: temperature and weight of the distillation term; `DistillConfig()` by default.
        val_loader: evaluated after every epoch (default: ``data.val`` of a `Loaders`).
        checkpoint_dir: where `train_` writes ``last``/``best`` checkpoints.
        resume: continue from ``checkpoint_dir/last.safetensors``.
        checkpoint_extra: recorded in every checkpoint, next to ``{"distill": config}``.
        on_epoch_end: as for `train_` (``True`` stops the run).

    Returns:
        The `TrainResult` of the run.

    Example:
        >>> small = search_shape(model, x, loaders, SearchConfig(0.5)).materialize()
        >>> distill_(small, model, loaders, TrainConfig(epochs=10), checkpoint_dir="runs/s")
    """
    config = config or DistillConfig()
    frozen = copy.deepcopy(teacher).to(train_config.device).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    extra = {**(checkpoint_extra or {}), "distill": config.to_dict()}
    return train_(
        student,
        data,
        train_config,
        val_loader=val_loader,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        checkpoint_extra=extra,
        loss_fn=distillation_loss_fn(frozen, config),
        on_epoch_end=on_epoch_end,
    )
