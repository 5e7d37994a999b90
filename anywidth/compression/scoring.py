"""How a model is scored: accuracy for classifiers, Y-channel PSNR for super-resolution.

Example:
    >>> scorer = scorer_for(model)          # accuracy, or PSNR for the zoo's SR models
    >>> scorer.show(scorer(model, loaders.test)), scorer.label
    ('81.23', 'test acc %')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from anywidth.measure import evaluate
from anywidth.metrics import ACCURACY, Metric, psnr_metric
from anywidth.models.superres import EDSR, SRCNN
from anywidth.train.config import TrainConfig
from anywidth.train.losses import LossFn, cross_entropy_loss, image_loss

__all__ = ["Scorer", "scorer_for"]


@dataclass(frozen=True)
class Scorer:
    """A metric with the column label and number format the tables use, and how commands
    that train or tune such a model do it (its loss, optimizer and learning rate)."""

    metric: Metric
    label: str  # e.g. "test acc %"
    loss: str = "cross_entropy"  # "l1" for super-resolution
    optimizer: str = "sgd"  # super-resolution models fine-tune with Adam
    lr: float = 0.02  # the default fine-tuning learning rate

    @property
    def is_accuracy(self) -> bool:
        """Accuracy (shown in %), else a score shown as it is (PSNR in dB)."""
        return self.metric is ACCURACY

    def loss_fn(self, label_smoothing: float = 0.0) -> LossFn:
        """The training loss `train_` should use for this kind of model."""
        if self.loss == "cross_entropy":
            return cross_entropy_loss(label_smoothing)
        return image_loss(self.loss)

    def fine_tune_config(
        self, epochs: int, batch_size: int, seed: int, lr: float | None = None
    ) -> TrainConfig:
        """A short training run from trained weights: SGD for classifiers, Adam without
        weight decay for super-resolution; ``lr`` when given, else this kind's default."""
        decay = {} if self.optimizer == "sgd" else {"weight_decay": 0.0}
        return TrainConfig(epochs=epochs, batch_size=batch_size, lr=self.lr if lr is None else lr,
                           optimizer=self.optimizer, seed=seed, **decay)  # fmt: skip

    def __call__(self, model: nn.Module, loader: Iterable) -> float:
        return evaluate(model, loader, metric=self.metric)[self.metric.name]

    def show(self, value: float) -> str:
        return f"{100 * value:.2f}" if self.is_accuracy else f"{value:.2f}"


def scorer_for(model: nn.Module, split: str = "test") -> Scorer:
    """PSNR at the model's scale for the zoo's SR models (and what `cut` made of them),
    accuracy for everything else; an any-width model is scored as its full width."""
    if hasattr(model, "resample"):  # an IntegralModel or SlimmableModel: look at what it makes
        model = model.resample(1.0)
    if isinstance(model, SRCNN | EDSR):
        metric = psnr_metric(int(model.scale))
        return Scorer(metric, f"{split} PSNR dB", loss="l1", optimizer="adamw", lr=1e-4)
    return Scorer(ACCURACY, f"{split} acc %")
