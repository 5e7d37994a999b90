import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anywidth.integral.quadrature import QUADRATURE_RULES, quadrature_weights
from tests._hypothesis import n_examples

# Highest polynomial degree each rule integrates exactly on a uniform grid.
EXACT_UNIFORM = {"rectangle": 1, "trapezoid": 1, "simpson": 3}
# ... and on any partition of [0, 1].
EXACT_ANY = {"rectangle": 0, "trapezoid": 1, "simpson": 2}
ORDER = {"rectangle": 1, "trapezoid": 2, "simpson": 4}


def integrate(points: torch.Tensor, values: torch.Tensor, rule: str) -> float:
    return float((quadrature_weights(points, rule) * values).sum())


def random_partition(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    gaps = torch.rand(n - 1, generator=g, dtype=torch.float64) + 0.05
    return torch.cat([torch.zeros(1, dtype=torch.float64), gaps.cumsum(0) / gaps.sum()])


@pytest.mark.parametrize("rule", QUADRATURE_RULES)
@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9, 33])
def test_exact_for_polynomials_on_uniform_grid(rule, n):
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    degree = EXACT_UNIFORM[rule]
    if rule == "simpson" and n % 2 == 0:
        # The odd interval out is integrated with a quadratic; two points: trapezoid.
        degree = 2 if n > 2 else 1
    for k in range(degree + 1):
        assert integrate(x, x**k, rule) == pytest.approx(1 / (k + 1), abs=1e-12), k


@pytest.mark.parametrize("rule", ["trapezoid", "simpson"])
def test_not_exact_beyond_its_degree(rule):
    x = torch.linspace(0, 1, 9, dtype=torch.float64)
    k = EXACT_UNIFORM[rule] + 1
    assert abs(integrate(x, x**k, rule) - 1 / (k + 1)) > 1e-6


@pytest.mark.parametrize("rule", QUADRATURE_RULES)
@pytest.mark.parametrize("n", [2, 3, 4, 7, 10, 21])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_on_random_non_uniform_partitions(rule, n, seed):
    x = random_partition(n, seed)
    degree = min(EXACT_ANY[rule], 1) if n == 2 else EXACT_ANY[rule]
    for k in range(degree + 1):
        assert integrate(x, x**k, rule) == pytest.approx(1 / (k + 1), abs=1e-12), k


@pytest.mark.parametrize("rule", QUADRATURE_RULES)
@pytest.mark.parametrize("parity", [0, 1])
def test_convergence_rate(rule, parity):
    def f(x):
        return torch.exp(x) + torch.sin(3 * x)

    exact = (math.e - 1) + (1 - math.cos(3)) / 3
    sizes = [16 + parity, 32 + parity, 64 + parity]
    errors = []
    for n in sizes:
        x = torch.linspace(0, 1, n, dtype=torch.float64)
        errors.append(abs(integrate(x, f(x), rule) - exact))
    rates = [
        math.log(errors[i] / errors[i + 1]) / math.log((sizes[i + 1] - 1) / (sizes[i] - 1))
        for i in range(2)
    ]
    assert min(rates) == pytest.approx(ORDER[rule], abs=0.25), rates


def test_uniform_weights_have_the_textbook_values():
    x = torch.linspace(0, 1, 5, dtype=torch.float64)
    h = 0.25
    torch.testing.assert_close(quadrature_weights(x, "rectangle"), torch.full((5,), 0.2).double())
    torch.testing.assert_close(
        quadrature_weights(x, "trapezoid"), h * torch.tensor([0.5, 1, 1, 1, 0.5]).double()
    )
    torch.testing.assert_close(
        quadrature_weights(x, "simpson"), h / 3 * torch.tensor([1, 4, 2, 4, 1]).double()
    )
    x4 = torch.linspace(0, 1, 4, dtype=torch.float64)
    simpson_even = torch.tensor([1 / 3, 4 / 3 - 1 / 12, 1 / 3 + 8 / 12, 5 / 12]).double()
    torch.testing.assert_close(quadrature_weights(x4, "simpson"), simpson_even / 3)


@pytest.mark.parametrize("rule", QUADRATURE_RULES)
def test_single_point_has_weight_one(rule):
    for point in (0.0, 0.5):
        assert quadrature_weights(torch.tensor([point]), rule).tolist() == [1.0]


@pytest.mark.parametrize("rule", QUADRATURE_RULES)
def test_positive_weights_on_uniform_grids(rule):
    for n in range(2, 40):
        assert (quadrature_weights(torch.linspace(0, 1, n), rule) > 0).all(), n


@pytest.mark.parametrize("rule", QUADRATURE_RULES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_keeps_dtype_and_shape(rule, dtype):
    q = quadrature_weights(torch.linspace(0, 1, 7, dtype=dtype), rule)
    assert q.dtype == dtype and q.shape == (7,)


@pytest.mark.parametrize("rule", QUADRATURE_RULES)
@pytest.mark.parametrize("n", [2, 5, 6])
def test_gradient_flows_to_points(rule, n):
    x = random_partition(n, seed=3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: quadrature_weights(p, rule), (x,))
    (quadrature_weights(x, rule) * torch.cos(3 * x)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "points, rule, message",
    [
        (torch.linspace(0, 1, 3), "gauss", "unknown quadrature rule"),
        (torch.zeros(2, 2), "trapezoid", "1-D"),
        (torch.zeros(0), "trapezoid", "non-empty"),
        (torch.arange(3), "trapezoid", "floating point"),
    ],
    ids=["unknown-rule", "2d", "empty", "integer"],
)
def test_bad_input(points, rule, message):
    with pytest.raises(ValueError, match=message):
        quadrature_weights(points, rule)


@settings(max_examples=n_examples(ci=60))
@given(
    gaps=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=30),
    rule=st.sampled_from(QUADRATURE_RULES),
)
def test_any_partition_integrates_what_it_should(gaps, rule):
    g = torch.tensor(gaps, dtype=torch.float64)
    x = torch.cat([torch.zeros(1, dtype=torch.float64), g.cumsum(0) / g.sum()])
    assert integrate(x, torch.ones_like(x), rule) == pytest.approx(1.0, abs=1e-10)
    if rule != "rectangle":
        assert integrate(x, 2 * x - 0.3, rule) == pytest.approx(0.7, abs=1e-10)


def test_rectangle_is_exact_for_linear_functions_on_symmetric_grids():
    half = random_partition(6, seed=4) * 0.5  # (6,) from 0 to 0.5
    x = torch.cat([half, 1 - half.flip(0)[1:]])  # (11,) symmetric about 0.5
    assert integrate(x, 4 * x - 1, "rectangle") == pytest.approx(1.0, abs=1e-12)
