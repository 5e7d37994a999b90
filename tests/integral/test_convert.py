"""to_integral: exact at full width for every zoo model; config, nodes, fixed groups, plans,
tied weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import anywidth
from anywidth.graph import GraphError, PlanError, channel_groups
from anywidth.integral import (
    IntegralConfig,
    load_integral,
    path_length,
    save_integral,
    to_integral,
)
from anywidth.integral import _order as order_module
from anywidth.integral._order import group_features
from tests.graph._helpers import randomize_
from tests.graph._models import SharedDepthwise
from tests.integral._helpers import input_for, random_model, rel_err, shuffled_order

pytestmark = pytest.mark.usefixtures("one_thread")

ZOO = [n for n in anywidth.list_models() if not n.startswith("_")]  # "_": test-only models


@pytest.mark.parametrize("reorder", [False, True], ids=["plain", "reordered"])
@pytest.mark.parametrize("name", ZOO)
def test_full_width_reproduces_the_source(name, reorder, monkeypatch):
    # The ordering search is tested on its own; a random order is a harder test of the
    # permutation bookkeeping and keeps this matrix fast.
    monkeypatch.setattr(order_module, "channel_order", shuffled_order)
    model, x = random_model(name), input_for(name)
    inn = to_integral(model, x[:1], IntegralConfig(reorder=reorder)).eval()
    assert bool(inn.permutation) == reorder
    with torch.no_grad():
        assert rel_err(inn(x), model(x)) <= 1e-5


def test_ordering_shortens_every_group_path_and_keeps_the_function():
    model, x = random_model("tiny_resnet"), input_for("tiny_resnet")
    inn = to_integral(model, x[:1], IntegralConfig(reorder=True)).eval()
    groups = {g.name: g for g in channel_groups(model, x[:1])}
    assert set(inn.permutation) == {n for n, g in groups.items() if not g.fixed}
    for name, perm in inn.permutation.items():
        features = group_features(model, groups[name])
        identity = torch.arange(groups[name].size)
        assert path_length(features, perm) <= path_length(features, identity) + 1e-6
    with torch.no_grad():
        assert rel_err(inn(x), model(x)) <= 1e-5


@pytest.mark.parametrize("partition", ["uniform", "trainable"])
@pytest.mark.parametrize("rule", ["rectangle", "trapezoid", "simpson"])
@pytest.mark.parametrize("name", ["resnet20", "tiny_concat"])
def test_every_rule_and_partition_is_exact_at_full_width(name, rule, partition):
    model, x = random_model(name), input_for(name)
    config = IntegralConfig(rule=rule, partition=partition, reorder=False)
    inn = to_integral(model, x[:1], config).eval()
    with torch.no_grad():
        assert rel_err(inn(x), model(x)) <= 1e-5


def test_caller_model_is_not_changed():
    model, x = random_model("tiny_rexnet"), input_for("tiny_rexnet")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inn = to_integral(model, x[:1])
    assert inn.training and model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_resampled_layers_keep_their_output_scale():
    """A constant weight function integrates to the same value at every width."""
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    inn = to_integral(model, x[:1], IntegralConfig(reorder=False))
    with torch.no_grad():
        inn.lam.conv2.weight.fill_(1.0)
    for m in (2, 3, 5, 8):
        weight = inn.discretize({"conv1:out": m})["conv2.weight"]  # (16, m, 3, 3)
        assert weight.shape[1] == m
        torch.testing.assert_close(weight.sum(1), torch.ones(16, 3, 3))
        if m > 2:  # trapezoid: interior weights 1/(m-1), i.e. (n-1)/(m-1) times full width
            assert weight[0, 1, 0, 0].item() == pytest.approx(1 / (m - 1))


def test_bn_and_output_dims_are_only_sampled():
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    inn = to_integral(model, x[:1], IntegralConfig(reorder=False))
    assert torch.equal(inn.lam.bn1.running_var, model.bn1.running_var)
    assert torch.equal(inn.lam.conv1.weight, model.conv1.weight)  # (out: sampled, in: fixed)
    n = model.conv2.weight.shape[1]
    q = torch.full((n,), 1 / (n - 1))
    q[[0, -1]] /= 2
    torch.testing.assert_close(inn.lam.conv2.weight, model.conv2.weight / q[:, None, None])


def test_fixed_groups_stay_discrete():
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    inn = to_integral(model, x[:1], IntegralConfig(reorder=True, fixed=["conv1:*"]))
    assert "conv1:out" not in inn.nodes and "conv1:out" not in inn.permutation
    assert "conv2:out" in inn.permutation
    with pytest.raises(PlanError, match="fixed"):
        inn.width_plan({"conv1:out": 4})
    inn = to_integral(model, x[:1], IntegralConfig(reorder=False, fixed=["conv1:*"]))
    assert torch.equal(inn.lam.conv2.weight, model.conv2.weight)  # its input is not integrated


@pytest.mark.parametrize("method", ["lstsq", "sample"])
def test_fewer_nodes_compress_the_parameters(method):
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    config = IntegralConfig(nodes=0.5, nodes_init=method, reorder=False)
    inn = to_integral(model, x[:1], config)
    assert inn.nodes == {"conv1:out": 4, "conv2:out": 8}
    assert inn.lam.conv1.weight.shape == (4, 3, 3, 3)
    assert inn.lam.conv2.weight.shape == (8, 4, 3, 3)
    assert inn.lam.fc.weight.shape == (10, 8)
    full = inn.discretize()
    assert full["conv2.weight"].shape == model.conv2.weight.shape
    with torch.no_grad():
        assert torch.isfinite(inn.eval()(x)).all()


def test_least_squares_fits_at_least_as_well_as_sampling():
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    errors = {}
    for method in ("lstsq", "sample"):
        config = IntegralConfig(nodes={"conv2:out": 6}, nodes_init=method, reorder=False)
        weight = to_integral(model, x[:1], config).discretize()["conv2.weight"]
        errors[method] = (weight - model.conv2.weight).norm().item()
    assert errors["lstsq"] <= errors["sample"] + 1e-6


def test_nodes_per_group_are_validated():
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    with pytest.raises(PlanError, match="did you mean"):
        to_integral(model, x[:1], IntegralConfig(nodes={"conv1:ou": 2}))
    with pytest.raises(PlanError, match="at most"):
        to_integral(model, x[:1], IntegralConfig(nodes={"conv1:out": 9}))
    with pytest.raises(PlanError, match="only fixed"):
        to_integral(model, x[:1], IntegralConfig(nodes={"fc:out": 2}))


BAD_PLANS = [
    pytest.param({"conv1:out": 0}, "outside 1..8", id="zero"),
    pytest.param({"conv1:out": 9}, "cannot grow", id="above-original"),
    pytest.param({"conv1:ou": 4}, "did you mean 'conv1:out'", id="unknown"),
    pytest.param({"input:x": 2}, "fixed", id="fixed"),
    pytest.param({"conv1:out": 2.5}, "integer", id="fraction"),
    pytest.param(0.0, r"\(0, 1\]", id="ratio-zero"),
    pytest.param(1.5, r"\(0, 1\]", id="ratio-above-one"),
]


@pytest.mark.parametrize("plan, message", BAD_PLANS)
def test_bad_width_plans_get_clear_errors(plan, message):
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    inn = to_integral(model, x[:1], IntegralConfig(nodes={"conv1:out": 3}, reorder=False))
    for call in (inn.width_plan, inn.set_sizes_, inn.discretize, inn.resample):
        with pytest.raises(PlanError, match=message):
            call(plan)
    assert inn.sizes == {"conv1:out": 8, "conv2:out": 16}


def test_fewer_nodes_do_not_limit_the_width():
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    inn = to_integral(model, x[:1], IntegralConfig(nodes={"conv1:out": 3}, reorder=False))
    assert inn.discretize({"conv1:out": 8})["conv1.weight"].shape[0] == 8


BAD_CONFIGS = [
    pytest.param({"rule": "midpoint"}, "rule", id="rule"),
    pytest.param({"partition": "random"}, "partition", id="partition"),
    pytest.param({"nodes": 0}, "nodes", id="nodes-zero"),
    pytest.param({"nodes": 1.5}, "nodes", id="nodes-ratio"),
    pytest.param({"nodes": {"conv1:out": 0}}, "node", id="nodes-dict"),
    pytest.param({"nodes_init": "svd"}, "nodes_init", id="nodes-init"),
    pytest.param({"reorder": "yes"}, "reorder", id="reorder"),
    pytest.param({"order_time_limit": 0}, "order_time_limit", id="time-limit"),
]


@pytest.mark.parametrize("fields, message", BAD_CONFIGS)
def test_config_rejects_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        IntegralConfig(**fields)


def test_config_round_trips_through_dicts():
    config = IntegralConfig(rule="simpson", nodes={"a:out": 3}, partition="trainable", fixed="b*")
    assert IntegralConfig.from_dict(config.to_dict()) == config
    assert config.fixed == ("b*",)
    with pytest.raises(ValueError, match="unknown IntegralConfig field"):
        IntegralConfig.from_dict({"rules": "simpson"})


class _Tied(nn.Module):
    """Three convs, ``c`` using ``b``'s weight; ``residual`` puts b and c on one group."""

    def __init__(self, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 3, padding=1)
        self.c.weight = self.b.weight
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.a(x))  # (B, 8, H, W)
        for conv in (self.b, self.c):
            x = x + torch.relu(conv(x)) if self.residual else torch.relu(conv(x))
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("reorder", [False, True], ids=["plain", "reordered"])
def test_tied_weights_on_one_group_get_one_weight_function(reorder, monkeypatch, tmp_path):
    monkeypatch.setattr(order_module, "channel_order", shuffled_order)
    model, x = randomize_(_Tied(residual=True)), input_for("tiny_x")
    inn = to_integral(model, x[:1], IntegralConfig(reorder=reorder)).eval()
    names = [n for n, _ in inn.named_lams()]
    assert "b.weight" in names and "c.weight" not in names  # one λ for the one tensor
    plan = {"a:out": 5}
    with torch.no_grad():
        assert rel_err(inn(x), model(x)) <= 1e-5
        tensors = inn.discretize(plan)
        assert tensors["c.weight"] is tensors["b.weight"]
        with inn.at(plan):
            small = inn.resample(plan)
            assert small.c.weight.shape == (5, 5, 3, 3)
            assert rel_err(small(x), inn(x)) <= 1e-5
    with inn.at(plan):
        inn(x).sum().backward()  # both uses of the tensor train its λ
    assert inn.lam.b.weight.grad.abs().sum() > 0
    save_integral(inn, tmp_path / "tied.safetensors")
    loaded = load_integral(tmp_path / "tied.safetensors", model=_Tied(residual=True))
    with torch.no_grad():
        assert torch.equal(loaded(x), inn(x))


