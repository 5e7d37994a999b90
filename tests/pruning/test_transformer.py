"""prune on a transformer: whole heads, MLP units and the hidden size, to a MAC budget."""

from __future__ import annotations

import pytest
import torch

from anywidth.measure import count_macs
from anywidth.pruning import PruneConfig, prune
from tests.graph._transformer import TinyBert, tiny_inputs

X = tiny_inputs()


@pytest.mark.parametrize("untraceable", [False, True], ids=["fx", "export"])
def test_prune_meets_the_budget_with_whole_heads_and_leaves_the_model_alone(untraceable):
    torch.manual_seed(0)
    model = TinyBert(untraceable=untraceable).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small, report = prune(model, X, PruneConfig(target_macs=0.5))
    assert type(small) is TinyBert
    assert abs(count_macs(small, X) / count_macs(model, X) - 0.5) <= 0.02
    for block in small.blocks:
        attn = block.attn
        assert attn.query.out_features % attn.head_dim == 0
        assert attn.query.out_features == attn.key.out_features == attn.out.in_features
    with torch.no_grad():
        assert small(*X).shape == (2, 3) and torch.isfinite(small(*X)).all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert report.widths_after["words:out"] < 16  # the hidden size is cut too


def test_activation_importance_takes_keyword_batches_and_cuts_whole_heads():
    torch.manual_seed(0)
    model = TinyBert().eval()
    data = [{"ids": ids, "mask": mask} for ids, mask in (tiny_inputs(seed=s) for s in range(3))]
    config = PruneConfig(target_macs=0.5, importance="activation")
    small, report = prune(model, X, config, data=data)
    assert abs(count_macs(small, X) / count_macs(model, X) - 0.5) <= 0.02
    for block in small.blocks:
        assert block.attn.query.out_features % block.attn.head_dim == 0
    # a different criterion from magnitude: it keeps other channels on this model
    l2, _ = prune(model, X, PruneConfig(target_macs=0.5, importance="l2"))
    assert any(
        a.shape != b.shape or not torch.equal(a, b)
        for a, b in zip(small.state_dict().values(), l2.state_dict().values(), strict=True)
    )
