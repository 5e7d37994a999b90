"""Loss functions in the shape the training loop calls: ``loss_fn(model, images, labels)``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LossFn", "cross_entropy_loss"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``loss_fn(model, images, labels) -> (loss, logits)``: runs the model and scores it.

Returning the logits lets the loop count train accuracy whatever the loss is, so methods
with their own forward pass (width-sampled INN training, distillation from a teacher) run
through the same loop.
"""


def cross_entropy_loss(label_smoothing: float = 0.0) -> LossFn:
    """The default loss: cross-entropy of ``model(images)``, optionally label-smoothed.

    Args:
        label_smoothing: share of probability mass spread evenly over all classes.

    Returns:
        A `LossFn`.

    Example:
        >>> loss, logits = cross_entropy_loss(0.1)(model, images, labels)
    """

    def loss_fn(
        model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(images)  # (B, num_classes)
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing), logits

    return loss_fn
