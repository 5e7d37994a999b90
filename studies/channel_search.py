"""`channel_search`: ReXNet's channel configurations compared at equal MACs.

Every candidate is ReXNet's 16-block network (same strides, expansions, SE, stem and
head) with a different list of block widths ``c_i = a * f(i) + b``: the linear one of the
paper, a stage-wise one (MobileNetV2's: constant within a stage, jumping between stages)
and piecewise-linear ones. Each shape is scaled until the network costs the linear
configuration's MACs, then trained briefly over several seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from statistics import fmean, pstdev

import torch

from anywidth import Config
from anywidth.analysis import linear_channels, piecewise_channels, stagewise_channels

__all__ = [
    "CANDIDATES",
    "ChannelSearchConfig",
    "ChannelSearchRow",
    "channel_search",
    "matched_channels",
]

_STAGES = [1, 2, 2, 3, 3, 5]

CANDIDATES: dict[str, list[float]] = {
    "linear": [float(c) for c in linear_channels(1.0)],
    "stagewise": [float(c) for c in stagewise_channels([16, 24, 32, 64, 96, 160], _STAGES)],
    "slow-then-fast": [float(c) for c in piecewise_channels([(0, 16), (0.5, 50), (1, 185)], 16)],
    "fast-then-slow": [float(c) for c in piecewise_channels([(0, 16), (0.5, 150), (1, 185)], 16)],
}
"""Channel shapes before scaling: linear (the paper's), MobileNetV2 stage-wise, and two
piecewise-linear ones with a knot halfway."""


@dataclass
class ChannelSearchConfig(Config):
    """What `channel_search` trains.

    Args:
        candidates: names from `CANDIDATES` (``"linear"`` is the MAC reference).
        width_mult: the linear configuration's width (stem ``32 * w``, head ``1280 * w``).
        data: dataset name for `anywidth.data.make_loaders`.
        epochs: training epochs per run (SGD, cosine, 1 warm-up epoch).
        lr: peak learning rate.
        batch_size: training batch size.
        seeds: one run per seed per candidate.
        tolerance: each candidate's MACs lie within this fraction of the reference's.

    Example:
        >>> ChannelSearchConfig(epochs=2, seeds=(0,))
    """

    candidates: tuple[str, ...] = tuple(CANDIDATES)
    width_mult: float = 0.5
    data: str = "digits"
    epochs: int = 6
    lr: float = 0.05
    batch_size: int = 64
    seeds: tuple[int, ...] = (0, 1, 2)
    tolerance: float = 0.03

    def __post_init__(self) -> None:
        self.candidates, self.seeds = tuple(self.candidates), tuple(self.seeds)
        bad = [c for c in self.candidates if c not in CANDIDATES]
        if bad or not self.candidates:
            raise ValueError(
                f"ChannelSearchConfig.candidates has {bad or 'nothing'}; "
                f"choose from {list(CANDIDATES)}"
            )
        if not self.width_mult > 0 or self.epochs < 1 or not self.seeds or self.lr <= 0:
            raise ValueError(
                "ChannelSearchConfig needs width_mult > 0, epochs >= 1, lr > 0 and a seed; got "
                f"{self.width_mult}, {self.epochs}, {self.lr}, {list(self.seeds)}"
            )
        if not 0 < self.tolerance < 1:
            raise ValueError(f"ChannelSearchConfig.tolerance={self.tolerance} must be in (0, 1)")


@dataclass
class ChannelSearchRow:
    """One candidate: its widths, cost and test accuracy per seed."""

    name: str
    channels: list[int]
    macs: int
    params: int
    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        return fmean(self.accuracies)

    @property
    def std(self) -> float:
        return pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


def _build(channels: list[int], config: ChannelSearchConfig, loaders):
    from anywidth.models.rexnet import ReXNet, block_specs_from_channels

    stem = max(1, round(32 * config.width_mult))
    blocks = block_specs_from_channels(channels, stem)
    head = max(1, int(1280 * config.width_mult))
    return ReXNet(stem, blocks, head, loaders.num_classes, loaders.in_channels, small_input=True)


def _scaled(shape: list[float], scale: float) -> list[int]:
    return [max(1, round(scale * c)) for c in shape]


def _match_macs(shape, target: int, config, loaders, x) -> tuple[list[int], int]:
    """Scale ``shape`` until the network's MACs are within tolerance of ``target``.

    MACs grow about quadratically with a common width scale (1x1 convs dominate), so each
    step rescales by ``sqrt(target / macs)``; a few steps suffice.
    """
    from anywidth.measure import count_macs

    scale, best = 1.0, None
    for _ in range(12):
        channels = _scaled(shape, scale)
        macs = count_macs(_build(channels, config, loaders), x)
        if best is None or abs(macs - target) < abs(best[1] - target):
            best = (channels, macs)
        if abs(macs - target) <= config.tolerance * target / 2:
            break
        scale *= (target / macs) ** 0.5
    if abs(best[1] - target) > config.tolerance * target:
        raise RuntimeError(f"could not match {target:,} MACs within {config.tolerance:.0%}")
    return best


def matched_channels(config: ChannelSearchConfig) -> dict[str, tuple[list[int], int]]:
    """``{candidate: (block widths, MACs)}``, each scaled to the linear configuration's MACs.

    Example:
        >>> matched_channels(ChannelSearchConfig())["stagewise"][0][:3]
    """
    from anywidth.data import make_loaders
    from anywidth.measure import count_macs

    loaders = make_loaders(config.data, batch_size=config.batch_size, seed=0)
    x = next(iter(loaders.train))[0][:1]
    reference = _scaled(CANDIDATES["linear"], config.width_mult)
    target = count_macs(_build(reference, config, loaders), x)
    return {
        name: _match_macs(CANDIDATES[name], target, config, loaders, x)
        for name in config.candidates
    }


def channel_search(config: ChannelSearchConfig | None = None) -> list[ChannelSearchRow]:
    """Train each channel configuration at the linear one's MACs; accuracy per seed.

    Args:
        config: candidates, width, data, training length and seeds.

    Returns:
        One `ChannelSearchRow` per candidate, in ``config.candidates`` order.

    Example:
        >>> rows = channel_search(ChannelSearchConfig(epochs=1, seeds=(0,)))
        >>> {r.name: round(r.mean, 3) for r in rows}
    """
    from anywidth.data import make_loaders
    from anywidth.measure import count_params, evaluate
    from anywidth.train import TrainConfig, train_

    config = config or ChannelSearchConfig()
    rows = []
    for name, (channels, macs) in matched_channels(config).items():
        row = ChannelSearchRow(name, channels, macs, 0)
        start = time.perf_counter()
        for seed in config.seeds:
            data = make_loaders(config.data, batch_size=config.batch_size, seed=seed)
            torch.manual_seed(seed)
            model = _build(channels, config, data)
            row.params = count_params(model)
            train = TrainConfig(
                epochs=config.epochs,
                lr=config.lr,
                warmup_epochs=1,
                seed=seed,
                batch_size=config.batch_size,
            )
            train_(model, data, train)
            row.accuracies.append(evaluate(model, data.test)["accuracy"])
        row.seconds = time.perf_counter() - start
        rows.append(row)
    return rows
