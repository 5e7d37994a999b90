"""`rank_study`: ReXNet's experiment on the rank of random layers' outputs.

Han et al. (CVPR 2021) estimate a layer's expressiveness by the rank of its output
f(WX): random layers with ``d_in / d_out`` between 0.1 and 1, BatchNorm and a
nonlinearity, averaged over many random networks. This module runs that experiment for
single layers (1x1 and 3x3 conv) and two inverted-bottleneck forms, and checks the
paper's findings against the numbers it gets (`RankStudyResult.findings`).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from anywidth import Config
from anywidth._progress import progress
from studies._findings import Finding, check_findings
from studies._nets import (
    ACTIVATIONS,
    KINDS,
    RandomNet,
    channel_matrix,
    numerical_rank,
)
from studies._plots import plot_rank_study

__all__ = ["RankPoint", "RankStudyConfig", "RankStudyResult", "rank_study"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _choices(name: str, values: tuple, valid) -> tuple:
    values = tuple(values)
    bad = [v for v in values if v not in valid]
    if bad or not values:
        raise ValueError(f"RankStudyConfig.{name}={list(values)}; choose from {list(valid)}")
    return values


@dataclass
class RankStudyConfig(Config):
    """What the rank study runs.

    Args:
        kinds: layer kinds: ``"conv1x1"`` (a matrix), ``"conv3x3"``, ``"ib_conv3x3"``
            (1x1 expand d_in -> d_out + BN + f, then a 3x3 conv + BN + f) and ``"ib_dw3x3"``
            (the same with a depthwise 3x3).
        activations: nonlinearities f: ``identity``, ``relu``, ``relu6``, ``elu``, ``silu``,
            ``gelu``.
        ratios: dimension ratios ``d_in / d_out`` in (0, 1] (``d_in`` is rounded, >= 1).
        networks: random networks per (kind, ratio); every activation sees the same ones.
        min_out, max_out: ``d_out`` is drawn uniformly from this range.
        batch, spatial: the input is ``(batch, d_in, spatial, spatial)``; the output
            matrix has ``batch * spatial**2`` columns, which must exceed ``max_out``.
        batch_norm: BatchNorm (training mode, no affine) between each conv and f; False
            applies f to the raw conv output.
        rtol: singular values above ``rtol * sigma_max`` count; None: the numerical rank
            of NumPy/LAPACK, ``rtol = max(rows, cols) * eps(dtype)``.
        dtype: ``"float32"`` (how networks compute) or ``"float64"``.
        seed: seeds weights, inputs and sizes.

    Example:
        >>> RankStudyConfig(kinds=("conv1x1",), activations=("relu", "silu"), networks=10)
    """

    kinds: tuple[str, ...] = tuple(KINDS)
    activations: tuple[str, ...] = tuple(ACTIVATIONS)
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    networks: int = 60
    min_out: int = 16
    max_out: int = 64
    batch: int = 2
    spatial: int = 8
    batch_norm: bool = True
    rtol: float | None = None
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        self.kinds = _choices("kinds", self.kinds, KINDS)
        self.activations = _choices("activations", self.activations, ACTIVATIONS)
        self.ratios = tuple(float(r) for r in self.ratios)
        if not self.ratios or any(not 0 < r <= 1 for r in self.ratios):
            raise ValueError(f"RankStudyConfig.ratios={list(self.ratios)}: each must be in (0, 1]")
        for name in ("networks", "min_out", "batch", "spatial"):
            if getattr(self, name) < 1:
                raise ValueError(f"RankStudyConfig.{name}={getattr(self, name)} must be >= 1")
        if self.max_out < self.min_out:
            raise ValueError(
                f"RankStudyConfig.max_out={self.max_out} is below min_out={self.min_out}"
            )
        if self.batch * self.spatial**2 <= self.max_out:
            raise ValueError(
                f"RankStudyConfig: batch * spatial**2 = {self.batch * self.spatial**2} columns "
                f"must exceed max_out={self.max_out} (N > d_out); raise batch or spatial"
            )
        if self.rtol is not None and not 0 < self.rtol < 1:
            raise ValueError(f"RankStudyConfig.rtol={self.rtol} must be in (0, 1) or None")
        if self.dtype not in _DTYPES:
            raise ValueError(f"RankStudyConfig.dtype={self.dtype!r}; use one of {list(_DTYPES)}")


@dataclass(frozen=True)
class RankPoint:
    """The rank ratio ``rank(f(WX)) / d_out`` of one (kind, activation, ratio) cell."""

    kind: str
    activation: str
    ratio: float
    mean: float
    std: float
    networks: int


@dataclass
class RankStudyResult:
    """The study's table: one `RankPoint` per (kind, activation, dimension ratio)."""

    config: RankStudyConfig
    points: list[RankPoint]
    seconds: float = 0.0
    _index: dict = field(default_factory=dict, repr=False)

    def point(self, kind: str, activation: str, ratio: float) -> RankPoint:
        """The cell for ``(kind, activation, ratio)``; KeyError names what was studied."""
        if not self._index:
            self._index = {(p.kind, p.activation, round(p.ratio, 9)): p for p in self.points}
        key = (kind, activation, round(float(ratio), 9))
        if key not in self._index:
            raise KeyError(
                f"no rank-study cell {key}; studied kinds {list(self.config.kinds)}, "
                f"activations {list(self.config.activations)}, ratios {list(self.config.ratios)}"
            )
        return self._index[key]

    def rows(self) -> list[dict]:
        """The table as dicts (the CSV's rows)."""
        return [p.__dict__.copy() for p in self.points]

    def to_csv(self, path: str | Path) -> Path:
        """Write the table as CSV: kind, activation, ratio, mean, std, networks."""
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(RankPoint.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(self.rows())
        return path

    def plot(self, path: str | Path) -> Path:
        """Rank ratio against dimension ratio, one line per activation, one panel per kind."""
        return plot_rank_study(self, path)

    def findings(self) -> list[Finding]:
        """The paper's findings, each marked reproduced or not by these numbers."""
        return check_findings(self)


def _study_cell(config: RankStudyConfig, kind: str, ratio: float, gen) -> dict[str, list]:
    """Rank ratios of ``config.networks`` random networks, per activation."""
    dtype = _DTYPES[config.dtype]
    out: dict[str, list[float]] = {a: [] for a in config.activations}
    for _ in range(config.networks):
        d_out = int(torch.randint(config.min_out, config.max_out + 1, (1,), generator=gen))
        d_in = max(1, round(ratio * d_out))
        net = RandomNet(kind, d_in, d_out, gen, dtype, config.batch_norm)
        shape = (config.batch, d_in, config.spatial, config.spatial)
        x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
        pre = net.pre_activation(x)  # (B, d_out, S, S)
        for name in config.activations:
            y = channel_matrix(net.output(pre, ACTIVATIONS[name]))  # (d_out, B * S * S)
            out[name].append(numerical_rank(y, config.rtol) / d_out)
    return out


def rank_study(config: RankStudyConfig | None = None) -> RankStudyResult:
    """Run the rank study: the mean and spread of the rank ratio per cell.

    Every (kind, ratio) cell draws its own ``config.networks`` random networks from a
    generator seeded by ``config.seed``, the cell's kind and ratio, so a cell's numbers do
    not depend on which other cells run; all activations of a cell share the networks.

    Args:
        config: the study's settings (default: `RankStudyConfig()`, under a minute on
            one CPU thread).

    Returns:
        A `RankStudyResult` (table, CSV, figure, findings).

    Example:
        >>> result = rank_study(RankStudyConfig(kinds=("conv1x1",), networks=20))
        >>> result.point("conv1x1", "identity", 0.5).mean
        0.5...
    """
    config = config or RankStudyConfig()
    start = time.perf_counter()
    points = []
    cells = [(k, r) for k in config.kinds for r in config.ratios]
    for kind, ratio in progress(cells, desc="rank study"):
        cell_seed = config.seed * 1_000_003 + list(KINDS).index(kind) * 1009 + round(ratio * 1e6)
        gen = torch.Generator().manual_seed(cell_seed)
        ranks = _study_cell(config, kind, ratio, gen)
        for name, values in ranks.items():
            t = torch.tensor(values, dtype=torch.float64)
            std = float(t.std()) if len(values) > 1 else 0.0
            points.append(RankPoint(kind, name, ratio, float(t.mean()), std, len(values)))
    return RankStudyResult(config, points, time.perf_counter() - start)
