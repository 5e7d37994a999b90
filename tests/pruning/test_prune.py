import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from anywidth import create_model, list_models
from anywidth.graph import PlanError, channel_groups
from anywidth.measure import count_macs, count_params
from anywidth.models.superres import SR_MODELS
from anywidth.pruning import (
    ActivationImportance,
    MagnitudeImportance,
    PruneConfig,
    prune,
    recalibrate_bn,
)
from anywidth.train import load_model, save_checkpoint


def _data(shape=(1, 8, 8), n=32, classes=10):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=8)


@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    return create_model("resnet20", num_classes=10, in_channels=1).eval()


X8 = torch.randn(1, 1, 8, 8)


def test_config_validation_and_round_trip():
    config = PruneConfig(target_macs=0.5, importance="l2", fixed=["layer3.*"], round_to=2)
    assert PruneConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="target_macs= or target_params="):
        PruneConfig()
    with pytest.raises(ValueError, match="importance='l3'"):
        PruneConfig(target_macs=0.5, importance="l3")
    with pytest.raises(ValueError, match="ranking"):
        PruneConfig(target_macs=0.5, ranking="everywhere")
    with pytest.raises(ValueError, match="exactly one"):
        PruneConfig(target_macs=0.5, target_params=0.5)
    with pytest.raises(ValueError, match=r"PruneConfig.target_macs=-1 is not a finite number"):
        PruneConfig(target_macs=-1)


@pytest.mark.parametrize("value", [float("inf"), float("nan")], ids=str)
@pytest.mark.parametrize("name", ["target_macs", "target_params"])
def test_non_finite_budget_is_an_error_not_the_unpruned_model(name, value):
    message = (
        f"PruneConfig.{name}={value!r} is not a finite number above 0; give a fraction of the "
        "original model in (0, 1] (0.5 keeps half) or an absolute count above 1"
    )
    with pytest.raises(ValueError) as error:
        PruneConfig(**{name: value})
    assert str(error.value) == message


@pytest.mark.parametrize(
    "importance,ranking,target",
    [
        ("l1", "global", 0.75),
        ("l1", "global", 0.25),
        ("l1", "local", 0.35),
        ("l2", "global", 0.5),
        ("taylor", "global", 0.5),
        ("taylor", "local", 0.5),
        ("random", "global", 0.5),
    ],
)
def test_mac_budget_met_within_two_percent(resnet20, importance, ranking, target):
    config = PruneConfig(target_macs=target, importance=importance, ranking=ranking)
    small, report = prune(resnet20, X8, config, data=_data())
    full = count_macs(resnet20, X8)
    assert count_macs(small, X8) == report.macs_after
    assert abs(report.macs_after / full - target) <= 0.02 * target
    assert small(X8).shape == (1, 10)


def test_param_budget_absolute(resnet20):
    small, report = prune(resnet20, X8, PruneConfig(target_params=150_000))
    assert abs(count_params(small) - 150_000) <= 0.02 * 150_000
    assert report.params_after == count_params(small)


def test_caller_model_is_untouched(resnet20):
    before = {k: v.clone() for k, v in resnet20.state_dict().items()}
    prune(resnet20, X8, PruneConfig(target_macs=0.5))
    after = resnet20.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_round_to_gives_multiples(resnet20):
    _, report = prune(resnet20, X8, PruneConfig(target_macs=0.5, round_to=4, tolerance=0.05))
    changed = report.changed()
    assert len(changed) >= 3  # something was cut, so the loop below checks something
    assert all(after % 4 == 0 for _, after in changed.values()), changed
    assert abs(report.mac_ratio - 0.5) <= 0.05 * 0.5


def test_local_ranking_cuts_every_group_by_about_the_same_fraction(resnet20):
    _, report = prune(resnet20, X8, PruneConfig(target_macs=0.5, ranking="local"))
    ratios = [after / before for before, after in report.changed().values()]
    assert max(ratios) - min(ratios) < 0.15


def test_fixed_groups_are_not_cut(resnet20):
    _, report = prune(resnet20, X8, PruneConfig(target_macs=0.6, fixed=["layer3.*"]))
    assert not any(name.startswith("layer3.") for name in report.changed())
    assert report.changed()


def test_magnitude_keeps_the_largest_filters():
    model = nn.Sequential(nn.Conv2d(1, 4, 1, bias=False), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 5.0, 0.1, 3.0]).view(4, 1, 1, 1))
        model[2].weight.fill_(0.01)
    x = torch.randn(1, 1, 4, 4)
    group = next(g for g in channel_groups(model, x) if not g.fixed)
    scores = MagnitudeImportance(p=1)(group, dict(model.named_parameters()))
    assert scores.argsort(descending=True).tolist() == [1, 3, 0, 2]
    small, report = prune(model, x, PruneConfig(target_params=2 * 1 + 2 * 2 + 2, tolerance=0.2))
    assert report.changed() == {group.name: (4, 2)}
    assert small.get_submodule("0").weight.flatten().tolist() == [5.0, 3.0]


def test_taylor_needs_data(resnet20):
    with pytest.raises(ValueError, match="needs data"):
        prune(resnet20, X8, PruneConfig(target_macs=0.5, importance="taylor"))


