"""Task objects: one set of defaults per task, the losses they stand for, how a model's is found."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from anywidth.compression.scoring import scorer_for
from anywidth.integral import to_integral
from anywidth.metrics import ACCURACY
from anywidth.models.superres import EDSR, SRCNN
from anywidth.train.losses import distillation_loss
from anywidth.train.task import (
    CLASSIFICATION,
    as_task,
    embedding_fidelity,
    super_resolution,
    task_of,
)


def test_each_task_has_one_set_of_optimizer_defaults():
    got = {
        t.name: (t.optimizer, t.lr, t.fine_tune_lr, t.weight_decay, t.tune_lr)
        for t in (CLASSIFICATION, super_resolution(2), embedding_fidelity())
    }
    assert got == {
        "classification": ("sgd", 0.1, 0.02, 5e-4, 1e-2),
        "super-resolution": ("adamw", 1e-3, 1e-4, 0.0, 1e-2),
        "embedding": ("adamw", 5e-5, 5e-5, 0.0, 1e-2),
    }
    config = super_resolution(2).train_config(3, 16, seed=1, fine_tune=True)
    assert (config.optimizer, config.lr, config.weight_decay, config.seed) == ("adamw", 1e-4, 0, 1)
    assert CLASSIFICATION.train_config(3, lr=0.5).lr == 0.5


def test_fit_follow_and_gap_are_the_losses_they_name():
    torch.manual_seed(0)
    logits, teacher, labels = torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    assert torch.equal(CLASSIFICATION.fit(logits, labels), F.cross_entropy(logits, labels))
    assert torch.equal(CLASSIFICATION.follow(logits, teacher, 2.0),
                       distillation_loss(logits, teacher, 2.0))  # fmt: skip
    assert torch.equal(CLASSIFICATION.gap(logits, teacher), (logits - teacher).pow(2).mean())
    images, ref = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    sr = super_resolution(2, "l2")
    assert torch.equal(sr.fit(images, ref), F.mse_loss(images, ref))
    assert torch.equal(sr.follow(images, ref), F.mse_loss(images, ref))
    assert torch.equal(sr.gap(images, ref), (images - ref).abs().mean())
    with pytest.raises(ValueError, match="float targets"):
        CLASSIFICATION.fit(images, ref)
    with pytest.raises(ValueError, match="has no image loss"):
        embedding_fidelity().fit(images, ref)


def test_loss_strings_still_name_a_task_and_bad_ones_are_refused():
    assert as_task("cross_entropy") is CLASSIFICATION
    assert as_task("l1").loss == "l1" and as_task(CLASSIFICATION) is CLASSIFICATION
    with pytest.raises(ValueError, match="task='ssim'"):
        as_task("ssim")
    with pytest.raises(ValueError, match="super_resolution\\(loss='ssim'\\)"):
        super_resolution(2, "ssim")


def test_a_models_task_comes_from_the_model_not_its_class_name():
    assert task_of(torch.nn.Linear(3, 2)) is CLASSIFICATION
    edsr = EDSR(scale=3, channels=4, blocks=1)
    assert task_of(edsr).name == "super-resolution" and task_of(edsr).metric.name == "psnr"
    x = torch.rand(1, 3, 6, 6)
    inn = to_integral(SRCNN(scale=2, widths=(8, 4)), x)  # asked through its full width
    assert task_of(inn).name == "super-resolution"
    scorer = scorer_for(edsr, "val")
    assert scorer.label == "val PSNR dB" and not scorer.is_accuracy
    assert scorer_for(torch.nn.Linear(3, 2)).metric is ACCURACY
    assert scorer_for(torch.nn.Linear(3, 2)).show(0.5) == "50.00"
