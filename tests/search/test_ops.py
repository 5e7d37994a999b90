"""TAS arithmetic: CWI, Gumbel-softmax picks, the cost loss, the distillation loss, configs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from anywidth.search import (
    DistillConfig,
    SearchConfig,
    cost_loss,
    cwi,
    distillation_loss,
    gumbel_softmax,
    pick,
)


def _cwi_by_definition(a: torch.Tensor, size: int) -> torch.Tensor:
    """B[i] = mean(A[s:e]), s = floor(i·C/size), e = ceil((i+1)·C/size), along dim 1."""
    c = a.shape[1]
    cols = []
    for i in range(size):
        s, e = math.floor(i * c / size), math.ceil((i + 1) * c / size)
        cols.append(a[:, s:e].mean(dim=1))
    return torch.stack(cols, dim=1)


@pytest.mark.parametrize("c_in,c_out", [(5, 3), (3, 5), (16, 11), (7, 16), (4, 1)])
def test_cwi_is_the_mean_over_index_ranges(c_in, c_out):
    a = torch.randn(2, c_in, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(cwi(a, c_out), _cwi_by_definition(a, c_out))


def test_cwi_on_the_last_dim_and_identity_at_equal_width():
    a = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(cwi(a, 4, dim=-1), _cwi_by_definition(a, 4))
    assert cwi(a, 6, dim=-1) is a
    assert cwi(torch.arange(4.0).view(1, 4), 2).tolist() == [[0.5, 2.5]]


def test_gumbel_weights_sum_to_one_and_become_one_hot():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5])
    for tau in (10.0, 1.0, 0.1):
        probs = gumbel_softmax(logits, tau, torch.Generator().manual_seed(1))
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    spreads = []
    for tau in (10.0, 1e-3):
        probs = gumbel_softmax(logits, tau, torch.Generator().manual_seed(2))
        spreads.append(probs.max().item())
    assert spreads[0] < 0.5 and spreads[1] > 0.999


def test_pick_draws_distinct_candidates_whose_weights_sum_to_one_with_gradients():
    logits = torch.zeros(5, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        indices, weights = pick(logits, 1.0, 2, gen)
        assert len(set(indices)) == 2 and all(0 <= i < 5 for i in indices)
        assert weights.sum().item() == pytest.approx(1.0, abs=1e-6)
    weights[0].backward()
    assert logits.grad.abs().sum() > 0
    assert pick(torch.zeros(1), 1.0, 2)[0] == [0]  # one candidate: one pick


def test_pick_follows_the_distribution_at_low_temperature():
    # Gumbel-max: at tau -> 0 the pick is the perturbed argmax, distributed as softmax(logits).
    logits = torch.log(torch.tensor([0.8, 0.15, 0.05]))
    gen = torch.Generator().manual_seed(0)
    first = [pick(logits, 0.01, 1, gen)[0][0] for _ in range(400)]
    assert 0.75 < first.count(0) / 400 < 0.85
    assert 0.1 < first.count(1) / 400 < 0.2


def test_cost_loss_three_cases():
    e = torch.tensor(0.6, requires_grad=True)
    above = cost_loss(e, current=0.7, target=0.5, tolerance=0.05)
    below = cost_loss(e, current=0.3, target=0.5, tolerance=0.05)
    inside = cost_loss(e, current=0.52, target=0.5, tolerance=0.05)
    assert above.item() == pytest.approx(math.log(0.6))
    assert below.item() == pytest.approx(-math.log(0.6))
    assert inside.item() == 0.0
    (grad,) = torch.autograd.grad(above, e)
    assert grad.item() == pytest.approx(1 / 0.6)  # descending it lowers the expected cost
    (grad,) = torch.autograd.grad(inside, e)
    assert grad.item() == 0.0


@pytest.mark.parametrize("t,w", [(4.0, 0.9), (1.0, 0.5), (2.0, 0.0)])
def test_distillation_loss_equals_its_formula(t, w):
    s, z, y = torch.randn(6, 10), torch.randn(6, 10), torch.randint(0, 10, (6,))
    p_t = torch.softmax(z / t, 1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s / t, 1))).sum(1).mean()
    expected = (1 - w) * F.cross_entropy(s, y) + w * t * t * kl
    got = distillation_loss(s, z, y, DistillConfig(temperature=t, weight=w))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert distillation_loss(s, s, y, DistillConfig(t, 1.0)).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("bad", [0, 1.0, 1.5, -0.2, float("nan"), "0.5", True])
def test_bad_targets_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="SearchConfig.target_macs"):
        SearchConfig(target_macs=bad)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"epochs": 0}, "epochs"),
        ({"width_ratios": (0.5, 1.2)}, "width_ratios"),
        ({"order": "l2"}, "order"),
        ({"tau_min": 20.0}, "tau_min"),
        ({"tolerance": 0}, "tolerance"),
    ],
)
def test_bad_search_settings_are_refused_by_name(kwargs, field):
    with pytest.raises(ValueError, match=f"SearchConfig.{field}"):
        SearchConfig(**kwargs)


def test_configs_round_trip_and_refuse_unknown_keys():
    config = SearchConfig(target_macs=0.3, blocks=["layer1.*"], fixed=["fc:out"], epochs=3)
    assert SearchConfig.from_dict(config.to_dict()) == config
    assert DistillConfig.from_dict(DistillConfig(2.0, 0.5).to_dict()) == DistillConfig(2.0, 0.5)
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        SearchConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="DistillConfig.weight"):
        DistillConfig(weight=1.5)
