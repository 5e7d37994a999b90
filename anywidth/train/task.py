"""What a model is trained for: its loss, distillation loss, metric and optimizer defaults.

One `Task` object replaces the ``loss="cross_entropy"`` strings and the separate
``metric=`` arguments that used to travel together through the training, tuning and
width-random functions. Three kinds:

- `classification`: cross-entropy on labels; a teacher is followed by KL on softened
  logits (`distillation_loss`); scored by top-1 accuracy.
- `super_resolution`: an L1 (or L2) image loss; a teacher's output is followed with the same
  image loss; scored by Y-channel PSNR with a ``scale``-pixel border crop.
- `embedding_fidelity`: a sentence encoder distilled from the full model (1 − cosine of
  sentence embeddings and of token states, `anywidth.models.hf.distill_loss`); scored by
  the cosine of its sentence embeddings to the teacher's.

The optimizer defaults, one set per task (``lr`` trains from scratch, ``fine_tune_lr``
fine-tunes trained weights, ``tune_lr`` is `anywidth.train.tune.tune_`'s few Adam steps):

============================  =========  ======  ============  ============  =======
task                          optimizer  lr      fine_tune_lr  weight_decay  tune_lr
============================  =========  ======  ============  ============  =======
classification                SGD        0.1     0.02          5e-4          1e-2
super-resolution              AdamW      1e-3    1e-4          0             1e-2
embedding fidelity            AdamW      5e-5    5e-5          0             1e-2
============================  =========  ======  ============  ============  =======

Example:
    >>> task = super_resolution(2)
    >>> task.metric.name, task.optimizer, task.lr
    ('psnr', 'adamw', 0.001)
    >>> task_of(torch.nn.Linear(2, 2)) is CLASSIFICATION
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from anywidth.metrics import ACCURACY, Metric, psnr_metric
from anywidth.train.config import TrainConfig
from anywidth.train.losses import (
    LOSS_KINDS,
    LossFn,
    class_cross_entropy,
    cross_entropy_loss,
    distillation_loss,
    image_loss,
)

__all__ = [
    "CLASSIFICATION",
    "Task",
    "as_task",
    "classification",
    "embedding_fidelity",
    "super_resolution",
    "task_of",
]

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Task:
    """A training objective with its metric and optimizer defaults.

    Attributes:
        name: ``"classification"``, ``"super-resolution"`` or ``"embedding"``.
        loss: the loss kind: ``"cross_entropy"``, ``"l1"``, ``"l2"`` or ``"cosine"``.
        metric: what scores outputs against targets (`anywidth.metrics.Metric`).
        label: the metric's column label in tables, e.g. ``"acc %"``.
        optimizer: ``"sgd"`` or ``"adamw"``.
        lr: the learning rate of a training run from scratch.
        fine_tune_lr: the learning rate of a short run from trained weights.
        weight_decay: the optimizer's weight decay.
        tune_lr: the Adam learning rate of `anywidth.train.tune.tune_` (partition or
            BatchNorm tuning).

    Example:
        >>> CLASSIFICATION.follow(torch.zeros(2, 3), torch.zeros(2, 3)).item()
        0.0
    """

    name: str
    loss: str
    metric: Metric
    label: str
    optimizer: str
    lr: float
    fine_tune_lr: float
    weight_decay: float
    tune_lr: float = 1e-2

    @property
    def is_accuracy(self) -> bool:
        """Accuracy (shown in %), else a score shown as it is (PSNR in dB, a cosine)."""
        return self.metric is ACCURACY

    def show(self, value: float) -> str:
        """A score as the tables print it: ``81.23`` (%) or ``31.40`` (dB)."""
        return f"{100 * value:.2f}" if self.is_accuracy else f"{value:.2f}"

    def loss_fn(self, label_smoothing: float = 0.0) -> LossFn:
        """The `anywidth.train.train_` loss of this task (``loss_fn(model, x, y)``)."""
        if self.loss == "cross_entropy":
            return cross_entropy_loss(label_smoothing)
        if self.loss in LOSS_KINDS:
            return image_loss(self.loss)
        raise ValueError(f"the {self.name} task has no train_ loss; distil it instead")

    def fit(
        self, outputs: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        """The loss of ``outputs`` against the data's targets (labels or images)."""
        if self.loss == "cross_entropy":
            return class_cross_entropy(outputs, targets, label_smoothing)
        return self._image_criterion()(outputs, targets)

    def follow(
        self, outputs: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0
    ) -> torch.Tensor:
        """The distillation loss of ``outputs`` against a teacher's outputs: KL at
        ``temperature`` for logits, the image loss for images."""
        if self.loss == "cross_entropy":
            return distillation_loss(outputs, teacher, temperature)
        return self._image_criterion()(outputs, teacher)

    def gap(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """How far two widths' outputs are apart: mean squared difference of logits, mean
        absolute difference of images (the consistency term of width-random training)."""
        if self.loss == "cross_entropy":
            return (a - b).pow(2).mean()
        return (a - b).abs().mean()

    def _image_criterion(self) -> Criterion:
        if self.loss not in LOSS_KINDS:
            raise ValueError(f"the {self.name} task ({self.loss!r}) has no image loss")
        return F.l1_loss if self.loss == "l1" else F.mse_loss

    def train_config(
        self,
        epochs: int,
        batch_size: int = 128,
        seed: int = 0,
        lr: float | None = None,
        *,
        fine_tune: bool = False,
        **overrides: Any,
    ) -> TrainConfig:
        """A `TrainConfig` with this task's optimizer, weight decay and learning rate
        (``lr`` when given, else ``fine_tune_lr`` or ``lr`` of the task).

        Example:
            >>> super_resolution(2).train_config(3, fine_tune=True).lr
            0.0001
        """
        if lr is None:
            lr = self.fine_tune_lr if fine_tune else self.lr
        return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                           optimizer=self.optimizer, weight_decay=self.weight_decay,
                           **overrides)  # fmt: skip


