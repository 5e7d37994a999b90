"""`SearchConfig` and `DistillConfig`: the settings of a TAS search and of its distillation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from anywidth._config import config_from_dict, config_to_dict

__all__ = ["SearchConfig", "DistillConfig"]

_RATIOS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _positive(owner: str, name: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and value > 0):
        what = "an int" if integer else "a finite number"
        raise ValueError(f"{owner}.{name}={value!r} must be {what} above 0")


@dataclass
class SearchConfig:
    """How to search: the MAC target, the candidates, the schedule and the optimisers.

    Args:
        target_macs: fraction of the model's MACs to reach, in (0, 1).
        tolerance: half-width of the band around the target, as a fraction of the original
            MACs (the reference's 0.05: the band at a 0.5 target is 0.45..0.55). Inside it
            the cost loss is 0.
        cost_weight: λ of ``CE + λ·L_cost`` in the architecture step (reference: 2).
        width_ratios: width candidates of every channel group, as fractions of its size
            (rounded, at least 1 channel, deduplicated); 1.0 is always one.
        depth: also search how many blocks of every run of skippable blocks to keep.
        blocks: names or globs of the blocks that may be skipped; by default every
            residual block whose output has its input's shape (the identity blocks of the
            zoo's ResNets and MobileNetV2). Each named block must keep its input's shape.
        fixed: channel-group names or globs to keep whole.
        order: ``"l1"`` sorts each group's channels by the L1 norm of their producing
            filters first (same function), so that candidates, which share their leading
            channels, start from the strongest ones; ``"none"`` keeps the order.
        epochs: search epochs (a weight step and an architecture step per batch pair).
        lr: SGD learning rate of the weight steps (cosine decay, momentum 0.9).
        weight_decay: of the weight steps.
        arch_lr: Adam learning rate of the architecture logits. The reference's 1e-3 suits
            its 600 epochs of CIFAR; short searches need a larger one.
        arch_weight_decay: of the architecture steps (reference 1e-3).
        tau_max: Gumbel-softmax temperature at the first epoch (reference 10).
        tau_min: temperature at the last epoch (linear decay; reference 0.1).
        seed: seeds the logits, the Gumbel noise and the split of the training data.

    Example:
        >>> SearchConfig(target_macs=0.5, epochs=10)
    """

    target_macs: float = 0.5
    tolerance: float = 0.05
    cost_weight: float = 2.0
    width_ratios: tuple[float, ...] = _RATIOS
    depth: bool = True
    blocks: tuple[str, ...] | None = None
    fixed: tuple[str, ...] = ()
    order: str = "l1"
    epochs: int = 10
    lr: float = 0.01
    weight_decay: float = 5e-4
    arch_lr: float = 0.05
    arch_weight_decay: float = 1e-3
    tau_max: float = 10.0
    tau_min: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        owner = "SearchConfig"
        t = self.target_macs
        if not (isinstance(t, int | float) and not isinstance(t, bool) and 0 < t < 1):
            raise ValueError(
                f"{owner}.target_macs={t!r} must be a fraction of the model's MACs in (0, 1), "
                "e.g. 0.5 keeps half"
            )
        if not 0 < self.tolerance < 1:
            raise ValueError(f"{owner}.tolerance={self.tolerance!r} must be in (0, 1)")
        self.width_ratios = tuple(self.width_ratios)
        if not self.width_ratios or not all(0 < r <= 1 for r in self.width_ratios):
            raise ValueError(
                f"{owner}.width_ratios={self.width_ratios!r} must be fractions in (0, 1]"
            )
        if self.order not in ("l1", "none"):
            raise ValueError(f"{owner}.order={self.order!r}; use 'l1' or 'none'")
        _positive(owner, "epochs", self.epochs, integer=True)
        for name in ("lr", "arch_lr", "tau_max", "tau_min", "cost_weight"):
            _positive(owner, name, getattr(self, name))
        if self.tau_min > self.tau_max:
            raise ValueError(f"{owner}.tau_min={self.tau_min} is above tau_max={self.tau_max}")
        self.blocks = None if self.blocks is None else tuple(self.blocks)
        self.fixed = tuple(self.fixed)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        return config_from_dict(cls, data)


@dataclass
class DistillConfig:
    """Knowledge distillation: ``L = (1 − w)·CE + w·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))``.

    Args:
        temperature: T, softens both distributions (reference 4).
        weight: w, the share of the distillation term (reference 0.9).

    Example:
        >>> DistillConfig(temperature=4, weight=0.9)
    """

    temperature: float = 4.0
    weight: float = 0.9

    def __post_init__(self) -> None:
        _positive("DistillConfig", "temperature", self.temperature)
        w = self.weight
        if not (isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w <= 1):
            raise ValueError(f"DistillConfig.weight={w!r} must be in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillConfig:
        return config_from_dict(cls, data)
