import pytest
import torch

from anywidth import create_model
from anywidth.data import make_loaders
from anywidth.integral import IntegralConfig, IntegralModel
from anywidth.slim import SlimmableModel, WidthTrainConfig, to_slimmable, train_any_width
from anywidth.train import TrainConfig
from anywidth.train.width import (
    random_plan,
    smallest_plan,
    train_width_random_,
    width_random_loss,
)
from tests.integral._helpers import input_for, random_model


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_width_config_validation_and_round_trip():
    config = WidthTrainConfig(method="integral", sampling="per-group", random_plans=2)
    assert WidthTrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="method"):
        WidthTrainConfig(method="prune")
    with pytest.raises(ValueError, match="sampling"):
        WidthTrainConfig(sampling="random")


def test_shared_draws_give_every_group_one_ratio(one_thread):
    slim = to_slimmable(random_model("tiny_resnet"), input_for("tiny_resnet")[:1])
    gen = torch.Generator().manual_seed(0)
    smallest = smallest_plan(slim, 0.3)
    for _ in range(20):
        plan = random_plan(slim, 0.3, gen, "shared")
        ratios = [plan[g.name] / g.size for g in slim.resizable]
        sizes = [g.size for g in slim.resizable]
        assert max(ratios) - min(ratios) <= 1 / min(sizes) + 1e-9  # rounding apart
        assert all(smallest[g.name] <= plan[g.name] <= g.size for g in slim.resizable)


def test_the_loss_trains_every_width_and_restores_the_plan(one_thread):
    x = input_for("tiny_resnet", batch=4)
    slim = to_slimmable(random_model("tiny_resnet"), x[:1]).train()
    loss_fn = width_random_loss(slim, WidthTrainConfig(random_plans=2))
    loss, logits = loss_fn(slim, x, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss) and logits.shape == (4, 10)
    assert all(p.grad is not None for p in slim.parameters())
    assert slim.sizes == {g.name: g.size for g in slim.resizable}


def test_width_training_refuses_a_plain_model():
    model = random_model("tiny_resnet")
    with pytest.raises(TypeError, match="width_random_loss: model must be an anywidth.width"):
        width_random_loss(model, WidthTrainConfig())
    with pytest.raises(TypeError, match=f"train_width_random_: .* got {type(model).__name__}"):
        train_width_random_(model, None, TrainConfig())


@pytest.mark.parametrize("method", ["slice", "integral"])
def test_one_loop_trains_both_methods(method, one_thread):
    loaders = make_loaders("digits", batch_size=64)
    torch.manual_seed(0)
    model = create_model("tiny_resnet", in_channels=1)  # untrained: learns from scratch
    config = TrainConfig(epochs=2, lr=0.3, weight_decay=1e-4)
    width = WidthTrainConfig(method=method, min_ratio=0.5)
    integral = IntegralConfig(reorder=False) if method == "integral" else None
    wide, result = train_any_width(model, torch.randn(1, 1, 8, 8), loaders, config, width, integral)
    assert isinstance(wide, SlimmableModel if method == "slice" else IntegralModel)
    assert len(result.history) == 2 and result.history[-1]["seconds"] > 0
    assert result.history[-1]["val_accuracy"] > 0.5  # chance is 0.1
    assert result.history[-1]["val_accuracy_smallest"] > 0.3


def test_integral_options_need_the_integral_method():
    with pytest.raises(ValueError, match="integral"):
        train_any_width(None, None, None, TrainConfig(), WidthTrainConfig(), IntegralConfig())
