"""distill_: the teacher is left alone, the student learns, an interrupted run resumes exactly."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, Subset

import anywidth
from anywidth.data import load_dataset
from anywidth.measure import evaluate
from anywidth.search import DistillConfig, distill_
from anywidth.train import TrainConfig, train_


@pytest.fixture(scope="module")
def loader() -> DataLoader:
    data = load_dataset("digits", "train")
    return DataLoader(Subset(data, range(192)), batch_size=16, shuffle=True)


@pytest.fixture(scope="module")
def trained(loader) -> torch.nn.Module:
    torch.manual_seed(0)
    teacher = anywidth.create_model("tiny_resnet", num_classes=10, in_channels=1)
    train_(teacher, loader, TrainConfig(epochs=5, lr=0.1, warmup_epochs=0))
    return teacher.eval()


def _agreement(student, teacher, loader) -> float:
    """Share of images on which the two models predict the same class."""
    same = total = 0
    with torch.no_grad():
        for images, _ in loader:
            same += (student.eval()(images).argmax(1) == teacher(images).argmax(1)).sum().item()
            total += len(images)
    student.train()
    return same / total


def _pair(trained):
    torch.manual_seed(1)
    student = anywidth.create_model("tiny_resnet", num_classes=10, in_channels=1)
    return copy.deepcopy(trained), student


def test_distill_trains_the_student_and_leaves_the_teacher(loader, trained):
    teacher, student = _pair(trained)
    assert evaluate(teacher, loader)["accuracy"] > 0.6
    before = copy.deepcopy(teacher.state_dict())
    start, agree = evaluate(student, loader)["accuracy"], _agreement(student, teacher, loader)
    config = TrainConfig(epochs=6, lr=0.1, warmup_epochs=0)
    result = distill_(student, teacher, loader, config, DistillConfig(temperature=2, weight=0.5))
    assert len(result.history) == 6
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert evaluate(student, loader)["accuracy"] > start + 0.2
    assert _agreement(student, teacher, loader) > agree + 0.2
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not teacher.training


def test_an_interrupted_distillation_resumes_exactly(loader, trained, tmp_path):
    config = TrainConfig(epochs=2, lr=0.05, warmup_epochs=0, seed=3)
    teacher, whole = _pair(trained)
    distill_(whole, teacher, loader, config)
    teacher, part = _pair(trained)
    folder = tmp_path / "run"
    stop = distill_(part, teacher, loader, config, checkpoint_dir=folder,
                    on_epoch_end=lambda epoch, _: epoch == 1)  # fmt: skip
    assert stop.stopped_early
    teacher, resumed = _pair(trained)
    distill_(resumed, teacher, loader, config, checkpoint_dir=folder, resume=True)
    for (key, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
