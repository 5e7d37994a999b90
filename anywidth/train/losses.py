"""Loss functions in the shape the training loop calls: ``loss_fn(model, images, labels)``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "LOSS_KINDS",
    "LossFn",
    "class_cross_entropy",
    "cross_entropy_loss",
    "distillation_loss",
    "image_loss",
]

LOSS_KINDS = ("l1", "l2")

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``loss_fn(model, images, labels) -> (loss, logits)``: runs the model and scores it.

Returning the logits lets the loop count train accuracy whatever the loss is, so methods
with their own forward pass (width-sampled INN training, distillation from a teacher) run
through the same loop.
"""


def class_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy against class labels; float targets are refused.

    `F.cross_entropy` reads float targets of the logits' shape as class probabilities, so an
    image-to-image model given cross-entropy would train on nonsense without a word. Every
    loss in the package that means "labels" goes through here.
    """
    if labels.is_floating_point():
        raise ValueError(
            f"cross-entropy got float targets of shape {tuple(labels.shape)}: an image-to-image "
            "model (super-resolution) trains with image_loss('l1' or 'l2') in train_; for "
            "tuning and width-random training pass task=super_resolution(scale)"
        )
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def distillation_loss(
    logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(teacher ‖ student) on temperature-softened outputs, times T² (Hinton et al.).

    The one distillation loss of the package: tuning, width-random training and TAS's
    `anywidth.search.distill_` (which mixes it with cross-entropy) all call it.

    Example:
        >>> logits = torch.tensor([[1.0, 2.0]])
        >>> distillation_loss(logits, logits, temperature=4.0).item()
        0.0
    """
    t = temperature
    log_student = torch.log_softmax(logits / t, dim=1)  # (B, K)
    log_teacher = torch.log_softmax(teacher / t, dim=1)  # (B, K)
    kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
    return kl * t * t


def cross_entropy_loss(label_smoothing: float = 0.0) -> LossFn:
    """The default loss: cross-entropy of ``model(images)``, optionally label-smoothed.

    Args:
        label_smoothing: share of probability mass spread evenly over all classes.

    Returns:
        A `LossFn`.

    Example:
        >>> model = nn.Linear(4, 3)
        >>> _ = nn.init.zeros_(model.bias)
        >>> loss, logits = cross_entropy_loss(0.1)(model, torch.zeros(2, 4), torch.tensor([0, 2]))
        >>> logits.shape, round(loss.item(), 4)  # all logits 0: ln 3
        (torch.Size([2, 3]), 1.0986)
    """

    def loss_fn(
        model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(images)  # (B, num_classes)
        return class_cross_entropy(logits, labels, label_smoothing), logits

    return loss_fn


def image_loss(kind: str = "l1") -> LossFn:
    """An image-to-image loss: mean absolute (``"l1"``) or squared (``"l2"``) error of
    ``model(inputs)`` against the target images (EDSR trains with L1, SRCNN with L2).

    Args:
        kind: ``"l1"`` or ``"l2"``.

    Returns:
        A `LossFn` returning ``(loss, outputs)``.

    Example:
        >>> model = nn.Upsample(scale_factor=2)
        >>> loss, sr = image_loss("l1")(model, torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 4, 4))
        >>> sr.shape, loss.item()
        (torch.Size([1, 3, 4, 4]), 1.0)
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"image loss must be one of {LOSS_KINDS}, got {kind!r}")
    criterion = F.l1_loss if kind == "l1" else F.mse_loss

    def loss_fn(
        model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = model(inputs)  # (B, C, H, W)
        if outputs.shape != targets.shape:
            raise ValueError(
                f"the model returned {tuple(outputs.shape)} for targets of "
                f"{tuple(targets.shape)}; check the model's scale against the data's"
            )
        return criterion(outputs, targets), outputs

    return loss_fn
