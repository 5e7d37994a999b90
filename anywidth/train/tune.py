"""A few optimiser steps on a chosen set of parameters, everything else frozen.

The shared loop behind partition tuning (INN) and its equal-budget control (BatchNorm
γ/β tuning of a pruned model): both spend the same steps on the same loss, so comparing
them compares what is tuned, not how hard.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from anywidth._progress import progress
from anywidth.measure import eval_mode
from anywidth.train.distributed import (
    all_sum,
    collective,
    init_distributed,
    shard_train_loader,
    wrap_ddp,
)
from anywidth.train.losses import class_cross_entropy

__all__ = ["tune_", "distillation_loss"]


def distillation_loss(
    logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(teacher ‖ student) on temperature-softened outputs, times T² (Hinton et al.)."""
    t = temperature
    log_student = torch.log_softmax(logits / t, dim=1)  # (B, K)
    log_teacher = torch.log_softmax(teacher / t, dim=1)  # (B, K)
    kl = nn.functional.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
    return kl * t * t


def _criteria(loss: str, temperature: float):
    """``(fit to targets, follow a teacher)`` for a tuning loss kind."""
    if loss in ("l1", "l2"):
        criterion = nn.functional.l1_loss if loss == "l1" else nn.functional.mse_loss
        return criterion, criterion
    if loss != "cross_entropy":
        raise ValueError(f"tuning loss must be 'cross_entropy', 'l1' or 'l2', got {loss!r}")

    def follow(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return distillation_loss(logits, teacher, temperature)

    return class_cross_entropy, follow


def _batch_norm_train_rest_eval(model: nn.Module) -> None:
    """BatchNorm uses batch statistics (as after recalibration); dropout stays off.

    A model that hides its layers (an `anywidth.integral.IntegralModel`) does this through
    its own ``batch_norm_train_()``.
    """
    model.eval()
    if callable(getattr(model, "batch_norm_train_", None)):
        model.batch_norm_train_()
        return
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()


def tune_(
    model: nn.Module,
    params: Sequence[nn.Parameter],
    data: Iterable,
    *,
    steps: int,
    lr: float = 1e-2,
    teacher: nn.Module | None = None,
    temperature: float = 1.0,
    loss: str = "cross_entropy",
) -> list[float]:
    """Optimise only ``params`` for ``steps`` Adam steps, in place; returns the losses.

    The loss is cross-entropy on the labels, plus distillation from ``teacher`` (run in
    eval mode, no gradients) when given; with ``loss="l1"`` or ``"l2"`` (image-to-image
    models) that image loss against the targets, plus against the teacher's output.
    BatchNorm layers run on batch statistics and dropout is off; the data loader is
    cycled if it has fewer batches than ``steps``.
    Parameters not in ``params`` get no gradient and are left unchanged, and so are the
    BatchNorm running statistics (recalibrate them afterwards for the new weights).
    Every module of ``model`` and ``teacher`` gets its own training flag back afterwards.

    Under ``torchrun`` the steps run with `DistributedDataParallel`: each of ``N``
    processes takes ``batch_size / N`` samples of every batch (a `DistributedSampler` over
    ``data``, which must then be a `DataLoader`), gradients are averaged, every rank ends
    with the same parameters, and the losses returned are the mean over the ranks.

    Args:
        model: the model to tune (its ``params`` change in place).
        params: the parameters to optimise.
        data: batches of ``(images, labels)``.
        steps: number of optimiser steps.
        lr: Adam learning rate.
        teacher: an optional model whose outputs the tuned model should match.
        temperature: distillation temperature.
        loss: ``"cross_entropy"`` (classifiers), ``"l1"`` or ``"l2"`` (image targets).

    Example:
        >>> bn = [p for m in small.modules() if isinstance(m, nn.BatchNorm2d)
        ...       for p in m.parameters()]
        >>> tune_(small, bn, loaders.train, steps=100, teacher=model)
    """
    params = list(params)
    if steps < 1:
        raise ValueError(f"tune_ needs steps >= 1, got {steps}")
    if not params:
        raise ValueError("tune_ got no parameters to optimise")
    fit, follow = _criteria(loss, temperature)
    chosen = {id(p) for p in params}
    saved = {id(p): p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    teacher_mode = eval_mode(teacher) if teacher is not None else contextlib.nullcontext()
    where = init_distributed()
    if where.active:
        data = shard_train_loader(data, where, seed=0)
    with eval_mode(model), teacher_mode, collective("tuning"):
        try:
            _batch_norm_train_rest_eval(model)
            device = next(iter(params)).device
            net = wrap_ddp(model, where, device)  # wraps the parameters that require grad
            batches = itertools.islice(itertools.cycle(data), steps)
            for images, labels in progress(batches, desc="tuning", total=steps):
                outputs = net(images)
                total = fit(outputs, labels)
                if teacher is not None:
                    with torch.no_grad():
                        target = teacher(images)
                    total = total + follow(outputs, target)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                losses.append(total.detach())
            losses = (all_sum(torch.stack(losses)) / where.world_size).tolist()
        finally:
            with torch.no_grad():
                for name, value in model.named_buffers():
                    value.copy_(buffers[name])
            for p in model.parameters():
                p.requires_grad_(saved.get(id(p), True))
    return losses
