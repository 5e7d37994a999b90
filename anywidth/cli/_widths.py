"""Width tables of an any-width model: cut at MAC budgets, recalibrated and scored."""

from __future__ import annotations

from collections.abc import Sequence

from anywidth.cli._table import human
from anywidth.compression.pipeline import Source
from anywidth.measure import count_macs, count_params
from anywidth.train import recalibrate_bn_

__all__ = ["RECALIBRATE_BATCHES", "budget_rows"]

RECALIBRATE_BATCHES = 20


def budget_rows(wide, source: Source, targets: Sequence[float]) -> tuple[list, dict]:
    """A table row per MAC target (1.0: ``full``) of ``wide`` (an `IntegralModel` or a
    `SlimmableModel`) cut there and BatchNorm-recalibrated, and its test score as metrics
    (``test_accuracy_50pct_macs``, or ``test_psnr_...`` for super-resolution)."""
    key = f"test_{source.scorer.metric.name}"
    rows, metrics = [], {}
    for target in targets:
        small = wide.resample(target_macs=target)
        recalibrate_bn_(small, source.loaders.train, batches=RECALIBRATE_BATCHES)
        score = source.score(small)
        macs = count_macs(small, source.example)
        label = "full" if target == 1.0 else f"{target:.0%} MACs"
        rows.append([label, human(count_params(small)), human(macs), source.scorer.show(score)])
        metrics[f"{key}_{target:.0%}_macs".replace("%", "pct")] = score
    return rows, metrics
