"""IntegralModel: resample/export, budgets, eval cache, gradients, widths, deepcopy."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import anywidth
from anywidth import create_model
from anywidth.graph import PlanError, channel_groups, cut, keep_first
from anywidth.integral import IntegralConfig, TrainableGrid, to_integral
from anywidth.integral import _order as order_module
from anywidth.measure import count_macs, count_params, evaluate
from tests.integral._helpers import input_for, random_model, random_plan, rel_err, shuffled_order

pytestmark = pytest.mark.usefixtures("one_thread")

EXPORT_MODELS = {
    "resnet20": {},
    "mobilenetv2": {"small_input": True},
    "rexnet_090": {},
    "tiny_concat": {},
    "tiny_depthwise_se": {},
}


def _check_plain_layers(small: nn.Module) -> None:
    for m in small.modules():
        assert not nn.utils.parametrize.is_parametrized(m)
        if isinstance(m, nn.Conv2d):
            assert m.weight.shape[0] == m.out_channels
            assert m.weight.shape[1] * m.groups == m.in_channels
        elif isinstance(m, nn.Linear):
            assert m.weight.shape == (m.out_features, m.in_features)
        elif isinstance(m, nn.BatchNorm2d):
            assert m.weight.numel() == m.running_var.numel() == m.num_features


@pytest.mark.parametrize("name", list(EXPORT_MODELS))
def test_resample_equals_the_inn_at_random_plans(name, monkeypatch):
    monkeypatch.setattr(order_module, "channel_order", shuffled_order)  # fast, still permuted
    model, x = random_model(name, **EXPORT_MODELS[name]), input_for(name)
    inn = to_integral(model, x[:1], IntegralConfig(partition="trainable")).eval()
    with torch.no_grad():
        for p in inn.grid_parameters():  # a non-uniform grid
            p.mul_(torch.rand_like(p) + 0.5)
    for seed in (0, 1):
        plan = random_plan(inn.groups, seed)
        small = inn.resample(plan)
        _check_plain_layers(small)
        with torch.no_grad(), inn.at(plan):
            assert rel_err(small(x), inn(x)) <= 1e-5
        assert count_params(small) < count_params(model)


def test_ratio_plans_round_every_group():
    model, x = random_model("resnet20"), input_for("resnet20")
    inn = to_integral(model, x[:1], IntegralConfig(reorder=False))
    plan = inn.width_plan(0.3)
    assert plan == {g.name: max(1, round(0.3 * g.size)) for g in inn.resizable}
    small = inn.resample(0.3)
    assert small.conv1.out_channels == round(0.3 * 16)
    assert small.layer3[0].conv1.out_channels == round(0.3 * 64)


@pytest.mark.parametrize("allocation", ["uniform", "global"])
@pytest.mark.parametrize("metric, target", [("macs", 0.5), ("params", 0.5), ("macs", 0.3)])
def test_budgets_are_met_within_two_percent(metric, target, allocation):
    model, x = random_model("resnet20"), input_for("resnet20", batch=1)
    inn = to_integral(model, x, IntegralConfig(reorder=False))
    small = inn.resample(**{f"target_{metric}": target}, allocation=allocation)
    if metric == "macs":
        ratio = count_macs(small, x) / count_macs(model, x)
    else:
        ratio = count_params(small) / count_params(model)
    assert abs(ratio - target) <= 0.02 * target
    sizes = inn.width_plan(**{f"target_{metric}": target}, allocation=allocation)
    if allocation == "uniform":  # the same ratio everywhere, up to rounding
        ratios = [sizes[g.name] / g.size for g in inn.resizable]
        assert max(ratios) - min(ratios) <= 1 / 16 + 1e-9


def test_global_allocation_follows_weight_importance():
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet", batch=1)
    with torch.no_grad():
        model.conv2.weight[8:] *= 1e-3  # half of conv2's filters barely matter
    inn = to_integral(model, x, IntegralConfig(reorder=False))
    scores = inn.channel_importance()
    assert all(abs(s.mean().item() - 1) < 1e-6 for s in scores.values())
    sizes = inn.width_plan(target_params=0.6, allocation="global", tolerance=0.1)
    uniform = inn.width_plan(target_params=0.6, tolerance=0.1)
    assert sizes["conv2:out"] < uniform["conv2:out"]


def test_eval_cache_discretizes_once_per_plan(monkeypatch):
    model, x = random_model("tiny_resnet"), input_for("tiny_resnet")
    inn = to_integral(model, x[:1]).eval()
    calls = []
    original = inn._discretize
    monkeypatch.setattr(inn, "_discretize", lambda *a, **k: calls.append(1) or original(*a, **k))
    with torch.no_grad():
        first, second = inn(x), inn(x)
        assert len(calls) == 1 and torch.equal(first, second)
        with inn.at(0.5):
            half = inn(x)
            assert torch.equal(half, inn(x))
        assert len(calls) == 2
        inn.lam.get_parameter("stem.0.weight").mul_(
            2.0
        )  # an in-place change (like an optimizer step)
        changed = inn(x)
        assert len(calls) == 3 and not torch.equal(changed, first)
        inn.train()
        inn.eval()
        inn(x)
        assert len(calls) == 4


def test_eval_cache_sees_in_place_changes_of_every_lam():
    model, x = random_model("tiny_resnet"), input_for("tiny_resnet")
    inn = to_integral(model, x[:1]).eval()
    with torch.no_grad():
        before = inn(x)
        assert len(inn._cache.tracked) == 2  # the shared counters of float and int64 λ
        inn.lam.get_buffer("stem.1.running_var").mul_(4.0)  # a buffer, in place
        changed = inn(x)
        assert not torch.equal(changed, before)
    optimizer = torch.optim.SGD(inn.weight_parameters(), lr=0.1)
    inn(x).square().mean().backward()  # gradients enabled: not cached
    optimizer.step()
    with torch.no_grad():
        assert not torch.equal(inn(x), changed)
        inn.double()  # new tensor objects: the cache checks every λ
        x = x.double()
        before = inn(x)
        assert len(inn._cache.tracked) == len(dict(inn.named_lams()))
        inn.lam.get_parameter("fc.weight").mul_(2.0)
        assert not torch.equal(inn(x), before)


def test_eval_cache_matches_an_uncached_forward():
    model, x = random_model("tiny_depthwise_se"), input_for("tiny_depthwise_se")
    inn = to_integral(model, x[:1]).eval()
    with inn.at(0.5):
        uncached = inn(x)  # gradients can flow: no cache
        with torch.no_grad():
            cached = inn(x)
    assert uncached.grad_fn is not None
    torch.testing.assert_close(cached, uncached.detach(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "name, eager", [("tiny_resnet", True), ("tiny_rexnet", True), ("tiny_concat", False)]
)
def test_eval_runs_the_sources_own_forward_where_it_can(name, eager):
    model, x = random_model(name), input_for(name)
    inn = to_integral(model, x[:1]).eval()
    with torch.no_grad(), inn.at(0.5):
        out = inn(x)
        expected = inn.resample(0.5).eval()(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    runners = [e.runner for e in inn._cache.entries.values()]  # tiny_concat: chunk constant
    assert len(runners) == 1 and (type(runners[0]) is type(model)) == eager


def test_training_gradients_reach_lam_and_partitions():
    model, x = random_model("tiny_resnet"), input_for("tiny_resnet", batch=4)
    inn = to_integral(model, x[:1], IntegralConfig(partition="trainable")).train()
    stats = inn.lam.get_buffer("stem.1.running_mean").clone()
    with inn.at(0.5):
        inn(x).square().mean().backward()
    assert inn.lam.get_parameter("stem.0.weight").grad.abs().sum() > 0
    assert inn.lam.fc.weight.grad.abs().sum() > 0
    grids = list(inn.grid_parameters())
    assert grids and all(p.grad is not None and p.grad.abs().sum() > 0 for p in grids)
    assert torch.equal(inn.lam.get_buffer("stem.1.running_mean"), stats)  # λ never drifts


def test_partition_tuning_in_eval_mode_reaches_the_grid_only():
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    inn = to_integral(model, x[:1], IntegralConfig(partition="trainable")).eval()
    assert isinstance(inn.grid("conv1:out"), TrainableGrid)
    with pytest.raises(PlanError, match="did you mean"):
        inn.grid("conv1:ou")
    for p in inn.weight_parameters():
        p.requires_grad_(False)
    with inn.at(0.5):
        inn(x).square().mean().backward()
    assert all(p.grad is not None for p in inn.grid_parameters())


def test_at_and_set_sizes_choose_the_width():
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    inn = to_integral(model, x[:1]).eval()
    full = inn.sizes
    with inn.at({"conv2:out": 5}) as same:
        assert same is inn and inn.sizes["conv2:out"] == 5
    assert inn.sizes == full
    inn.set_sizes_(0.5)
    assert inn.sizes == {"conv1:out": 4, "conv2:out": 8}
    assert inn.resample().conv2.out_channels == 8
    inn.set_sizes_(None)
    assert inn.sizes == full


def test_deepcopy_after_resampling_a_deep_network():
    # The INN keeps a Cutter (a raw fx graph) after its first resample; a deep copy of
    # resnet56's once exceeded Python's recursion limit (partition tuning deep-copies).
    model = create_model("resnet56", num_classes=10, in_channels=1).eval()
    x = torch.randn(2, 1, 8, 8)
    inn = to_integral(model, x[:1], IntegralConfig(reorder=False)).eval()
    with torch.no_grad():
        half = inn.resample(0.5)(x)
        with inn.at(0.5):
            inn(x)
        twin = copy.deepcopy(inn)
        torch.testing.assert_close(twin.resample(0.5)(x), half)
        with twin.at(0.5):
            torch.testing.assert_close(twin(x), half, rtol=1e-5, atol=1e-5)


def test_deepcopy_is_independent():
    model, x = random_model("tiny_rexnet"), input_for("tiny_rexnet")
    inn = to_integral(model, x[:1], IntegralConfig(partition="trainable")).eval()
    twin = copy.deepcopy(inn)
    with torch.no_grad():
        assert torch.equal(twin(x), inn(x))
        twin.lam.get_parameter("head.0.weight").zero_()
        assert not torch.equal(twin(x), inn(x))
        assert rel_err(inn(x), model(x)) <= 1e-5
        with twin.at(0.5):
            assert twin(x).shape == model(x).shape


def test_a_cast_inn_exports_in_its_dtype():
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    inn = to_integral(model, x[:1]).double().eval()
    small = inn.resample(0.5)
    assert small.conv1.weight.dtype == torch.float64
    with torch.no_grad(), inn.at(0.5):
        assert rel_err(small(x.double()), inn(x.double())) <= 1e-12


def test_resampling_a_trained_model_beats_slicing_it():
    """Sanity numbers on real data, after BN recalibration: the resampled INN keeps about
    the accuracy of keeping the first channels, or more (measured over 6 seeds, mean of
    75% and 50% width: INN 0.30-0.48, slicing 0.24-0.51; INN ahead in 4 of 6)."""
    from anywidth.data import make_loaders
    from anywidth.train import TrainConfig, recalibrate_bn, train_

    loaders = make_loaders("digits", batch_size=64)
    model = anywidth.create_model("tiny_convnet", in_channels=1)
    train_(model, loaders.train, TrainConfig(epochs=10, lr=0.02, optimizer="adamw"))
    x = next(iter(loaders.train))[0][:1]
    assert evaluate(model, loaders.val)["accuracy"] > 0.8
    inn = to_integral(model, x)
    groups = channel_groups(model, x)
    acc = {"inn": [], "slice": []}
    for ratio in (0.75, 0.5):
        sizes = {g.name: round(ratio * g.size) for g in groups if not g.fixed}
        models = {"inn": inn.resample(sizes), "slice": cut(model, x, keep_first(groups, sizes))}
        for kind, small in models.items():
            small = recalibrate_bn(small, loaders.train, batches=10)
            acc[kind].append(evaluate(small, loaders.val)["accuracy"])
    assert sum(acc["inn"]) / 2 >= sum(acc["slice"]) / 2 - 0.05, acc


class _FlattenTranspose(nn.Module):
    """A transposed conv (integrated along dim 0) and a flatten into a Linear (block 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.bn = nn.BatchNorm2d(6)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(6 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.up(torch.relu(self.conv(x)))))  # (B, 6, 2H, 2W)
        return self.fc(self.pool(x).flatten(1))


