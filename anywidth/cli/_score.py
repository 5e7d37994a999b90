"""How a command scores a model: accuracy for classifiers, Y-channel PSNR for super-resolution."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from anywidth.measure import evaluate
from anywidth.metrics import ACCURACY, Metric, psnr_metric
from anywidth.models.superres import EDSR, SRCNN

__all__ = ["Scorer", "scorer_for"]


@dataclass(frozen=True)
class Scorer:
    """A metric with the column label and number format the tables use."""

    metric: Metric
    label: str  # e.g. "test acc %"
    percent: bool

    def __call__(self, model: nn.Module, loader: Iterable) -> float:
        return evaluate(model, loader, metric=self.metric)[self.metric.name]

    def show(self, value: float) -> str:
        return f"{100 * value:.2f}" if self.percent else f"{value:.2f}"


def scorer_for(model: nn.Module, split: str = "test") -> Scorer:
    """PSNR at the model's scale for the zoo's SR models (and what `cut` made of them),
    accuracy for everything else."""
    if isinstance(model, SRCNN | EDSR):
        return Scorer(psnr_metric(int(model.scale)), f"{split} PSNR dB", percent=False)
    return Scorer(ACCURACY, f"{split} acc %", percent=True)
