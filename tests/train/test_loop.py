import logging

import pytest
import torch
from torch.nn import functional as F

from anywidth.data import make_loaders
from anywidth.measure import evaluate
from anywidth.models import create_model
from anywidth.train import (
    TrainConfig,
    cross_entropy_loss,
    load_model,
    read_checkpoint,
    train_,
)
from tests.train._tiny import MODEL_NAME

KWARGS = {"num_classes": 10, "in_channels": 1, "width": 8}


@pytest.fixture(scope="module")
def digits():
    return make_loaders("digits", batch_size=128, seed=0)


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model(MODEL_NAME, **KWARGS)


class _Interrupted(KeyboardInterrupt):
    pass


def _run(loaders, config, checkpoint_dir, resume=False, stop_at=None, stop_style="return"):
    def on_epoch_end(epoch, metrics):
        if epoch == stop_at:
            if stop_style == "raise":
                raise _Interrupted
            return True
        return None

    model = _model(seed=123 if resume else 0)  # a resumed run must not depend on its init
    result = train_(
        model, loaders, config, checkpoint_dir=checkpoint_dir, model_name=MODEL_NAME,
        model_kwargs=KWARGS, resume=resume, on_epoch_end=on_epoch_end,
    )  # fmt: skip
    return model, result


@pytest.mark.parametrize(
    ("optimizer", "stop_style"), [("sgd", "return"), ("adamw", "raise")], ids=["sgd", "adamw"]
)
def test_resume_gives_exactly_the_uninterrupted_weights(digits, tmp_path, optimizer, stop_style):
    config = TrainConfig(
        epochs=4, lr=0.05 if optimizer == "sgd" else 3e-3, optimizer=optimizer,
        warmup_epochs=1, label_smoothing=0.1, grad_clip=2.0, nesterov=optimizer == "sgd",
    )  # fmt: skip
    full_model, full = _run(digits, config, tmp_path / "full")
    if stop_style == "raise":
        with pytest.raises(_Interrupted):
            _run(digits, config, tmp_path / "part", stop_at=2, stop_style="raise")
    else:
        _, part = _run(digits, config, tmp_path / "part", stop_at=2)
        assert part.stopped_early and len(part.history) == 2
    assert read_checkpoint(tmp_path / "part" / "last.safetensors").meta["epoch"] == 2
    resumed_model, resumed = _run(digits, config, tmp_path / "part", resume=True)

    full_state, resumed_state = full_model.state_dict(), resumed_model.state_dict()
    assert set(full_state) == set(resumed_state)
    for key, value in full_state.items():
        assert torch.equal(value, resumed_state[key]), key
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(full.history, resumed.history, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }
    last_full = read_checkpoint(tmp_path / "full" / "last.safetensors").tensors
    last_resumed = read_checkpoint(tmp_path / "part" / "last.safetensors").tensors
    assert set(last_full) == set(last_resumed)
    for key in last_full:
        if key.startswith(("model.", "optimizer.")):
            assert torch.equal(last_full[key], last_resumed[key]), key


def test_training_on_digits_learns(digits, tmp_path):
    model = _model()
    result = train_(
        model, digits, TrainConfig(epochs=3, lr=0.1), checkpoint_dir=tmp_path,
        model_name=MODEL_NAME, model_kwargs=KWARGS,
    )  # fmt: skip
    assert evaluate(model, digits.test)["accuracy"] > 0.85
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.last is result.history[-1]
    best = max(result.history, key=lambda h: h["val_accuracy"])
    assert result.best == best
    assert result.best_path == tmp_path / "best.safetensors"
    assert result.last_path == tmp_path / "last.safetensors"
    best_model, meta = load_model(result.best_path)
    assert meta["epoch"] == best["epoch"] and meta["optimizer"] is None
    assert evaluate(best_model, digits.val)["accuracy"] == best["val_accuracy"]
    keys = {"epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"}
    assert set(result.history[0]) == keys


def test_cosine_schedule_per_step(digits):
    result = train_(_model(), digits.train, TrainConfig(epochs=4, lr=0.1, warmup_epochs=1))
    steps = len(digits.train)
    lrs = [h["lr"] for h in result.history]
    assert lrs[0] == pytest.approx(0.1 / steps)  # the first warm-up step
    assert lrs[1] == pytest.approx(0.1)  # warm-up over, cosine starts at the peak
    assert lrs[2] == pytest.approx(0.1 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi / 3)).item()))
    assert result.best is None  # no val loader, no "best"