def test_transposed_convs_and_flattened_blocks():
    from tests.graph._helpers import randomize_

    model, x = randomize_(_FlattenTranspose()), input_for("tiny_x")
    inn = to_integral(model, x[:1], IntegralConfig(reorder=False)).eval()
    q = torch.full((8,), 1 / 7)
    q[[0, -1]] /= 2  # trapezoid over the 8 channels of conv:out, integrated on dim 0
    torch.testing.assert_close(inn.lam.up.weight, model.up.weight / q[:, None, None, None])
    q = torch.full((6,), 1 / 5)
    q[[0, -1]] /= 2  # up:out reaches fc as 6 blocks of 4 features
    torch.testing.assert_close(inn.lam.fc.weight, model.fc.weight / q.repeat_interleave(4))
    with torch.no_grad():
        assert rel_err(inn(x), model(x)) <= 1e-5
        plan = {"conv:out": 5, "up:out": 3}
        assert inn.discretize(plan)["fc.weight"].shape == (5, 12)
        with inn.at(plan):
            assert rel_err(inn.resample(plan)(x), inn(x)) <= 1e-5


def _recalibrated_full(inn):
    from anywidth.train import recalibrate_bn_

    full = inn.resample(None)
    recalibrate_bn_(full, [torch.randn(8, 3, 8, 8) * 2 for _ in range(3)], batches=3)
    return full, dict(full.named_buffers())