def test_budget_below_smallest_model_is_a_clear_error(resnet20):
    with pytest.raises(PlanError, match="below the smallest model"):
        prune(resnet20, X8, PruneConfig(target_macs=0.001))


def test_absolute_budget_of_2_macs_says_values_above_1_are_counts(resnet20):
    # resnet20 on 8x8 inputs: 2,532,992 MACs; every group at 1 channel: 5,142.
    with pytest.raises(PlanError) as error:
        prune(resnet20, X8, PruneConfig(target_macs=2.0))
    assert str(error.value) == (
        "macs target 2.0 is read as an absolute count of 2.0 MACs (values above 1 are absolute "
        "counts; fractions of the original are in (0, 1]), below the smallest model's 5,142 MACs "
        "(full model: 2,532,992; min_channels=1, round_to=1); give a fraction such as 0.5 or a "
        "count of at least 5,142"
    )


def test_pruned_checkpoint_reloads_from_the_path_alone(tmp_path):
    model = create_model("resnet20", num_classes=10, in_channels=1)
    small, report = prune(model, X8, PruneConfig(target_macs=0.5))
    small = recalibrate_bn(small, _data())
    assert type(small) is type(model)
    path = save_checkpoint(tmp_path / "small.safetensors", small)
    loaded, meta = load_model(path)
    assert type(loaded) is type(model)
    step = meta["extra"]["steps"][-1]
    assert step["method"] == "prune"
    assert step["sizes"] == {n: a for n, (_, a) in report.changed().items()}
    assert count_params(loaded) == count_params(small)
    torch.testing.assert_close(loaded(X8), small.eval()(X8))


def _zoo_input(name: str) -> torch.Tensor:
    side = 8 if name.startswith("tiny_") else 32  # tiny test nets are built for 8x8
    return torch.randn(1, 3, side, side)


@pytest.mark.parametrize("name", [n for n in list_models() if not n.startswith("_")])
def test_every_zoo_model_prunes_to_half_the_macs(name):
    torch.manual_seed(0)
    super_resolution = name in SR_MODELS  # image to image, no classes
    model = create_model(name, **({} if super_resolution else {"num_classes": 10})).eval()
    x = _zoo_input(name)
    groups = channel_groups(model, x)
    assert any(not g.fixed for g in groups)
    # Tiny test nets have a handful of coarse channels: 2% may be out of reach.
    tolerance = 0.15 if name.startswith("tiny_") else 0.02
    small, report = prune(model, x, PruneConfig(target_macs=0.5, tolerance=tolerance))
    assert type(small) is type(model)
    assert abs(report.mac_ratio - 0.5) <= 0.5 * tolerance
    out = small(x)
    assert out.shape == (model(x).shape if super_resolution else (1, 10))
    assert torch.isfinite(out).all()


def test_prune_traces_the_model_once(resnet20, monkeypatch):
    import anywidth.graph.groups as groups_module

    calls = []
    real = groups_module.analyze

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(groups_module, "analyze", counting)
    prune(resnet20, X8, PruneConfig(target_macs=0.5))
    assert len(calls) == 1  # channel groups, WidthCost and the cut share one analysis


def test_activation_importance_weighs_a_channels_weights_by_its_signal():
    # Channel 0 feeds the next layer through large weights but its input weight is tiny, so
    # it carries almost no signal; channel 1 is the reverse. Exact oracle:
    # score_c = ||W2[:, c]||² · mean(x_c²) over the data.
    model = nn.Sequential(nn.Linear(1, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.01], [2.0]]))
        model[2].weight.copy_(torch.tensor([[10.0, 0.5]]))
    inputs = torch.tensor([[1.0], [3.0]])
    data = [(inputs, torch.zeros(2))]  # (inputs, labels), as a loader yields
    group = next(g for g in channel_groups(model, inputs[:1]) if not g.fixed)
    crit = ActivationImportance(batches=1)
    crit.prepare(model, data)
    scores = crit(group, dict(model.named_parameters()))
    hidden_sq = (torch.relu(inputs @ model[0].weight.T) ** 2).mean(0).double()
    expected = model[2].weight.detach().double().pow(2).sum(0) * hidden_sq
    assert torch.allclose(scores, expected) and scores.argmax() == 1
    assert MagnitudeImportance(p=1)(group, dict(model.named_parameters())).argmax() == 0
    config = PruneConfig(target_params=2, tolerance=0.01, importance="activation")
    small, report = prune(model, inputs[:1], config, data=data)
    assert report.changed() == {group.name: (2, 1)}
    assert small[2].weight.tolist() == [[0.5]]  # the channel that carries the signal stays


def test_activation_importance_needs_data_and_leaves_the_model_alone(resnet20):
    with pytest.raises(ValueError, match="activation importance needs data"):
        prune(resnet20, X8, PruneConfig(target_macs=0.5, importance="activation"))
    before = {k: v.clone() for k, v in resnet20.state_dict().items()}
    config = PruneConfig(target_macs=0.5, importance="activation")
    small, report = prune(resnet20, X8, config, data=_data())
    assert abs(report.mac_ratio - 0.5) <= 0.02
    assert all(torch.equal(before[k], v) for k, v in resnet20.state_dict().items())
    assert resnet20.training is False
