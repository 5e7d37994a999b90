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
