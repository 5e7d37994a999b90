"""`Auto(budget)` through `compress`: on a model built so that one method is exact at the
budget and the other is not, the screen finds it, finishes it and says why."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from anywidth import Budget, compress
from anywidth.compare import METHODS, Auto, AutoReport
from anywidth.data import Loaders


def _low_rank_mlp() -> nn.Module:
    """Its middle layer has rank 2: low rank at half the MACs is exact, pruning is not."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 96), nn.ReLU(), nn.Linear(96, 96), nn.ReLU(),
                          nn.Linear(96, 6))  # fmt: skip
    with torch.no_grad():
        model[2].weight.copy_(torch.randn(96, 2) @ torch.randn(2, 96) / 4)
    return model.eval()


def _self_labelled(model: nn.Module) -> Loaders:
    """Inputs labelled by the model itself: the full model scores 100%."""
    generator = torch.Generator().manual_seed(1)

    def split(n: int, shuffle: bool) -> DataLoader:
        x = torch.randn(n, 16, generator=generator)
        with torch.no_grad():
            y = model(x).argmax(1)
        return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(2))  # fmt: skip

    return Loaders(train=split(256, True), val=split(256, False), test=split(256, False),
                   num_classes=6, in_channels=16, image_size=1, name="self-labelled")  # fmt: skip


@pytest.fixture(scope="module")
def case():
    model = _low_rank_mlp()
    return model, _self_labelled(model)


def test_auto_picks_the_method_known_to_win_and_says_why(case):
    model, loaders = case
    config = Auto(Budget(macs=0.5), methods=("prune-l1", "alds"), tune_steps=5)
    small, report = compress(model, torch.randn(1, 16), config, loaders)
    details = report.details
    assert isinstance(details, AutoReport) and details.chosen == "alds"
    assert report.method == "auto: alds" and report.met_budget
    scores = {t.method: t.score for t in details.trials}
    assert scores["alds"] == 1.0 and scores["prune-l1"] < 0.9  # a clear win, not a tie
    assert all(t.seconds > 0 for t in details.trials)
    assert report.done[0].startswith("screened 2 methods") and "prune-l1" in report.done[0]
    assert report.done[1].startswith("chose alds: best screened score 1 on 256 validation")
    x, y = next(iter(loaders.test))
    assert torch.equal(small(x).argmax(1), y)  # exact, as constructed


def test_a_method_that_cannot_meet_the_budget_is_listed_with_its_reason(case):
    model, loaders = case
    config = Auto(Budget(macs=0.5), methods=("tas", "alds"), tune_steps=0, train_epochs=1)
    _, report = compress(model, torch.randn(1, 16), config, loaders)
    tas = report.details.trials[0]
    # a one-epoch search lands outside the band: not a candidate, however it scores
    assert tas.method == "tas" and tas.score is None and "missed the budget" in tas.note
    assert "tas could not meet the budget" in report.done[0]
    assert report.details.chosen == "alds"


def test_training_methods_join_the_screen_when_given_epochs(case):
    model, loaders = case
    assert "slim" not in Auto(Budget(macs=0.5)).methods  # no training time: one-shot only
    assert Auto(Budget(macs=0.5), train_epochs=1).methods == tuple(METHODS)
    with pytest.raises(ValueError, match=r"\['slim'\] train before compressing: give Auto"):
        Auto(Budget(macs=0.5), methods=("slim", "alds"))
    config = Auto(Budget(macs=0.5), methods=("slim", "prune-l1"), tune_steps=0, train_epochs=1)
    _, report = compress(model, torch.randn(1, 16), config, loaders)
    assert [t.method for t in report.details.trials] == ["slim", "prune-l1"]
    assert all(t.score is not None for t in report.details.trials)


def test_auto_refuses_bad_input(case):
    model, loaders = case
    with pytest.raises(ValueError, match="Auto needs a budget"):
        Auto()
    with pytest.raises(ValueError, match="unknown method 'inn2' \\(did you mean 'inn'\\?\\)"):
        Auto(Budget(macs=0.5), methods=("inn2",))
    with pytest.raises(ValueError, match="screen_batches=0 must be an int >= 1"):
        Auto(Budget(macs=0.5), screen_batches=0)
    with pytest.raises(ValueError, match="pass a Loaders record"):
        compress(model, torch.randn(1, 16), Auto(Budget(macs=0.5)), loaders.train)
