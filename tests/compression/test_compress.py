"""compress: every method through one verb meets its budget, reports measure's numbers,
recalibrates when (and only when) data is given, leaves the caller's model alone, and
answers bad input with an error that names the argument."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

import anywidth
from anywidth import Budget, CompressionReport, compress
from anywidth.compression import handled_configs
from anywidth.data import load_dataset, make_loaders
from anywidth.integral import to_integral
from anywidth.lowrank import LowRankConfig
from anywidth.measure import count_macs, count_params, evaluate
from anywidth.pruning import PruneConfig, prune
from anywidth.search import SearchConfig
from anywidth.slim import ShrinkConfig, shrink, to_slimmable
from tests.integral._helpers import randomize_

X = torch.randn(1, 1, 8, 8)  # digits: 1 channel, 8x8


@pytest.fixture(scope="module")
def loaders():
    return make_loaders("digits", batch_size=128)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return randomize_(anywidth.create_model("tiny_resnet", num_classes=10, in_channels=1))


def _batches(n: int = 3) -> list:
    return [(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))) for _ in range(n)]


# method -> (the model compress takes, its config); budgets are fractions of the full model
METHODS = {
    "prune": lambda m, b: (m, PruneConfig(budget=b)),
    "lowrank": lambda m, b: (m, LowRankConfig(budget=b)),
    "inn": lambda m, b: (to_integral(m, X), ShrinkConfig(budget=b, tune_steps=2)),
    "slim": lambda m, b: (to_slimmable(m, X), ShrinkConfig(budget=b)),
}


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("metric", ["macs", "params"])
@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_meets_its_budget_and_reports_measures_numbers(method, metric, model):
    budget = Budget(**{metric: 0.5}, tolerance=0.05)
    wide, config = METHODS[method](model, budget)
    state = _state(wide)
    small, report = compress(wide, X, config, data=_batches())
    assert isinstance(report, CompressionReport) and report.method == method
    count = count_macs if metric == "macs" else (lambda m, _: count_params(m))
    achieved, full = count(small, X), count(model, X)  # the source is the full width
    assert abs(achieved / full - 0.5) <= 0.05 * 0.5
    assert report.met_budget is True and report.budget == budget
    assert (report.before.params, report.before.macs) == (count_params(model), count_macs(model, X))
    assert (report.after.params, report.after.macs) == (count_params(small), count_macs(small, X))
    assert report.after.accuracy is None  # batches without a test split: not scored
    assert report.widths  # the plan (low rank: the factored layers)
    assert all(torch.equal(v, wide.state_dict()[k]) for k, v in state.items())
    with torch.no_grad():
        assert torch.isfinite(small(X)).all()


@pytest.mark.parametrize("method", list(METHODS))
def test_recalibration_is_listed_when_data_is_given_and_only_then(method, model):
    budget = Budget(macs=0.5, tolerance=0.05)
    wide, config = METHODS[method](model, budget)
    if method == "inn":
        config = ShrinkConfig(budget=budget, tune_steps=0)  # tuning needs data
    small, report = compress(wide, X, config)
    assert not any("recalibrated" in step for step in report.done)
    stats = {k: v for k, v in small.state_dict().items() if "running_mean" in k}
    with_data, report = compress(wide, X, config, data=_batches())
    assert report.done[-1] == "recalibrated BatchNorm on up to 20 batches"
    recal = {k: v for k, v in with_data.state_dict().items() if "running_mean" in k}
    assert stats.keys() == recal.keys() and any(not torch.equal(stats[k], recal[k]) for k in stats)


def test_a_loaders_record_scores_both_models_on_its_test_split(model, loaders):
    small, report = compress(model, X, PruneConfig(budget=Budget(macs=0.5)), data=loaders)
    assert report.before.accuracy == pytest.approx(evaluate(model, loaders.test)["accuracy"])
    assert report.after.accuracy == pytest.approx(evaluate(small, loaders.test)["accuracy"])
    text = str(report)
    assert text.startswith("prune: ") and "| before |" in text and "| after  |" in text
    assert "budget macs=0.5: met" in text and "recalibrated BatchNorm" in text


@pytest.mark.parametrize("method", ["prune", "lowrank"])
def test_one_tensor_is_one_batch_of_data(method, model):
    batch = torch.randn(32, 1, 8, 8)
    wide, config = METHODS[method](model, Budget(macs=0.5, tolerance=0.05))
    small, report = compress(wide, X, config, data=batch)
    again, _ = compress(wide, X, config, data=[batch])
    assert report.done[-1].startswith("recalibrated BatchNorm")
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in small.state_dict().items())


def test_an_absolute_budget_is_a_fraction_of_the_original(model):
    full = count_macs(model, X)
    small, report = compress(model, X, PruneConfig(budget=Budget.absolute(macs=full // 2)))
    assert report.budget == Budget(macs=(full // 2) / full)
    assert abs(count_macs(small, X) - full // 2) <= 0.02 * (full // 2)
    assert report.met_budget


def test_search_with_distillation_meets_its_band(model):
    data = DataLoader(Subset(load_dataset("digits", "train"), range(256)), batch_size=32)
    config = SearchConfig(budget=Budget(macs=0.5, tolerance=0.3), epochs=2, distill_epochs=1)
    state = _state(model)
    small, report = compress(model, X, config, data=data)
    assert report.method == "search"
    assert report.done[0] == "searched widths and depths for 2 epochs (TAS)"
    assert "distilled from the original for 1 epoch" in report.done
    assert report.done[-1].startswith("recalibrated BatchNorm")
    assert abs(count_macs(small, X) / count_macs(model, X) - 0.5) <= 0.3 * 0.5
    assert report.met_budget
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_every_method_is_registered():
    assert handled_configs() == [
        "Auto",
        "LowRankConfig",
        "PruneConfig",
        "SearchConfig",
        "ShrinkConfig",
    ]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"config": Budget(macs=0.5)}, TypeError, r"config: no compression method takes a Budget"),
        ({"example_input": torch.randn(1, 3, 8, 8)}, ValueError,
         r"example_input: the model fails on an input of shape \(1, 3, 8, 8\)"),
        ({"example_input": [X]}, TypeError, "example_input must be a tensor"),
        ({"data": [1, 2, 3]}, TypeError, "data: a batch must be a tensor"),
        ({"data": iter(_batches())}, TypeError, "data is a one-shot iterator"),
        ({"data": "digits"}, TypeError, "data must be batches, got str"),
        ({"data": []}, ValueError, "data yielded no batch"),
    ],
    ids=["config", "input-shape", "input-type", "data-ints", "data-iterator", "data-str",
         "data-empty"],
)  # fmt: skip
def test_bad_input_names_the_argument(kwargs, error, match, model):
    args = {"example_input": X, "config": PruneConfig(budget=Budget(macs=0.5))} | kwargs
    with pytest.raises(error, match=match):
        compress(model, args["example_input"], args["config"], data=args.get("data"))


def test_method_specific_errors_name_the_argument(model):
    with pytest.raises(TypeError, match="model: ShrinkConfig cuts an IntegralModel"):
        compress(model, X, ShrinkConfig(budget=Budget(macs=0.5)))
    with pytest.raises(ValueError, match="data: shrink tunes the INN's partition"):
        compress(to_integral(model, X), X, ShrinkConfig(budget=Budget(macs=0.5)))
    with pytest.raises(ValueError, match="data: SearchConfig trains a supernet"):
        compress(model, X, SearchConfig(budget=Budget(macs=0.5)))
    with pytest.raises(TypeError, match="search_shape data is a list; pass a DataLoader"):
        compress(model, X, SearchConfig(budget=Budget(macs=0.5)), data=_batches())


def test_a_nan_weight_warns_once_naming_the_tensor(model):
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.fc.bias[0] = float("nan")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compress(broken, X, PruneConfig(budget=Budget(macs=0.5)))
    named = [w for w in caught if "fc.bias" in str(w.message)]
    assert len(named) == 1 and named[0].category is RuntimeWarning
    for convert in (
        lambda m: prune(m, X, PruneConfig(target_macs=0.5)),
        lambda m: to_slimmable(m, X),
    ):
        with pytest.warns(RuntimeWarning, match=r"model has NaN or inf values in fc\.bias"):
            convert(broken)


def test_shrink_without_a_plan_refuses(model):
    slim = to_slimmable(model, X)
    with pytest.raises(ValueError, match="exactly one of ratio=, target_macs= or target_params="):
        shrink(slim, _batches())


def test_checking_a_shuffled_loader_leaves_the_order_of_its_next_passes_alone():
    from anywidth.compression.checks import check_batches

    data = TensorDataset(torch.arange(40.0)[:, None], torch.zeros(40))
    for generator in (None, torch.Generator().manual_seed(3)):
        loader = DataLoader(data, batch_size=8, shuffle=True, generator=generator)
        torch.manual_seed(0)
        state = generator.get_state() if generator is not None else None
        want = [x for x, _ in loader]
        torch.manual_seed(0)
        if generator is not None:
            generator.set_state(state)
        check_batches(loader)
        got = [x for x, _ in loader]
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