def test_tied_weights_on_different_groups_are_refused_by_name():
    model, x = randomize_(_Tied(residual=False)), input_for("tiny_x")
    message = r"'b.weight' and 'c.weight' are one tensor .* Untie them .*fixed=\['a:out', 'b:out', "
    with pytest.raises(GraphError, match=message):
        to_integral(model, x[:1])
    fixed = IntegralConfig(fixed=["a:out", "b:out", "c:out"])  # what the message suggests
    inn = to_integral(model, x[:1], fixed).eval()
    with torch.no_grad():
        assert rel_err(inn(x), model(x)) <= 1e-5


class ConstantTable(nn.Module):
    """A plain tensor attribute read in forward (not a buffer): torch.fx lifts it as a
    ``_tensor_constant`` of the traced graph, as Swin's relative-position tables."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 16), nn.Linear(16, 3)
        self.table = torch.linspace(0.5, 1.5, 5)  # one factor per token

    def forward(self, x):  # (B, 5, 4)
        return self.b(torch.relu(self.a(x)) * self.table[:, None])


def test_a_lifted_constant_is_kept_as_it_is_and_the_model_resamples():
    torch.manual_seed(0)
    model = ConstantTable().eval()
    x = torch.randn(2, 5, 4)
    inn = to_integral(model, x)
    with torch.no_grad():
        assert rel_err(inn.resample(1.0)(x), model(x)) <= 1e-5
        small = inn.resample({"a:out": 8})
        assert small.a.out_features == 8 and small(x).shape == (2, 5, 3)
        assert torch.equal(small.table, model.table)


class OwnLayerNorm(nn.LayerNorm):
    """timm's LayerNorm: a subclass with its own forward reading ``normalized_shape``."""

    def forward(self, x):
        return nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class WithOwnNorm(nn.Module):
    """Shape-dependent Python sends it through torch.export, whose graph calls the norm's
    ``layer_norm`` on its tensors instead of calling the module (timm's ConViT)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.b = nn.Linear(4, 16), OwnLayerNorm(16), nn.Linear(16, 3)

    def forward(self, x):
        if x.shape[-1] > 1:
            x = self.a(x)
        return self.b(self.norm(x))


def test_a_norm_called_functionally_through_torch_export_gets_an_any_width_model():
    torch.manual_seed(0)
    model = WithOwnNorm().eval()
    nn.init.uniform_(model.norm.weight, 0.5, 1.5)
    x = torch.randn(2, 5, 4)
    inn = to_integral(model, x)
    with torch.no_grad():
        assert rel_err(inn.resample(1.0)(x), model(x)) <= 1e-5
        small = inn.resample({"a:out": 8})
        with inn.at({"a:out": 8}):
            assert rel_err(inn(x), small(x)) <= 1e-5
    assert small.norm.normalized_shape == (8,) and small(x).shape == (2, 5, 3)


def test_a_module_held_under_two_names_gets_one_weight_function():
    torch.manual_seed(0)
    model = SharedDepthwise().eval()
    x = torch.randn(2, 3, 6, 6)
    inn = to_integral(model, x)
    with torch.no_grad():
        assert rel_err(inn.resample(1.0)(x), model(x)) <= 1e-5
        small = inn.resample({"stem:out": 4})
        with inn.at({"stem:out": 4}):
            assert rel_err(inn(x), small(x)) <= 1e-5
    assert small.pos.weight.shape == (4, 1, 3, 3) and small.blocks[0].pos is small.pos
