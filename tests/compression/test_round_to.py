"""round_to: every width method gives multiples of it (or a whole group) through compress."""

from __future__ import annotations

import pytest
import torch

import anywidth
from anywidth import Budget, compress
from anywidth.graph import analyze_channels
from anywidth.integral import to_integral
from anywidth.pruning import PruneConfig
from anywidth.slim import ShrinkConfig, to_slimmable

X = torch.randn(1, 1, 8, 8)
METHODS = {
    "prune": lambda m: (m, PruneConfig(budget=Budget(macs=0.5, tolerance=0.1), round_to=8)),
    "slim": lambda m: (to_slimmable(m, X), ShrinkConfig(budget=Budget(macs=0.5, tolerance=0.1),
                                                         round_to=8)),
    "inn": lambda m: (to_integral(m, X), ShrinkConfig(budget=Budget(macs=0.5, tolerance=0.1),
                                                       round_to=8, tune_steps=0)),
}  # fmt: skip


@pytest.mark.parametrize("method", list(METHODS))
def test_widths_are_multiples_of_round_to(method):
    torch.manual_seed(0)
    model = anywidth.create_model("resnet20", num_classes=10, in_channels=1).eval()
    full = {g.name: g.size for g in analyze_channels(model, X)}
    wide, config = METHODS[method](model)
    _, report = compress(wide, X, config)
    assert report.met_budget
    cut = {n: w for n, w in report.widths.items() if w != full.get(n, w)}
    assert cut and all(w % 8 == 0 for w in cut.values()), cut


def test_round_to_is_checked():
    with pytest.raises(ValueError, match="ShrinkConfig.round_to=0"):
        ShrinkConfig(ratio=0.5, round_to=0)
