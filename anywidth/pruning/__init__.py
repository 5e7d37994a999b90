"""Structured pruning baselines: importance criteria and one-call budget pruning."""

from anywidth.pruning.importance import (
    ActivationImportance,
    Importance,
    MagnitudeImportance,
    RandomImportance,
    TaylorImportance,
    make_importance,
)
from anywidth.pruning.prune import PruneConfig, PruneReport, prune
from anywidth.train.recalibrate import recalibrate_bn, recalibrate_bn_

__all__ = [
    "Importance",
    "MagnitudeImportance",
    "PruneConfig",
    "PruneReport",
    "RandomImportance",
    "TaylorImportance",
    "ActivationImportance",
    "make_importance",
    "prune",
    "recalibrate_bn",
    "recalibrate_bn_",
]
