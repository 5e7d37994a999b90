import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from anywidth.train.losses import distillation_loss
from anywidth.train.tune import tune_


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def test_only_the_chosen_parameters_move():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tune_(model, list(model[1].parameters()), _data(), steps=5)
    after = model.state_dict()
    assert not torch.equal(before["1.weight"], after["1.weight"])
    for key in ("0.weight", "0.bias", "3.weight", "3.bias", "1.running_mean"):
        assert torch.equal(before[key], after[key]), key
    assert all(p.requires_grad for p in model.parameters())


def test_loss_goes_down_and_mode_is_restored():
    model = _model().eval()
    losses = tune_(model, list(model.parameters()), _data(), steps=40, lr=0.05)
    assert len(losses) == 40
    assert sum(losses[-4:]) < sum(losses[:4])
    assert not model.training


def test_each_submodule_flag_is_restored_in_model_and_teacher():
    model = _model().train()
    model[1].eval()  # a frozen BatchNorm inside a training model stays frozen
    teacher = _model().train()
    teacher[3].eval()
    tune_(model, list(model[3].parameters()), _data(), steps=2, teacher=teacher)
    assert [m.training for m in model] == [True, False, True, True]
    assert [m.training for m in teacher] == [True, True, True, False]


def test_distillation_pulls_the_student_towards_the_teacher():
    def net(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    teacher = net(1).eval()
    x = next(iter(_data()))[0]
    gaps = {}
    for name, guide in (("labels only", None), ("with teacher", teacher)):
        student = net(0)
        tune_(student, list(student[2].parameters()), _data(), steps=30, lr=0.05, teacher=guide)
        gaps[name] = distillation_loss(student.eval()(x), teacher(x)).item()
    assert gaps["with teacher"] < gaps["labels only"]


def test_distillation_loss_is_zero_for_equal_outputs():
    logits = torch.randn(5, 3)
    assert distillation_loss(logits, logits).item() == pytest.approx(0.0, abs=1e-7)
    assert distillation_loss(logits, -logits).item() > 0


def test_bad_arguments():
    model = _model()
    with pytest.raises(ValueError, match="steps"):
        tune_(model, list(model.parameters()), _data(), steps=0)
    with pytest.raises(ValueError, match="no parameters"):
        tune_(model, [], _data(), steps=3)
