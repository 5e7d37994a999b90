"""`SearchConfig` and `DistillConfig`: the settings of a TAS search and of its distillation."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from anywidth._config import Config
from anywidth.budget import Budget, as_budget

__all__ = ["SearchConfig", "DistillConfig"]

_RATIOS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _positive(owner: str, name: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and value > 0):
        what = "an int" if integer else "a finite number"
        raise ValueError(f"{owner}.{name}={value!r} must be {what} above 0")


@dataclass
class SearchConfig(Config):
    """How to search: the MAC target, the candidates, the schedule and the optimisers.

    Args:
        target_macs: fraction of the model's MACs to reach, in (0, 1); default 0.5. With
            ``budget`` it is the budget's fraction.
        tolerance: half-width of the band around the target, as a fraction of the original
            MACs (the reference's 0.05: the band at a 0.5 target is 0.45..0.55; the
            default). Inside it the cost loss is 0. With ``budget`` it is the budget's
            relative tolerance times its fraction (the same band).
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
        budget: the target as an `anywidth.Budget` of MACs, as every method's config takes
            it (``Budget.absolute(macs=...)`` is resolved against the model by the search).
        distill_epochs: epochs `anywidth.compress` distils the found shape from the
            original model after the search (SGD at ``lr``; 0: none). `search_shape`
            itself does not distil.

    Example:
        >>> SearchConfig(budget=Budget(macs=0.5, tolerance=0.1), epochs=10)
        >>> SearchConfig(target_macs=0.5, epochs=10)  # band 0.45..0.55, older form
    """

    target_macs: float | None = None
    tolerance: float | None = None
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
    budget: Budget | None = None
    distill_epochs: int = 0

    def __post_init__(self) -> None:
        owner = "SearchConfig"
        self._apply_budget()
        t = self.target_macs
        if t is not None and not (
            isinstance(t, int | float) and not isinstance(t, bool) and 0 < t < 1
        ):
            raise ValueError(
                f"{owner}.target_macs={t!r} must be a fraction of the model's MACs in (0, 1), "
                "e.g. 0.5 keeps half"
            )
        if self.tolerance is not None and not 0 < self.tolerance < 1:
            raise ValueError(f"{owner}.tolerance={self.tolerance!r} must be in (0, 1)")
        self.width_ratios = tuple(self.width_ratios)
        if not self.width_ratios or not all(0 < r <= 1 for r in self.width_ratios):
            raise ValueError(
                f"{owner}.width_ratios={self.width_ratios!r} must be fractions in (0, 1]"
            )
        if self.order not in ("l1", "none"):
            raise ValueError(f"{owner}.order={self.order!r}; use 'l1' or 'none'")
        _positive(owner, "epochs", self.epochs, integer=True)
        d = self.distill_epochs
        if not (isinstance(d, int) and not isinstance(d, bool) and d >= 0):
            raise ValueError(f"{owner}.distill_epochs={d!r} must be an int >= 0")
        for name in ("lr", "arch_lr", "tau_max", "tau_min", "cost_weight"):
            _positive(owner, name, getattr(self, name))
        if self.tau_min > self.tau_max:
            raise ValueError(f"{owner}.tau_min={self.tau_min} is above tau_max={self.tau_max}")
        self.blocks = None if self.blocks is None else tuple(self.blocks)
        self.fixed = tuple(self.fixed)

    def _apply_budget(self) -> None:
        """Derive ``target_macs`` and ``tolerance`` from ``budget`` (or fill the defaults)."""
        self.budget = as_budget("SearchConfig.budget", self.budget)
        b = self.budget
        if b is None:
            self.target_macs = 0.5 if self.target_macs is None else self.target_macs
            self.tolerance = 0.05 if self.tolerance is None else self.tolerance
            return
        if b.metric != "macs":
            raise ValueError(
                f"SearchConfig.budget limits {b.metric}; the search targets MACs: give "
                "Budget(macs=...)"
            )
        if b.unit == "count":  # search_shape resolves it against the model
            derived = (None, None)
        else:
            derived = (b.value, b.tolerance * b.value)
        given = (self.target_macs, self.tolerance)
        if any(g is not None and g != d for g, d in zip(given, derived, strict=True)):
            raise ValueError(
                "SearchConfig takes budget= or target_macs=/tolerance=, not both; give the "
                "tolerance to the Budget: Budget(macs=..., tolerance=...)"
            )
        self.target_macs, self.tolerance = derived
        if b.unit == "fraction" and b.value >= 1:
            raise ValueError(
                f"SearchConfig.budget macs={b.value!r}: the search needs a fraction below 1"
            )

    def as_budget(self) -> Budget:
        """The target as an `anywidth.Budget` (the band as a relative tolerance)."""
        if self.budget is not None:
            return self.budget
        relative = min(self.tolerance / self.target_macs, 0.99)
        return Budget(macs=self.target_macs, tolerance=relative)

    def resolved(self, full_macs: int) -> SearchConfig:
        """This config with an absolute budget turned into a fraction of ``full_macs``."""
        if self.budget is None or self.budget.unit == "fraction":
            return self
        return replace(self, budget=self.budget.resolve(full_macs))


@dataclass
class DistillConfig(Config):
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