def classification() -> Task:
    """Cross-entropy, KL distillation, top-1 accuracy, SGD.

    Example:
        >>> classification().metric.name
        'accuracy'
    """
    return CLASSIFICATION


CLASSIFICATION = Task("classification", "cross_entropy", ACCURACY, "acc %",
                      optimizer="sgd", lr=0.1, fine_tune_lr=0.02, weight_decay=5e-4)  # fmt: skip


def super_resolution(scale: int, loss: str = "l1") -> Task:
    """An image loss (L1, as EDSR trains; L2 as SRCNN), Y-channel PSNR, AdamW.

    Args:
        scale: the upsampling factor (the PSNR border crop).
        loss: ``"l1"`` or ``"l2"``.

    Example:
        >>> super_resolution(3, "l2").loss
        'l2'
    """
    if loss not in LOSS_KINDS:
        raise ValueError(f"super_resolution(loss={loss!r}); use one of {list(LOSS_KINDS)}")
    return Task("super-resolution", loss, psnr_metric(int(scale)), "PSNR dB",
                optimizer="adamw", lr=1e-3, fine_tune_lr=1e-4, weight_decay=0.0)  # fmt: skip


def _cosine(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(out, ref, dim=-1)  # (B,)


EMBEDDING_COSINE = Metric("cosine", score=_cosine, loss=lambda out, ref: 1 - _cosine(out, ref))


def embedding_fidelity() -> Task:
    """A sentence encoder distilled from its full model, scored by the cosine of sentence
    embeddings to the teacher's; AdamW without weight decay (`anywidth.models.hf.distill_`).

    Example:
        >>> embedding_fidelity().metric.score(torch.ones(1, 4), torch.ones(1, 4))
        tensor([1.])
    """
    return Task("embedding", "cosine", EMBEDDING_COSINE, "cosine",
                optimizer="adamw", lr=5e-5, fine_tune_lr=5e-5, weight_decay=0.0)  # fmt: skip


def as_task(task: Task | str) -> Task:
    """A `Task`, or the task a legacy loss string names: ``"cross_entropy"`` →
    `classification`; ``"l1"``/``"l2"`` → `super_resolution` (PSNR without border crop is
    not meant: pass ``super_resolution(scale)`` for the metric; the string only picks the
    loss).

    Example:
        >>> as_task("l2").loss
        'l2'
    """
    if isinstance(task, Task):
        return task
    if task == "cross_entropy":
        return CLASSIFICATION
    if task in LOSS_KINDS:
        return super_resolution(1, task)
    raise ValueError(
        f"task={task!r}: pass a Task (classification(), super_resolution(scale), "
        f"embedding_fidelity()) or one of 'cross_entropy', 'l1', 'l2'"
    )


def task_of(model: nn.Module) -> Task:
    """The task a model is for: its ``task`` attribute (the zoo's super-resolution models,
    and what `cut` makes of them, carry one), else `classification`. An any-width model
    is asked through what it makes at full width.

    Example:
        >>> from anywidth.models.superres import SRCNN
        >>> task_of(SRCNN(scale=2)).name
        'super-resolution'
    """
    if hasattr(model, "resample"):  # an IntegralModel or SlimmableModel
        model = model.resample(1.0)
    task = getattr(model, "task", None)
    return task if isinstance(task, Task) else CLASSIFICATION
