"""plan_macs / plan_params / WidthCost against measure.count_* of actually cut models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anywidth.graph import (
    PlanError,
    WidthCost,
    channel_groups,
    cut,
    keep_first,
    plan_macs,
    plan_params,
)
from anywidth.measure import count_macs, count_params
from tests.graph import _models as M

X = torch.randn(2, 3, 4, 4)

# (id, model factory, sizes)
CASES = [
    ("concat", M.Concat, {"a:out": 1, "b:out": 2, "mix:out": 3}),
    ("depthwise_mult2", lambda: M.Depthwise(2), {"stem:out": 3, "pw:out": 1}),
    ("grouped", M.Grouped, {"stem:out[0:2]": 1, "g:out[0:3]": 2}),
    ("se_gate", M.SEGate, {"stem:out": 4, "reduce:out": 1}),
    ("flatten", lambda: M.FlattenHead("method"), {"conv:out": 3}),
    ("partial_residual", M.PartialResidual, {"stem:out": 2, "conv:out[4:7]": 1}),
    ("norms", M.Norms, {"conv:out[0:4]": 2, "fc1:out": 4}),
    ("channels_last", M.ChannelsLast, {"conv:out": 5}),
    ("conv1d_transposed_3d", M.OtherDims, {"c:out": 3, "t:out": 2, "c3:out": 1}),
]


@pytest.mark.parametrize("factory, sizes", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_equals_counts_of_the_cut_model(factory, sizes):
    model = factory().eval()
    groups = channel_groups(model, X)
    small = cut(model, X, keep_first(groups, sizes), groups=groups)
    assert plan_macs(model, X, groups, sizes) == count_macs(small, X)
    assert plan_params(model, X, groups, sizes) == count_params(small)
    assert plan_macs(model, X, groups, {}) == count_macs(model, X)
    assert plan_params(model, X, groups, {}) == count_params(model)


def test_hand_computed_macs_of_a_conv_pair():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Conv2d(8, 4, 1))
    cost = WidthCost(model, X)
    # (out * in * k*k * H*W * batch) per conv: 8*3*9*16*2 + 4*8*16*2, then 5 channels kept.
    assert cost.macs({}) == 8 * 3 * 9 * 32 + 4 * 8 * 32 == 7936
    assert cost.macs({"0:out": 5}) == 5 * 3 * 9 * 32 + 4 * 5 * 32 == 4960
    assert cost.params({"0:out": 5}) == 5 * 3 * 9 + 4 * 5 + 4 == 159


def test_plan_rejects_bad_sizes():
    model = M.Concat()
    groups = channel_groups(model, X)
    with pytest.raises(PlanError, match="unknown channel group 'a:outt'; did you mean 'a:out'"):
        plan_macs(model, X, groups, {"a:outt": 1})
    with pytest.raises(PlanError, match=r"size 0 for channel group 'a:out' is outside 1..3"):
        plan_params(model, X, groups, {"a:out": 0})
    with pytest.raises(PlanError, match="'fc:out' is fixed"):
        plan_macs(model, X, groups, {"fc:out": 1})


def test_plan_cache_follows_model_changes():
    model = M.Concat()
    groups = channel_groups(model, X)
    before = plan_params(model, X, groups, {})
    model.fc = nn.Linear(6, 5)
    assert plan_params(model, X, None, {}) == before + (6 * 5 + 5) - (6 * 2 + 2)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_pricing_leaves_the_caller_model_modes_alone(train):
    model = M.Projection().train(train)
    plan_macs(model, X, None, {"conv1:out": 2})
    assert all(m.training == train for m in model.modules())
