"""register_layer: a user's own leaf layer becomes prunable and integrable."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from anywidth.graph import (
    GraphError,
    LayerSpec,
    WidthCost,
    channel_groups,
    cut,
    keep_first,
    register_layer,
)
from anywidth.integral import to_integral
from anywidth.measure import count_macs
from anywidth.pruning import PruneConfig, prune
from tests.graph._helpers import rel_err


class _FusedBase(nn.Module):
    """A 3x3 conv with BatchNorm folded into a per-channel scale.

    Its forward branches on the input's shape, which torch.fx cannot trace: the tracer
    must treat the layer as a leaf.
    """

    def __init__(self, in_channels: int, out_channels: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3, generator=gen))
        self.scale = nn.Parameter(torch.rand(out_channels, generator=gen) + 0.5)
        self.bias = nn.Parameter(torch.randn(out_channels, generator=gen) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2:  # odd inputs are padded to even: not traceable by torch.fx
            x = F.pad(x, (0, 1, 0, 1))
        weight = self.weight * self.scale.view(-1, 1, 1, 1)  # (C_out, C_in, 3, 3)
        return F.conv2d(x, weight, self.bias, padding=1)


class FusedConvBN(_FusedBase):
    pass


class PlainFused(_FusedBase):
    """The same layer, never registered."""


def _resize(layer: nn.Module, in_channels: int, out_channels: int) -> None:
    layer.in_channels, layer.out_channels = in_channels, out_channels


register_layer(
    FusedConvBN,
    LayerSpec.dense(
        inputs={"weight": 1},
        outputs={"weight": 0, "scale": 0, "bias": 0},
        resize=_resize,
    ),
)


class Net(nn.Module):
    def __init__(self, layer: type[nn.Module]) -> None:
        super().__init__()
        self.stem = layer(3, 8, seed=1)
        self.body = layer(8, 6, seed=2)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.body(F.relu(self.stem(x))))  # (B, 6, H, W)
        return self.fc(x.mean((2, 3)))


X = torch.randn(2, 3, 6, 6)


def _net() -> Net:
    torch.manual_seed(0)
    return Net(FusedConvBN).eval()


@torch.no_grad()
def _masked(model: Net, keep: dict[str, list[int]]) -> torch.Tensor:
    """The full model with the removed output channels of each fused layer zeroed."""
    hooks = []
    for name in ("stem", "body"):
        kept = keep.get(f"{name}:out")
        if kept is None:
            continue
        layer = getattr(model, name)
        removed = torch.tensor([c for c in range(layer.out_channels) if c not in kept])
        hooks.append(layer.register_forward_hook(lambda m, i, y, r=removed: y.index_fill(1, r, 0)))
    try:
        return model(X)
    finally:
        for hook in hooks:
            hook.remove()


def test_an_unregistered_untraceable_layer_goes_through_torch_export_and_cuts_exactly():
    # torch.fx fails on its forward; torch.export traces it, and the ATen conv's weight,
    # computed in forward from two parameters, is followed back to them.
    torch.manual_seed(0)
    model = Net(PlainFused).eval()
    groups = {g.name: g for g in channel_groups(model, X)}
    assert [n for n, g in groups.items() if not g.fixed] == ["stem:out", "body:out"]
    members = {(m.name, m.dim) for m in groups["stem:out"].members}
    assert {("stem.weight", 0), ("stem.scale", 0), ("stem.bias", 0), ("body.weight", 1)} == members
    keep = {"stem:out": [0, 3, 5], "body:out": [1, 2]}
    small = cut(model, X, keep)
    assert type(small) is Net and small.body.weight.shape == (2, 3, 3, 3)
    with torch.no_grad():
        assert rel_err(small(X), _masked(model, keep)) <= 1e-6


def test_a_model_neither_front_end_traces_is_a_clear_error():
    class Untraceable(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x  # data-dependent branch

    with pytest.raises(GraphError, match=r"torch\.fx\.wrap.*torch\.export failed as well"):
        channel_groups(Untraceable(), X)


def test_a_registered_layer_has_channel_groups_and_cuts_like_a_conv():
    model = _net()
    groups = {g.name: g for g in channel_groups(model, X)}
    assert not groups["stem:out"].fixed and not groups["body:out"].fixed
    members = {(m.name, m.dim) for m in groups["stem:out"].members}
    assert {("stem.weight", 0), ("stem.scale", 0), ("stem.bias", 0), ("body.weight", 1)} == members
    keep = {"stem:out": [0, 3, 5], "body:out": [1, 2]}
    small = cut(model, X, keep)
    assert type(small) is Net and type(small.stem) is FusedConvBN
    assert (small.stem.out_channels, small.body.in_channels, small.fc.in_features) == (3, 3, 2)
    assert small.body.weight.shape == (2, 3, 3, 3)
    assert rel_err(small(X), _masked(model, keep)) <= 1e-5
    assert model.stem.out_channels == 8  # the caller's model is untouched


def test_the_cost_of_a_registered_layer_matches_the_flop_counter():
    model = _net()
    groups = channel_groups(model, X)
    sizes = {"stem:out": 5, "body:out": 3}
    small = cut(model, X, keep_first(groups, sizes))
    assert WidthCost(model, X, groups).macs(sizes) == count_macs(small, X)


def test_a_registered_layer_is_pruned_to_a_budget():
    model = _net()
    small, report = prune(model, X, PruneConfig(target_macs=0.5, tolerance=0.1))
    assert type(small) is Net
    assert abs(report.mac_ratio - 0.5) <= 0.05
    assert small.stem.weight.shape[0] < 8 or small.body.weight.shape[0] < 6


def test_a_registered_layer_is_integrable_and_resamples_to_any_width():
    model = _net()
    inn = to_integral(model, X[:1]).eval()
    with torch.no_grad():
        assert rel_err(inn(X), model(X)) <= 1e-4  # full width reproduces the model
        small = inn.resample({"stem:out": 5, "body:out": 4})
        assert type(small) is Net and small.stem.weight.shape == (5, 3, 3, 3)
        with inn.at({"stem:out": 5, "body:out": 4}):
            assert rel_err(small.eval()(X), inn(X)) <= 1e-4


def test_register_layer_rejects_what_is_not_a_layer_or_a_spec():
    with pytest.raises(TypeError, match="needs an nn.Module class"):
        register_layer(object, LayerSpec.per_channel({"weight": 0}))
    with pytest.raises(TypeError, match="needs a LayerSpec.*LayerSpec.dense"):
        register_layer(PlainFused, {"weight": 0})
    with pytest.raises(TypeError, match=r"maps tensor names to dimensions"):
        LayerSpec.dense(inputs={"weight": "1"}, outputs={"weight": 0})
