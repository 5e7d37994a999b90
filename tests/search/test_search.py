"""search_shape: the supernet at its argmax is the cut model, the cost is exact, the search
meets its band, materialize builds the user's class with the plan's MACs, errors are clear."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.utils.data import DataLoader, Subset

import anywidth
from anywidth.data import load_dataset
from anywidth.graph import PlanError, WidthCost, cut, keep_first
from anywidth.measure import count_macs
from anywidth.search import SearchConfig, SearchResult, search_shape
from anywidth.search._arch import Architecture, candidate_sizes
from anywidth.search._blocks import find_runs, skip_blocks_
from anywidth.search._private import ordered_copy
from anywidth.search._supernet import Choices, build_supernet
from anywidth.search.search import _searched
from anywidth.train import load_model, save_checkpoint

X = torch.randn(1, 1, 8, 8)


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = anywidth.create_model(name, num_classes=10, in_channels=1)
    for m in model.modules():  # BatchNorm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def digits() -> DataLoader:
    """256 digits: a search epoch is 4 weight steps and 4 architecture steps."""
    data = load_dataset("digits", "train")
    return DataLoader(Subset(data, range(256)), batch_size=32, shuffle=True)


def _supernet(name: str, seed: int):
    model = _model(name)
    x = torch.randn(4, 1, 8, 8)
    source, analysis = ordered_copy(model, x, (), "l1")
    runs = find_runs(source, x, None)
    names, sites, cands = _searched(source, analysis, (0.3, 0.5, 0.7, 1.0))
    gen = torch.Generator().manual_seed(seed)
    arch = Architecture(names, cands, runs, WidthCost(source, x, analysis), gen)
    with torch.no_grad():
        for logits in [*arch.width_logits, *arch.depth_logits]:
            logits.normal_(generator=gen)
    choices = Choices()
    return (
        model,
        source,
        analysis,
        arch,
        choices,
        build_supernet(source, sites, cands, runs, choices),
        x,
    )


@pytest.mark.parametrize("name,seed", [("resnet20", 0), ("resnet20", 1), ("tiny_depthwise_se", 0)])
def test_supernet_at_its_argmax_is_the_cut_model(name, seed):
    model, source, analysis, arch, choices, net, x = _supernet(name, seed)
    torch.testing.assert_close(source(x), model(x), rtol=1e-5, atol=1e-5)  # reordered only
    arch.argmax_(choices)
    plan, depths = arch.shape()
    small = cut(source, x, keep_first(analysis.groups, plan))
    skip_blocks_(small, [b for run, k in zip(arch.runs, depths, strict=True) for b in run[k:]])
    torch.testing.assert_close(net.eval()(x), small(x), rtol=1e-5, atol=1e-5)
    assert arch.macs(plan, depths) == count_macs(small, x)


def test_expected_cost_at_one_hot_logits_is_the_exact_cost():
    _, _, _, arch, _, _, _ = _supernet("resnet20", 2)
    with torch.no_grad():
        for logits in [*arch.width_logits, *arch.depth_logits]:
            hot = torch.full_like(logits, -1e4)
            hot[int(logits.argmax())] = 0.0
            logits.copy_(hot)
    plan, depths = arch.shape()
    exact = arch.macs(plan, depths) / arch.full_macs
    assert arch.expected_macs().item() == pytest.approx(exact, rel=1e-5)


def test_supernet_mixes_two_candidates_and_trains_the_logits():
    _, _, _, arch, choices, net, x = _supernet("resnet20", 3)
    arch.sample_(choices, tau=1.0)
    assert all(len(p) == 2 for p in choices.widths + choices.depths)
    net.train()(torch.randn(8, 1, 8, 8)).logsumexp(1).mean().backward()
    grads = [lg.grad for lg in [*arch.width_logits, *arch.depth_logits]]
    assert sum(g is not None and g.abs().sum() > 0 for g in grads) >= len(grads) - 2


def test_candidates_are_rounded_ratios_with_the_full_width():
    assert candidate_sizes(16, (0.3, 0.4, 0.5, 1.0)) == [5, 6, 8, 16]
    assert candidate_sizes(3, (0.3, 0.4, 0.5)) == [1, 2, 3]


@pytest.mark.parametrize("target", [0.25, 0.65])
def test_search_drives_the_argmax_macs_into_the_band(digits, target):
    model = _model("resnet20")
    before = copy.deepcopy(model.state_dict())
    config = SearchConfig(target_macs=target, epochs=4, arch_lr=0.1, seed=1)
    result = search_shape(model, X, digits, config)
    trace = [round(e["argmax_macs"], 3) for e in result.log]
    assert result.in_band, trace
    assert abs(result.mac_ratio - target) <= 0.05, trace
    assert [e["epoch"] for e in result.log] == list(range(1, 5))
    assert result.log[0]["tau"] == 10.0 and result.log[-1]["tau"] == pytest.approx(0.1)
    assert all(0 <= e["val_accuracy"] <= 1 for e in result.log)
    for key, value in model.state_dict().items():  # the caller's model is not changed
        assert torch.equal(value, before[key]), key


@pytest.fixture(scope="module")
def found(digits) -> tuple[torch.nn.Module, SearchResult]:
    model = _model("resnet20")
    return model, search_shape(model, X, digits, SearchConfig(0.4, epochs=1, seed=0))


def test_materialize_builds_the_users_class_with_the_plans_macs(found, tmp_path):
    model, result = found
    small = result.materialize()
    assert type(small) is type(model)
    assert count_macs(small, X) == result.macs
    assert result.mac_ratio == pytest.approx(result.macs / count_macs(model, X))
    for name in result.skipped:
        assert isinstance(small.get_submodule(name), torch.nn.Identity)
    path = save_checkpoint(tmp_path / "small.safetensors", small)
    loaded, _ = load_model(path)
    small.eval()
    torch.testing.assert_close(loaded.eval()(X), small(X))


def test_skipped_blocks_are_replayed_on_load(found, tmp_path):
    _, result = found
    shallow = dataclasses.replace(result, depths={run[0]: 1 for run in result.runs})
    small = shallow.materialize()
    assert shallow.skipped == ["layer1.1", "layer1.2", "layer2.2", "layer3.2"]
    assert all(isinstance(small.get_submodule(n), torch.nn.Identity) for n in shallow.skipped)
    path = save_checkpoint(tmp_path / "shallow.safetensors", small)
    loaded, meta = load_model(path)
    assert [s["kind"] for s in meta["extra"]["steps"]] == ["cut", "skip"]
    torch.testing.assert_close(loaded.eval()(X), small.eval()(X))


def test_materialize_random_has_the_same_shape_and_new_weights(found):
    _, result = found
    pretrained, fresh = result.materialize(), result.materialize(init="random")
    shapes = {k: v.shape for k, v in pretrained.state_dict().items()}
    assert {k: v.shape for k, v in fresh.state_dict().items()} == shapes
    assert not torch.equal(pretrained.conv1.weight, fresh.conv1.weight)
    with pytest.raises(ValueError, match="init='zeros'"):
        result.materialize(init="zeros")


def test_result_round_trips_through_json_data(found):
    model, result = found
    again = SearchResult.from_dict(result.to_dict(), model, X)
    assert again.plan == result.plan and again.depths == result.depths
    for (k, a), b in zip(
        result.materialize().state_dict().items(),
        again.materialize().state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), k
    other = _model("tiny_resnet")
    with pytest.raises(ValueError, match="does not have"):
        SearchResult.from_dict(result.to_dict(), other, X)


def test_search_is_deterministic(digits):
    model = _model("tiny_convnet")
    config = SearchConfig(0.5, epochs=1, seed=4)
    a, b = (search_shape(model, X, digits, config) for _ in range(2))
    assert a.plan == b.plan and a.log[0]["expected_macs"] == b.log[0]["expected_macs"]


def test_skipping_a_block_whose_shape_changes_is_refused(digits):
    with pytest.raises(ValueError, match=r"block 'layer2.0' cannot be skipped: its output shape"):
        search_shape(_model("resnet20"), X, digits, SearchConfig(blocks=["layer2.0"]))


def test_named_blocks_are_the_only_depth_candidates():
    runs = find_runs(_model("resnet20"), X, ("layer1.1", "layer1.2", "layer3.[12]"))
    assert runs == [["layer1.1", "layer1.2"], ["layer3.1", "layer3.2"]]
    assert find_runs(_model("resnet20"), X, None)[0] == ["layer1.0", "layer1.1", "layer1.2"]
    assert find_runs(_model("tiny_convnet"), X, None) == []  # no residual block


def test_unknown_groups_and_blocks_get_did_you_mean_errors(digits):
    with pytest.raises(PlanError, match="did you mean 'layer1.0.conv1:out'"):
        search_shape(_model("resnet20"), X, digits, SearchConfig(fixed=["layer1.0.conv:out"]))
    with pytest.raises(PlanError, match="SearchConfig.blocks pattern 'layer1.9'"):
        search_shape(_model("resnet20"), X, digits, SearchConfig(blocks=["layer1.9"]))


def test_an_unreachable_target_is_refused(digits):
    with pytest.raises(ValueError, match="below the smallest shape"):
        search_shape(_model("resnet20"), X, digits, SearchConfig(target_macs=0.01))


def test_data_that_cannot_be_split_is_refused():
    with pytest.raises(TypeError, match="pass a DataLoader"):
        search_shape(_model("tiny_convnet"), X, [(X, torch.tensor([0]))], SearchConfig(epochs=1))


def test_mobilenetv2_identity_blocks_are_depth_candidates():
    model = anywidth.create_model("mobilenetv2", num_classes=10, in_channels=1, small_input=True)
    runs = find_runs(model.eval(), torch.randn(1, 1, 32, 32), None)
    assert runs == [
        ["features.3"],
        ["features.5", "features.6"],
        ["features.8", "features.9", "features.10"],
        ["features.12", "features.13"],
        ["features.15", "features.16"],
    ]