def test_label_smoothing_changes_the_loss(digits):
    labels = torch.randint(0, 10, (32,))
    logits = 5.0 * F.one_hot(labels, 10) + torch.randn(32, 10)  # confident and mostly right
    model = lambda images: logits  # noqa: E731
    plain, returned = cross_entropy_loss(0.0)(model, None, labels)
    smooth, _ = cross_entropy_loss(0.2)(model, None, labels)
    assert returned is logits
    # Smoothing mixes the target with the uniform distribution over the 10 classes.
    expected = 0.8 * plain - 0.2 * F.log_softmax(logits, dim=1).mean(dim=1).mean()
    assert smooth.item() == pytest.approx(expected.item(), rel=1e-5)
    assert abs(smooth.item() - plain.item()) > 0.1
    runs = [
        train_(_model(), digits.train, TrainConfig(epochs=1, label_smoothing=s)).last["train_loss"]
        for s in (0.0, 0.2)
    ]
    assert runs[0] != pytest.approx(runs[1], rel=1e-3)


def test_custom_loss_fn_is_used(digits):
    calls = []

    def loss_fn(model, images, labels):
        calls.append(images.shape[0])
        logits = model(images)
        return F.cross_entropy(logits, labels) * 0.0 + 1.5, logits

    result = train_(_model(), digits.train, TrainConfig(epochs=1), loss_fn=loss_fn)
    assert sum(calls) == len(digits.train.dataset)
    assert result.last["train_loss"] == pytest.approx(1.5)


def test_non_finite_loss_is_reported(digits):
    def loss_fn(model, images, labels):
        logits = model(images)
        return F.cross_entropy(logits, labels) * float("nan"), logits

    with pytest.raises(FloatingPointError, match="epoch 1.*lower config.lr"):
        train_(_model(), digits.train, TrainConfig(epochs=1), loss_fn=loss_fn)


def test_resume_without_checkpoint_starts_fresh(digits, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="anywidth.train.loop"):
        result = train_(
            _model(), digits, TrainConfig(epochs=1), checkpoint_dir=tmp_path,
            model_name=MODEL_NAME, model_kwargs=KWARGS, resume=True,
        )  # fmt: skip
    assert "starting from scratch" in caplog.text
    assert [h["epoch"] for h in result.history] == [1]


def test_resume_of_a_finished_run_trains_nothing(digits, tmp_path):
    config = TrainConfig(epochs=1)
    kwargs = {"checkpoint_dir": tmp_path, "model_name": MODEL_NAME, "model_kwargs": KWARGS}
    first_model = _model()
    first = train_(first_model, digits, config, **kwargs)
    again_model = _model(seed=5)
    again = train_(again_model, digits, config, resume=True, **kwargs)
    assert again.history == first.history
    assert torch.equal(again_model[0].weight, first_model[0].weight)


def test_checkpoint_extra_is_recorded(digits, tmp_path):
    train_(
        _model(), digits, TrainConfig(epochs=1), checkpoint_dir=tmp_path, model_name=MODEL_NAME,
        model_kwargs=KWARGS, checkpoint_extra={"note": "pruned"},
    )  # fmt: skip
    for name in ("last", "best"):
        assert read_checkpoint(tmp_path / f"{name}.safetensors").meta["extra"] == {"note": "pruned"}


def test_bad_arguments(digits, tmp_path):
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        train_(_model(), digits, TrainConfig(epochs=1), resume=True)
    with pytest.raises(ValueError, match="empty"):
        train_(_model(), [], TrainConfig(epochs=1))


def test_checkpoints_of_a_zoo_model_need_no_model_name(digits, tmp_path):
    model = _model()
    train_(model, digits, TrainConfig(epochs=1), checkpoint_dir=tmp_path)
    loaded, meta = load_model(tmp_path / "last.safetensors")
    assert meta["model"]["name"] == MODEL_NAME and type(loaded) is type(model)


def test_checkpoints_of_a_model_from_elsewhere_need_a_model_name(digits, tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(ValueError, match="Sequential was not built by anywidth.create_model"):
        train_(model, digits, TrainConfig(epochs=1), checkpoint_dir=tmp_path)
