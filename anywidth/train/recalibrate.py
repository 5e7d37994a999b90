"""Re-estimate BatchNorm running statistics after a width change.

Removing or resampling channels shifts the statistics every later BatchNorm sees; the
stored running mean and variance then no longer match, and accuracy collapses even though
the weights are fine. A few forward passes over training data fix that — it is the
cheapest repair there is, so every comparison in anywidth applies it to every method.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from anywidth.measure import eval_mode

__all__ = ["recalibrate_bn", "recalibrate_bn_"]


@torch.no_grad()
def recalibrate_bn_(model: nn.Module, data: Iterable, batches: int = 20) -> None:
    """Re-estimate every BatchNorm's running mean and variance, in place.

    Statistics are reset and then averaged over up to ``batches`` batches (a cumulative
    average, not an exponential one, so the result does not depend on the momentum).
    Only BatchNorm layers are put in training mode; dropout and the rest stay in eval mode.

    Args:
        model: the model to repair; modified in place.
        data: an iterable of ``(images, labels)`` or of image tensors.
        batches: how many batches to use at most.

    Example:
        >>> recalibrate_bn_(small_model, loaders.train, batches=20)
    """
    if batches < 1:
        raise ValueError(f"recalibrate_bn needs batches >= 1, got {batches}")
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = {bn: bn.momentum for bn in norms}
    device = next(iter(model.parameters()), torch.empty(0)).device
    with eval_mode(model):
        try:
            for bn in norms:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative moving average over the batches seen
                bn.train()
            seen = 0
            for batch in itertools.islice(data, batches):
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(images.to(device))
                seen += 1
            if seen == 0:
                raise ValueError("recalibrate_bn got no data; pass a non-empty loader")
        finally:
            for bn, momentum in momenta.items():
                bn.momentum = momentum


def recalibrate_bn(model: nn.Module, data: Iterable, batches: int = 20) -> nn.Module:
    """Like `recalibrate_bn_`, but returns a recalibrated copy and leaves ``model`` as is."""
    fresh = copy.deepcopy(model)
    recalibrate_bn_(fresh, data, batches=batches)
    return fresh
