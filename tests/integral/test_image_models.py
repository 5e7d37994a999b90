"""Width-random INN training and partition tuning for image-to-image models (SRCNN)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from anywidth.data import Loaders
from anywidth.data.superres import PairDataset, PatchDataset, make_pair
from anywidth.integral import IntegralConfig, to_integral
from anywidth.integral.training import WidthTrainConfig, pace_groups, train_integral_
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.metrics import psnr_metric
from anywidth.models import create_model
from anywidth.train import TrainConfig, image_loss, train_
from anywidth.train.task import super_resolution
from anywidth.train.width import width_random_loss

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def loaders():
    def image(seed):
        coarse = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(seed))
        return F.interpolate(coarse, size=(24, 24), mode="bicubic")[0].clamp(0, 1)

    pairs = [make_pair(image(s), 2) for s in range(3)]
    train = DataLoader(PatchDataset(pairs[:2], 2, patch=6, patches=8), batch_size=4)
    val = DataLoader(PairDataset(pairs[2:], 2), batch_size=1)
    return Loaders(train, val, val, 0, 3, 12, "generated")


def _inn():
    torch.manual_seed(0)
    model = create_model("srcnn", scale=2, width=0.125)  # 8 and 4 channels
    return to_integral(model, torch.rand(1, 3, 6, 6), IntegralConfig(reorder=False))


def test_loss_scores_every_width_and_adds_the_consistency_term(loaders):
    inn = _inn().train()
    low, high = next(iter(loaders.train))
    plain = WidthTrainConfig(min_ratio=0.5, random_plans=1, seed=0)
    loss, out = width_random_loss(inn, plain, task="l1")(inn, low, high)
    with torch.no_grad(), inn.at(None):
        full = inn(low)
    torch.testing.assert_close(out, full)
    assert loss.item() > F.l1_loss(full, high).item()
    tied = WidthTrainConfig(min_ratio=0.5, random_plans=1, seed=0, consistency=10.0)
    assert (
        width_random_loss(inn, tied, task=super_resolution(2))(inn, low, high)[0].item()
        > loss.item()
    )
    with pytest.raises(ValueError, match=r"task='ssim': pass a Task"):
        width_random_loss(inn, plain, task="ssim")
    with pytest.raises(ValueError, match=r"task='ssim': pass a Task"):
        tune_partition(inn, 0.5, loaders.train, TuneConfig(steps=1), task="ssim")
    with pytest.raises(ValueError, match=r"pass task=super_resolution\(scale\)"):
        tune_partition(inn, 0.5, loaders.train, TuneConfig(steps=1))  # image targets, CE


def test_pace_groups_cover_every_parameter_once():
    inn = _inn()
    groups = pace_groups(inn)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in inn.parameters())
    scaled = [g["lr_scale"] for g in groups if g["lr_scale"] != 1.0]
    assert scaled and all(s > 1.0 for s in scaled)  # λ ≈ W·n moves n× further per step


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_training_runs_through_the_loop_and_removes_its_hooks(loaders, optimizer):
    inn = _inn()
    config = TrainConfig(epochs=1, lr=1e-3 if optimizer == "adamw" else 0.01,
                         optimizer=optimizer, weight_decay=0.0)  # fmt: skip
    result = train_integral_(inn, loaders, config, WidthTrainConfig(min_ratio=0.5),
                             super_resolution(2))  # fmt: skip
    record = result.history[0]
    assert torch.isfinite(torch.tensor([record["val_psnr"], record["val_psnr_smallest"]])).all()
    lam = next(lam for _, lam in inn.named_lams() if lam.requires_grad)
    assert not lam._backward_hooks


def test_partition_tuning_moves_only_the_grids(loaders):
    inn = _inn().eval()
    lams = {n: lam.detach().clone() for n, lam in inn.named_lams()}
    tuned = tune_partition(inn, 0.5, loaders.train, TuneConfig(steps=3, lr=0.05), task="l1")
    assert tuned.config.partition == "trainable" and inn.config.partition != "trainable"
    for name, lam in tuned.named_lams():
        assert torch.equal(lam, lams[name])
    assert any(p.requires_grad for p in tuned.grid_parameters())
    small = tuned.resample(tuned.width_plan(0.5))
    low, _ = next(iter(loaders.val))
    assert small(low).shape == (1, 3, 24, 24)


def test_adam_on_paced_lambdas_follows_the_discrete_network(loaders):
    # Full width only (min_ratio=1): the INN trained with `pace_groups` lands near the discrete
    # network trained the same way; without them λ ≈ W·n moves n times too slowly.
    torch.manual_seed(0)
    model = create_model("srcnn", scale=2, width=0.125)
    x = torch.rand(1, 3, 6, 6)
    inn = to_integral(model, x, IntegralConfig(reorder=False))
    config = TrainConfig(epochs=2, lr=3e-3, optimizer="adamw", weight_decay=0.0)

    start = model.conv2.weight.detach().clone()
    train_(model, loaders.train, config, loss_fn=image_loss("l1"), metric=psnr_metric(2))
    full_only = WidthTrainConfig(min_ratio=1.0, random_plans=0)
    train_integral_(inn, loaders, config, full_only, super_resolution(2))
    moved = (model.conv2.weight - start).norm()
    paced = (inn.resample(None).conv2.weight - model.conv2.weight).norm()
    assert paced < 0.4 * moved  # measured 0.24 (0.87 with every lr_scale = 1)
