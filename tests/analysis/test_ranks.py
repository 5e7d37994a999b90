"""`layer_ranks`: exact ranks of layers built to have them, names, errors, model untouched."""

import pytest
import torch
from torch import nn

from anywidth.analysis import layer_ranks
from anywidth.graph import GraphError, PlanError
from tests.analysis._nets import LowRankFirst, batches


@pytest.mark.parametrize("rank", [1, 2, 5])
def test_a_linear_layer_of_rank_r_reports_r(rank: int) -> None:
    gen = torch.Generator().manual_seed(rank)
    layer = nn.Linear(8, 12, bias=False)
    with torch.no_grad():
        layer.weight.copy_(
            torch.randn(12, rank, generator=gen) @ torch.randn(rank, 8, generator=gen)
        )
    model = nn.Sequential(layer, nn.ReLU(), nn.Linear(12, 3))
    ranks = layer_ranks(model, torch.randn(64, 8, generator=gen))
    assert ranks["0"].rank == rank
    assert ranks["0"].channels == 12
    assert ranks["0"].ratio == rank / 12
    assert ranks["0"].rows == 64
    assert ranks["2"].rank == 3  # the head: full rank


def test_conv_outputs_are_flattened_over_batch_and_space() -> None:
    model = LowRankFirst(rank=4)
    ranks = layer_ranks(model, batches(n=2))
    assert list(ranks) == ["conv1", "conv2", "fc"]
    assert (ranks["conv1"].rank, ranks["conv1"].channels) == (4, 16)
    assert ranks["conv1"].rows == 2 * 16 * 8 * 8
    assert ranks["conv2"].rank == 16


def test_layers_picks_modules_by_glob_and_rtol_is_the_threshold() -> None:
    model = LowRankFirst(rank=4)
    ranks = layer_ranks(model, batches(n=1), layers=["act*", "bn1"])
    assert list(ranks) == ["bn1", "act1", "act2"]
    # Ranks are taken in eval mode: a fresh BN is the identity; ReLU raises the rank.
    assert ranks["bn1"].rank == 4
    assert ranks["act1"].rank > 4
    # A threshold of 0.999 sigma_max keeps only the largest direction.
    assert layer_ranks(model, batches(n=1), ["conv2"], rtol=0.999)["conv2"].rank == 1


def test_max_batches_limits_the_rows() -> None:
    ranks = layer_ranks(LowRankFirst(), batches(n=3), max_batches=1)
    assert ranks["fc"].rows == 16
    assert not ranks["fc"].row_limited


def test_too_few_rows_are_flagged() -> None:
    model = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 2))
    ranks = layer_ranks(model, torch.randn(8, 4))
    assert ranks["0"].rank == 5  # 4 input directions + the bias
    assert ranks["0"].rows == 8 < ranks["0"].channels
    assert ranks["0"].row_limited


def test_the_model_is_not_changed() -> None:
    model = LowRankFirst().train()
    model.bn1.eval()  # a deliberately frozen BN stays so
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer_ranks(model, batches())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and not model.bn1.training and model.bn2.training
    assert all(not m._forward_hooks for m in model.modules())


def test_bad_arguments_are_named() -> None:
    model = LowRankFirst()
    with pytest.raises(PlanError, match="layers pattern 'conv3' matches no module.*conv1"):
        layer_ranks(model, batches(), layers=["conv3"])
    with pytest.raises(ValueError, match=r"rtol=0 must be in \(0, 1\)"):
        layer_ranks(model, batches(), rtol=0)
    with pytest.raises(ValueError, match="max_batches=0 must be >= 1"):
        layer_ranks(model, batches(), max_batches=0)
    with pytest.raises(ValueError, match="data gave no batches"):
        layer_ranks(model, [])
    with pytest.raises(
        GraphError, match=r"layer '0' returns Tensor \(6,\).*pick layers with layers="
    ):
        layer_ranks(nn.Sequential(nn.Flatten(0)), torch.randn(2, 3), layers=["0"])
    with pytest.raises(GraphError, match="no Conv/Linear layer to rank"):
        layer_ranks(nn.Sequential(nn.ReLU()), torch.randn(2, 3))
