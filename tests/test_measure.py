import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from anywidth.measure import (
    Report,
    count_macs,
    count_params,
    evaluate,
    forward_hooked,
    latency,
    profile,
)


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def test_count_params_counts_each_tensor_once():
    shared = nn.Linear(5, 5)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_params(model) == 30
    assert count_params(_net()) == 3 * 8 * 9 + 2 * 8 + 8 * 4 + 4


def test_count_macs_matches_analytic_conv_and_linear():
    model = _net()
    # conv: 8 out * 3 in * 9 taps * 16*16 positions; linear: 8 * 4.
    expected = 8 * 3 * 9 * 16 * 16 + 8 * 4
    assert count_macs(model, torch.randn(1, 3, 16, 16)) == expected
    assert count_macs(model, torch.randn(2, 3, 16, 16)) == 2 * expected


def test_count_macs_restores_training_mode():
    model = _net().train()
    count_macs(model, torch.randn(1, 3, 8, 8))
    assert model.training


def test_latency_reports_median_and_threads():
    result = latency(_net(), torch.randn(1, 3, 8, 8), warmup=1, repeats=3, threads=1)
    assert result.median_ms > 0
    assert result.min_ms <= result.median_ms
    assert result.threads == 1


def test_latency_rejects_bad_repeats():
    with pytest.raises(ValueError, match="repeats"):
        latency(_net(), torch.randn(1, 3, 8, 8), repeats=0)


def test_evaluate_accuracy_and_loss():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1, 1])  # the third is wrong
    metrics = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=3))
    assert metrics["accuracy"] == pytest.approx(0.75)
    expected_loss = nn.functional.cross_entropy(model(x), y).item()
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert metrics["samples"] == 4


def test_evaluate_empty_loader_is_an_error():
    empty = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="empty loader"):
        evaluate(nn.Linear(2, 2), empty)


def test_profile_is_one_comparable_record():
    torch.manual_seed(0)
    model = _net().eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        logits = model(x)  # (4, 4)
    # labels: the model's own prediction for the first three samples, a wrong one for the last
    labels = logits.argmax(dim=1)
    labels[3] = (labels[3] + 1) % 4
    data = DataLoader(TensorDataset(x, labels), batch_size=2)
    report = profile(model, x, loader=data, name="net", repeats=2)
    assert report.macs == count_macs(model, x[:1]) == 8 * 3 * 9 * 8 * 8 + 8 * 4
    assert report.params == count_params(model)
    assert report.batch_size == 4
    assert report.accuracy == 0.75
    expected_loss = nn.functional.cross_entropy(logits, labels).item()
    assert report.loss == pytest.approx(expected_loss, rel=1e-6)
    assert Report.from_dict(report.to_dict()) == report


class _Keywords(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.fc(x) * scale


def test_forward_hooked_takes_every_batch_form_and_cleans_up():
    model = _Keywords().train()
    seen = []

    def hook(module, args, out):
        seen.append((module.training, torch.is_grad_enabled(), tuple(args[0].shape)))

    x = torch.ones(4, 3)
    batches = [(x, torch.zeros(4)), {"x": x[:2], "scale": 2.0}, x[:1], x]
    assert forward_hooked(model, batches, [(model.fc, hook)], max_batches=3) == 3
    assert seen == [(False, False, (4, 3)), (False, False, (2, 3)), (False, False, (1, 3))]
    assert model.training and not model.fc._forward_hooks  # mode restored, hook removed
    assert forward_hooked(model, x, [(model.fc, hook)], max_batches=5) == 1  # one tensor
    with pytest.raises(ValueError, match="no batches"):
        forward_hooked(model, [], [(model.fc, hook)], max_batches=2)
    assert not model.fc._forward_hooks


class _TokenStage(nn.Module):
    def forward(self, pair):
        x, token = pair  # (B, 4), (B, 3, 4)
        return token @ x[:, :, None]


class _HandsOverAParameter(nn.Module):
    """timm's PiT: a view of a parameter (the class tokens) is a submodule's input."""

    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 3, 4))
        self.stage = _TokenStage()

    def forward(self, x):
        return self.stage((x, self.token.expand(x.shape[0], -1, -1)))  # a view: requires grad


def test_count_macs_of_a_model_that_passes_a_parameter_to_a_submodule():
    model = _HandsOverAParameter()
    assert count_macs(model, torch.randn(2, 4)) == 2 * 4 * 3
    assert model.token.requires_grad  # put back
