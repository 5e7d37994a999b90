import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anywidth.integral.partition import TrainablePartition, uniform_points
from anywidth.integral.quadrature import quadrature_weights
from tests._hypothesis import n_examples


@pytest.mark.parametrize("n", [2, 3, 10, 257])
def test_uniform_points_is_linspace(n):
    assert torch.equal(uniform_points(n), torch.linspace(0, 1, n))


def test_single_point_is_the_midpoint():
    assert uniform_points(1).tolist() == [0.5]
    assert TrainablePartition(1).points().tolist() == [0.5]


def test_uniform_points_dtype():
    assert uniform_points(4, dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("n", [2, 3, 5, 64, 513])
def test_trainable_partition_starts_uniform(n):
    part = TrainablePartition(n)
    assert part.delta.shape == (n - 1,)
    torch.testing.assert_close(part.points(), uniform_points(n), atol=1e-6, rtol=0)
    assert torch.equal(part(), part.points())


@pytest.mark.parametrize("seed", range(5))
def test_random_delta_keeps_exact_endpoints_and_order(seed):
    part = TrainablePartition(50)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        signs = torch.randint(0, 2, (49,), generator=g) * 2 - 1
        part.delta.copy_(signs * (0.3 + 3 * torch.rand(49, generator=g)))
    p = part.points()
    assert p[0].item() == 0.0 and p[-1].item() == 1.0
    assert (p[1:] > p[:-1]).all()


def test_gradient_flows_to_delta():
    part = TrainablePartition(6, dtype=torch.float64)
    with torch.no_grad():
        part.delta.copy_(torch.tensor([0.5, 1.0, 2.0, 1.5, 0.7]))
    (part.points() ** 2).sum().backward()
    assert part.delta.grad is not None
    assert torch.isfinite(part.delta.grad).all() and part.delta.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(
        lambda d: torch.func.functional_call(part, {"delta": d}, ()),
        (part.delta.detach().clone().requires_grad_(True),),
    )


def test_training_the_partition_improves_a_quadrature():
    # A steep function is integrated better once points move towards its steep end.
    def f(x):
        return torch.exp(8 * x)

    exact = (torch.exp(torch.tensor(8.0, dtype=torch.float64)) - 1) / 8
    part = TrainablePartition(9, dtype=torch.float64)
    opt = torch.optim.Adam(part.parameters(), lr=0.1)

    def relative_error():
        x = part.points()
        return ((quadrature_weights(x, "trapezoid") * f(x)).sum() / exact - 1) ** 2

    before = relative_error().item()
    for _ in range(60):
        opt.zero_grad()
        relative_error().backward()
        opt.step()
    assert relative_error().item() < 0.2 * before
    assert part.points()[4].item() > 0.6  # the middle point moved towards the steep end


def test_from_points_round_trip():
    points = torch.tensor([0.0, 0.05, 0.3, 0.31, 1.0], dtype=torch.float64)
    part = TrainablePartition.from_points(points)
    assert part.n == 5
    torch.testing.assert_close(part.points().detach(), points)
    assert TrainablePartition.from_points(torch.tensor([0.5])).points().tolist() == [0.5]


@pytest.mark.parametrize(
    "points, message",
    [
        (torch.tensor([0.0, 0.5, 0.5, 1.0]), "strictly increasing"),
        (torch.tensor([0.1, 0.5, 1.0]), "from 0 to 1"),
        (torch.tensor([0.0, 0.5, 0.9]), "from 0 to 1"),
        (torch.zeros(0), "non-empty"),
    ],
    ids=["repeated", "late-start", "early-end", "empty"],
)
def test_from_points_rejects_bad_points(points, message):
    with pytest.raises(ValueError, match=message):
        TrainablePartition.from_points(points)


@pytest.mark.parametrize("n", [0, -1])
def test_size_must_be_positive(n):
    with pytest.raises(ValueError, match="at least one point"):
        uniform_points(n)
    with pytest.raises(ValueError, match="at least one point"):
        TrainablePartition(n)


@settings(max_examples=n_examples(ci=50))
@given(st.lists(st.floats(-1e3, 1e3).filter(lambda v: abs(v) > 1e-3), min_size=1, max_size=40))
def test_any_delta_gives_a_valid_partition(delta):
    part = TrainablePartition(len(delta) + 1)
    with torch.no_grad():
        part.delta.copy_(torch.tensor(delta))
    p = part.points()
    assert p[0].item() == 0.0 and p[-1].item() == 1.0
    assert (p[1:] >= p[:-1]).all()
