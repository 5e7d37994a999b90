"""The step strategies of the one training loop (`anywidth.train.loop.run_steps_`).

Every method that trains runs ``run_steps_(step, batches)``: the loop hands each batch to a
*step*, ``step(index, batch) -> record``, which runs the model, computes its loss and
updates the weights through `update_` (zero the gradients, backward, an optional hook such
as gradient clipping, the optimizer and the scheduler). What differs between methods is
only the step:

==========================  =====================================  ===========================
step                        what it optimises                      used by
==========================  =====================================  ===========================
`loss_step`                 ``loss_fn(net, x, y)`` on all weights  `train_` (plain training;
                                                                   width-random training and
                                                                   TAS distillation pass
                                                                   their ``loss_fn``)
`frozen_subset_step`        a task's loss (+ distillation from a   `anywidth.train.tune.tune_`
                            teacher) on chosen parameters          (partition / BN tuning)
bilevel step                weights, then architecture logits      `anywidth.search`
                                                                   (``_bilevel_step``)
embedding distillation      1 − cosine to a teacher's embeddings   `anywidth.models.hf.distill_`
==========================  =====================================  ===========================

Epochs, learning-rate schedules, validation, checkpoints and resume belong to `train_`
(the one checkpoint path); the few-step loops (tuning, TAS's search, the encoder's
distillation) keep no checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from anywidth.metrics import Metric
from anywidth.train.losses import LossFn
from anywidth.train.task import Task

__all__ = ["Step", "frozen_subset_step", "loss_step", "update_"]

Step = Callable[[int, Any], Any]
"""``step(index, batch) -> record``: one optimisation step on one batch; ``index`` counts
the run's steps (from the loop's ``start``), for steps that seed their own randomness."""


def update_(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    before_step: Callable[[], Any] | None = None,
) -> None:
    """One optimizer update from ``loss``: zero the gradients, backward, ``before_step()``
    (gradient clipping, averaging over processes), step, then ``scheduler.step()``.

    Example:
        >>> w = torch.nn.Parameter(torch.ones(1))
        >>> update_(torch.optim.SGD([w], lr=0.5), (w * 2).sum())
        >>> w.item()
        0.0
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if before_step is not None:
        before_step()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def loss_step(
    net: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    metric: Metric,
    *,
    device: torch.device | str = "cpu",
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip: tuple[Iterable[nn.Parameter], float] | None = None,
) -> Step:
    """The training step of `train_`: ``loss_fn(net, images, labels) -> (loss, outputs)``.

    A ``loss_fn`` with a ``begin_step(index)`` method is told the step's index first (the
    width draws of width-random training are seeded per step). The record is
    ``(loss × batch size, summed metric score, batch size)`` for the epoch's averages.

    Args:
        net: what the loss runs (the model or its DDP wrapper).
        loss_fn: runs and scores the model (plain cross-entropy, an image loss, a
            width-random or a distillation loss).
        optimizer: updates the weights.
        metric: scores the outputs against the labels.
        device: where batches are moved.
        scheduler: stepped after every update.
        clip: ``(parameters, max norm)`` of gradient-norm clipping.

    Example:
        >>> from anywidth.metrics import ACCURACY
        >>> from anywidth.train.losses import cross_entropy_loss
        >>> model = nn.Linear(2, 2)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> step = loss_step(model, cross_entropy_loss(), optimizer, ACCURACY)
        >>> loss_sum, correct, size = step(0, (torch.randn(4, 2), torch.tensor([0, 1, 0, 1])))
        >>> size, 0 <= correct.item() <= 4
        (4, True)
    """
    begin_step = getattr(loss_fn, "begin_step", None)
    clip_ = None
    if clip is not None:
        params, max_norm = list(clip[0]), clip[1]

        def clip_() -> None:
            nn.utils.clip_grad_norm_(params, max_norm)

    def step(index: int, batch: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        images, labels = batch[0].to(device), batch[1].to(device)  # (B, C, H, W), (B, ...)
        if begin_step is not None:
            begin_step(index)
        loss, outputs = loss_fn(net, images, labels)
        update_(optimizer, loss, scheduler=scheduler, before_step=clip_)
        score = metric.score(outputs.detach(), labels).sum()
        return loss.detach() * labels.shape[0], score, int(labels.shape[0])

    return step


def frozen_subset_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    teacher: nn.Module | None = None,
    temperature: float = 1.0,
) -> Step:
    """The tuning step of `anywidth.train.tune.tune_`: the task's fit to the targets, plus
    its distillation loss against ``teacher`` (no gradients) when given; the optimizer
    holds only the parameters being tuned. The record is the detached loss.

    Example:
        >>> from anywidth.train.task import CLASSIFICATION
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        >>> first = model[0].weight.clone()
        >>> optimizer = torch.optim.Adam(model[1].parameters())
        >>> step = frozen_subset_step(model, optimizer, CLASSIFICATION)
        >>> loss = step(0, (torch.randn(4, 2), torch.tensor([0, 1, 0, 1])))
        >>> torch.equal(model[0].weight, first), loss.requires_grad  # only model[1] moved
        (True, False)
    """

    def step(index: int, batch: Any) -> torch.Tensor:
        images, labels = batch
        outputs = net(images)
        total = task.fit(outputs, labels)
        if teacher is not None:
            with torch.no_grad():
                target = teacher(images)
            total = total + task.follow(outputs, target, temperature)
        update_(optimizer, total)
        return total.detach()

    return step
