"""Channel configurations as functions of the block index: ReXNet's linear one and others.

ReXNet (Han et al., CVPR 2021) parameterises the output channels of its blocks as
``c_i = a * f(i) + b`` and found that a linear ``f`` (channels growing by the same step
every block) beat the stage-wise configuration of MobileNetV2. This module only computes
channel lists; it imports nothing from the rest of anywidth, so the model zoo can use it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["linear_channels", "piecewise_channels", "stagewise_channels"]


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be an integer >= 1")
    return value


def _check_positive(name: str, value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not value > 0:
        raise ValueError(f"{name}={value!r} must be a number above 0")
    return float(value)


def linear_channels(
    width_mult: float = 1.0, blocks: int = 16, start: float = 16, end: float = 180
) -> list[int]:
    """ReXNet's block output channels: ``round(width_mult * (start + i * end / blocks))``.

    As in the authors' reference, ``end`` is the growth spread over ``blocks`` steps, so the
    last block (``i = blocks - 1``) has ``start + end * (blocks - 1) / blocks`` channels
    before the multiplier (185 at the defaults, not 196).

    Args:
        width_mult: the width multiplier ``w`` (> 0).
        blocks: number of blocks (>= 1).
        start: channels of the first block at ``w = 1`` (> 0).
        end: channels added over ``blocks`` steps at ``w = 1`` (>= 0).

    Returns:
        ``blocks`` channel counts, each at least 1.

    Example:
        >>> linear_channels(1.0)[:6]
        [16, 27, 38, 50, 61, 72]
    """
    width_mult = _check_positive("width_mult", width_mult)
    blocks = _check_count("blocks", blocks)
    start = _check_positive("start", start)
    if isinstance(end, bool) or not isinstance(end, int | float) or end < 0:
        raise ValueError(f"end={end!r} must be a number >= 0 (the channels added over blocks)")
    step = end / blocks
    return [max(1, int(round(width_mult * (start + i * step)))) for i in range(blocks)]


def stagewise_channels(stage_channels: Sequence[int], stage_blocks: Sequence[int]) -> list[int]:
    """A MobileNetV2-style configuration: every block of a stage has the stage's width.

    Args:
        stage_channels: output channels of each stage.
        stage_blocks: number of blocks in each stage (same length).

    Example:
        >>> stagewise_channels([16, 24], [1, 2])
        [16, 24, 24]
    """
    if len(stage_channels) != len(stage_blocks) or not stage_channels:
        raise ValueError(
            f"stage_channels ({len(stage_channels)}) and stage_blocks ({len(stage_blocks)}) "
            "must be non-empty lists of the same length"
        )
    for i, (c, n) in enumerate(zip(stage_channels, stage_blocks, strict=True)):
        _check_count(f"stage_channels[{i}]", c)
        _check_count(f"stage_blocks[{i}]", n)
    return [c for c, n in zip(stage_channels, stage_blocks, strict=True) for _ in range(n)]


def piecewise_channels(
    knots: Sequence[tuple[float, float]], blocks: int, width_mult: float = 1.0
) -> list[int]:
    """``c_i = f(i / (blocks - 1))`` with ``f`` piecewise linear through ``knots``.

    Args:
        knots: ``(position in [0, 1], channels)`` pairs with increasing positions, the
            first at 0 and the last at 1; e.g. ``[(0, 16), (0.5, 40), (1, 185)]`` grows
            slowly, then fast.
        blocks: number of blocks (>= 1).
        width_mult: multiplies every channel count.

    Example:
        >>> piecewise_channels([(0, 16), (1, 32)], blocks=3)
        [16, 24, 32]
    """
    blocks = _check_count("blocks", blocks)
    width_mult = _check_positive("width_mult", width_mult)
    xs = [float(x) for x, _ in knots]
    rising = all(b > a for a, b in zip(xs[:-1], xs[1:], strict=True))
    if len(xs) < 2 or xs[0] != 0.0 or xs[-1] != 1.0 or not rising:
        raise ValueError(
            f"knots positions {xs} must increase strictly from 0 to 1 (at least two knots)"
        )
    out = []
    for i in range(blocks):
        t = i / (blocks - 1) if blocks > 1 else 0.0
        k = next(j for j in range(1, len(xs)) if t <= xs[j])
        (x0, y0), (x1, y1) = knots[k - 1], knots[k]
        y = y0 + (y1 - y0) * (t - x0) / (x1 - x0)
        out.append(max(1, int(round(width_mult * y))))
    return out