def _distance(inn, stats) -> float:
    buffers = inn.resample(None).named_buffers()
    return sum((v - stats[n]).norm().item() for n, v in buffers if v.is_floating_point())


@pytest.mark.parametrize("partition", ["uniform", "trainable"])
def test_full_width_statistics_can_be_written_back(partition):
    model, x = random_model("tiny_resnet"), input_for("tiny_resnet", batch=8)
    inn = to_integral(model, x[:1], IntegralConfig(partition=partition)).eval()
    with torch.no_grad():
        for p in inn.grid_parameters():  # a trained grid (mildly warped: well conditioned)
            p.mul_(torch.rand_like(p) * 0.2 + 0.9)
    full, stats = _recalibrated_full(inn)
    inn.load_running_stats_(stats)
    for name, value in inn.resample(None).named_buffers():
        torch.testing.assert_close(value, stats[name], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert rel_err(inn(x), full(x)) <= 1e-4
    with pytest.raises(KeyError, match="not a buffer"):
        inn.load_running_stats_({"fc.weight": torch.zeros(10, 16)})


def test_statistics_with_fewer_nodes_are_fitted_by_least_squares():
    model, x = random_model("tiny_resnet"), input_for("tiny_resnet", batch=8)
    inn = to_integral(model, x[:1], IntegralConfig(nodes=0.5)).eval()
    _, stats = _recalibrated_full(inn)
    before = _distance(inn, stats)
    inn.load_running_stats_(stats)
    assert _distance(inn, stats) < before
