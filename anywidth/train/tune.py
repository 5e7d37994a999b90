"""A few optimiser steps on a chosen set of parameters, everything else frozen: the
frozen-subset step (`anywidth.train.steps.frozen_subset_step`) in the one loop.

The shared loop behind partition tuning (INN) and its equal-budget control (BatchNorm
γ/β tuning of a pruned model): both spend the same steps on the same loss, so comparing
them compares what is tuned, not how hard.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from anywidth.measure import eval_mode
from anywidth.train.distributed import (
    all_sum,
    collective,
    init_distributed,
    shard_train_loader,
    wrap_ddp,
)
from anywidth.train.loop import cycle, run_steps_
from anywidth.train.steps import frozen_subset_step
from anywidth.train.task import CLASSIFICATION, Task, as_task

__all__ = ["tune_"]


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
    lr: float | None = None,
    teacher: nn.Module | None = None,
    temperature: float = 1.0,
    task: Task | str = CLASSIFICATION,
) -> list[float]:
    """Optimise only ``params`` for ``steps`` Adam steps, in place; returns the losses.

    The loss is the task's fit to the targets (cross-entropy on labels for
    classification), plus its distillation loss against ``teacher`` (run in eval mode, no
    gradients) when given (KL at ``temperature`` for logits; for super-resolution the image
    loss against the teacher's output).
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
        lr: Adam learning rate (default: the task's ``tune_lr``, 1e-2).
        teacher: an optional model whose outputs the tuned model should match.
        temperature: distillation temperature.
        task: the `anywidth.train.task.Task` (its ``fit`` and ``follow`` losses); a loss
            string ``"cross_entropy"``, ``"l1"`` or ``"l2"`` still names one.

    Example:
        >>> small = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        >>> data = [(torch.randn(8, 4), torch.randint(0, 3, (8,)))]
        >>> bn = [p for m in small.modules() if isinstance(m, nn.BatchNorm1d)
        ...       for p in m.parameters()]
        >>> losses = tune_(small, bn, data, steps=3, teacher=nn.Linear(4, 3))
        >>> len(losses), small[0].weight.grad is None  # the Linear stayed frozen
        (3, True)
    """
    params = list(params)
    if steps < 1:
        raise ValueError(f"tune_ needs steps >= 1, got {steps}")
    if not params:
        raise ValueError("tune_ got no parameters to optimise")
    task = as_task(task)
    lr = task.tune_lr if lr is None else lr
    chosen = {id(p) for p in params}
    saved = {id(p): p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
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
            step = frozen_subset_step(net, optimizer, task, teacher, temperature)
            losses = run_steps_(step, cycle(data, steps), desc="tuning", total=steps)
            losses = (all_sum(torch.stack(losses)) / where.world_size).tolist()
        finally:
            with torch.no_grad():
                for name, value in model.named_buffers():
                    value.copy_(buffers[name])
            for p in model.parameters():
                p.requires_grad_(saved.get(id(p), True))
    return losses
