import json
import math

import pytest

from anywidth.train import TrainConfig


def test_defaults():
    config = TrainConfig()
    assert (config.lr, config.momentum, config.weight_decay) == (0.1, 0.9, 5e-4)
    assert (config.optimizer, config.schedule, config.warmup_epochs) == ("sgd", "cosine", 0)
    assert (config.label_smoothing, config.seed, config.grad_clip, config.device) == (
        0.0,
        0,
        None,
        "cpu",
    )


def test_dict_round_trip_through_json():
    config = TrainConfig(
        epochs=7, lr=0.01, optimizer="adamw", schedule="constant", warmup_epochs=2,
        label_smoothing=0.1, seed=3, grad_clip=5.0,
    )  # fmt: skip
    data = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(data) == config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 2.5),
        ("batch_size", 0),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("momentum", 1.0),
        ("momentum", -0.1),
        ("weight_decay", -1e-4),
        ("optimizer", "adam"),
        ("schedule", "step"),
        ("warmup_epochs", -1),
        ("warmup_epochs", 20),
        ("label_smoothing", 1.0),
        ("seed", -1),
        ("grad_clip", 0.0),
        ("nesterov", "yes"),
        ("device", "gpu0"),
        ("epochs", True),
    ],
    ids=lambda v: str(v),
)
def test_invalid_field_is_named(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_nesterov_needs_sgd_momentum():
    with pytest.raises(ValueError, match="nesterov"):
        TrainConfig(nesterov=True, momentum=0.0)
    assert TrainConfig(nesterov=True).nesterov


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ValueError, match="unknown TrainConfig field.*'lr_max'"):
        TrainConfig.from_dict({"lr_max": 1.0})


def test_rewind_is_the_tail_of_the_schedule():
    config = TrainConfig(epochs=30, lr=0.1, warmup_epochs=0)
    tail = config.rewind(3)
    assert (tail.epochs, tail.warmup_epochs) == (3, 0)
    assert tail.lr == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 27 / 30)))
    warm = TrainConfig(epochs=15, lr=0.05, warmup_epochs=2).rewind(3)
    assert warm.lr == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 10 / 13)))
    assert TrainConfig(epochs=5, schedule="constant", lr=0.02).rewind(2).lr == 0.02
    with pytest.raises(ValueError, match="cannot rewind 6 epochs of a 5-epoch schedule"):
        TrainConfig(epochs=5).rewind(6)
