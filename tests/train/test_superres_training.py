"""Super-resolution through the one training loop: image losses, the PSNR metric, the best
epoch by val PSNR, exact resume, optimizer groups."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from anywidth.data.superres import PairDataset, PatchDataset, make_pair
from anywidth.metrics import psnr_metric
from anywidth.models import create_model
from anywidth.train import TrainConfig, image_loss, read_checkpoint, train_

SCALE = 2


def _smooth(seed: int, side: int = 24) -> torch.Tensor:
    coarse = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)[0]


@pytest.fixture(scope="module")
def sr_data():
    pairs = [make_pair(_smooth(s).clamp(0, 1), SCALE) for s in range(4)]
    train = PatchDataset(pairs[:3], SCALE, patch=6, patches=16)
    val = PairDataset(pairs[3:], SCALE)
    loader = DataLoader(train, batch_size=8, shuffle=True, generator=torch.Generator())
    return loader, DataLoader(val, batch_size=1)


def _model():
    torch.manual_seed(0)
    return create_model("srcnn", scale=SCALE, width=0.125)


def _config(epochs: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=3e-3, optimizer="adamw", weight_decay=0.0)


def test_image_losses_by_hand():
    model = torch.nn.Identity()
    inputs, targets = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    loss, out = image_loss("l1")(model, inputs, targets)
    assert loss.item() == pytest.approx(0.5) and out is inputs
    assert image_loss("l2")(model, inputs, targets)[0].item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"one of \('l1', 'l2'\)"):
        image_loss("huber")
    with pytest.raises(ValueError, match="check the model's scale"):
        image_loss("l1")(model, inputs, torch.zeros(2, 3, 8, 8))


def test_training_scores_psnr_and_keeps_the_best_val_epoch(sr_data, tmp_path):
    train, val = sr_data
    model = _model()
    result = train_(
        model, train, _config(3), val_loader=val, loss_fn=image_loss("l1"),
        metric=psnr_metric(SCALE), checkpoint_dir=tmp_path,
    )  # fmt: skip
    keys = set(result.history[0])
    assert {"train_psnr", "val_psnr", "val_loss"} <= keys and "val_accuracy" not in keys
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best["val_psnr"] == max(h["val_psnr"] for h in result.history)
    saved = read_checkpoint(tmp_path / "best.safetensors").meta["metrics"]
    assert saved["val_psnr"] == result.best["val_psnr"]


def test_resume_gives_exactly_the_uninterrupted_weights(sr_data, tmp_path):
    train, val = sr_data
    run = {"val_loader": val, "loss_fn": image_loss("l2"), "metric": psnr_metric(SCALE)}
    full = _model()
    train_(full, train, _config(2), checkpoint_dir=tmp_path / "full", **run)
    part = _model()
    train_(part, train, _config(2), checkpoint_dir=tmp_path / "part",
           on_epoch_end=lambda epoch, _: epoch == 1, **run)  # fmt: skip
    resumed = _model()
    result = train_(resumed, train, _config(2), checkpoint_dir=tmp_path / "part", resume=True,
                    **run)  # fmt: skip
    assert [h["epoch"] for h in result.history] == [1, 2]
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_param_groups_scale_the_learning_rate(sr_data):
    train, _ = sr_data
    model = _model()
    groups = [
        {"params": [model.conv1.weight], "lr_scale": 0.0},
        {"params": [p for n, p in model.named_parameters() if n != "conv1.weight"]},
    ]
    before = model.conv1.weight.detach().clone()
    train_(model, train, _config(1), loss_fn=image_loss("l1"), metric=psnr_metric(SCALE),
           param_groups=groups)  # fmt: skip
    assert torch.equal(model.conv1.weight, before)
    assert not torch.equal(model.conv3.weight, _model().conv3.weight)


def test_cross_entropy_on_image_targets_is_a_clear_error(sr_data):
    # F.cross_entropy accepts (B, C, H, W) float targets as class probabilities and would
    # train an SR model on nonsense without a word.
    with pytest.raises(ValueError, match="trains with image_loss"):
        train_(_model(), sr_data[0], _config(1))
