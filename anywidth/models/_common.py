"""Helpers shared by the model families: channel rounding and weight initialisation."""

from __future__ import annotations

from torch import nn

__all__ = ["make_divisible", "init_weights_"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, losing at most 10%.

    This is the rounding MobileNet-style networks use, so that width multipliers give
    hardware-friendly channel counts.

    Args:
        value: the ideal (possibly fractional) channel count.
        divisor: the multiple to round to.
        min_value: the smallest count allowed (default: ``divisor``).

    Returns:
        The rounded channel count.

    Example:
        >>> make_divisible(32 * 0.75)
        24
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    # Rounding down by more than 10% would cost too much capacity.
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def init_weights_(model: nn.Module) -> None:
    """Initialise ``model`` in place: Kaiming convs, unit-scale norms, zero biases.

    Convolutions get Kaiming-normal weights (fan-out, ReLU gain), batch/group/layer norms
    weight 1 and bias 0, linear layers normal(0, 0.01) weights; every bias starts at 0.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
