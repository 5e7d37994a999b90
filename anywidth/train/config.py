"""`TrainConfig`: every setting of a training run in one validated record."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from anywidth._config import Config

__all__ = ["TrainConfig"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig(Config):
    """Settings of one training run; invalid values raise ``ValueError`` naming the field.

    Attributes:
        epochs: passes over the train loader.
        batch_size: informational (the loader decides); recorded with the run.
        lr: peak learning rate.
        momentum: SGD momentum (ignored by AdamW).
        weight_decay: L2 penalty (SGD) or decoupled weight decay (AdamW), on all parameters.
        nesterov: Nesterov momentum for SGD; needs ``momentum > 0``.
        optimizer: ``"sgd"`` or ``"adamw"``.
        schedule: ``"cosine"`` (per step, from ``lr`` down to 0) or ``"constant"``.
        warmup_epochs: linear warm-up from ``lr / warmup_steps`` to ``lr``, in epochs.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        seed: seeds torch's RNG at the start and the shuffle of every epoch.
        grad_clip: clip the global gradient norm to this value; ``None`` disables.
        device: where to train, e.g. ``"cpu"`` or ``"cuda:0"``.

    Example:
        >>> config = TrainConfig(epochs=30, lr=0.05, label_smoothing=0.1)
        >>> TrainConfig.from_dict(config.to_dict()) == config
        True
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    optimizer: str = "sgd"
    schedule: str = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    seed: int = 0
    grad_clip: float | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("warmup_epochs", self.warmup_epochs, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        _check_number("lr", self.lr, low=0.0, low_open=True)
        _check_number("momentum", self.momentum, low=0.0, high=1.0)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_number("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        if self.grad_clip is not None:
            _check_number("grad_clip", self.grad_clip, low=0.0, low_open=True)
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov must be True or False, got {self.nesterov!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) must not exceed epochs ({self.epochs})"
            )
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optimizer='sgd' and momentum > 0")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(
                f"device must name a torch device such as 'cpu' or 'cuda:0', got {self.device!r}"
            ) from None

    def rewind(self, epochs: int) -> TrainConfig:
        """The last ``epochs`` of this run's schedule, as a run of their own.

        "Rewinding" (Renda et al. 2020; used by ALDS) retrains a compressed model with the
        end of the original schedule. The result starts at the learning rate this schedule
        had ``epochs`` before its end and decays it to 0 by cosine (or keeps it constant),
        without warm-up; everything else is unchanged.

        Example:
            >>> round(TrainConfig(epochs=30, lr=0.1).rewind(3).lr, 6)  # 0.1·(1 + cos(π·27/30))/2
            0.002447
        """
        _check_int("rewind epochs", epochs, minimum=1)
        if epochs > self.epochs:
            raise ValueError(f"cannot rewind {epochs} epochs of a {self.epochs}-epoch schedule")
        lr = self.lr
        if self.schedule == "cosine":
            done = (self.epochs - epochs - self.warmup_epochs) / (self.epochs - self.warmup_epochs)
            lr = self.lr * 0.5 * (1.0 + math.cos(math.pi * max(0.0, done)))
        return replace(self, epochs=epochs, lr=lr, warmup_epochs=0)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_number(
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = is_number and math.isfinite(value) and (value > low if low_open else value >= low)
    ok = ok and (high is None or value < high)
    if not ok:
        bounds = f"{'>' if low_open else '>='} {low}" + (f" and < {high}" if high else "")
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}")
