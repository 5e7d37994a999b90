"""How a model is scored: its `anywidth.train.task.Task`'s metric on one split.

Example:
    >>> scorer = scorer_for(nn.Linear(4, 3))  # accuracy, or PSNR for the zoo's SR models
    >>> scorer.show(0.8123), scorer.label
    ('81.23', 'test acc %')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from anywidth.measure import evaluate
from anywidth.metrics import Metric
from anywidth.train.task import Task, task_of

__all__ = ["Scorer", "scorer_for"]


@dataclass(frozen=True)
class Scorer:
    """A task's metric on one data split, with the column label the tables use.

    Attributes:
        task: what the model is for (its loss, metric and optimizer defaults).
        split: the split scored, e.g. ``"test"``.
    """

    task: Task
    split: str = "test"

    @property
    def metric(self) -> Metric:
        return self.task.metric

    @property
    def label(self) -> str:
        """E.g. ``"test acc %"``, ``"test PSNR dB"``."""
        return f"{self.split} {self.task.label}"

    @property
    def is_accuracy(self) -> bool:
        return self.task.is_accuracy

    def show(self, value: float) -> str:
        return self.task.show(value)

    def __call__(self, model: nn.Module, loader: Iterable) -> float:
        return evaluate(model, loader, metric=self.metric)[self.metric.name]


def scorer_for(model: nn.Module, split: str = "test") -> Scorer:
    """The model's task (`anywidth.train.task.task_of`: PSNR at its scale for the zoo's SR
    models and what `cut` made of them, accuracy for everything else), on ``split``."""
    return Scorer(task_of(model), split)
