import math

import pytest
import torch

from anywidth.integral.interpolation import cubic_kernel, interpolation_matrix, sample
from anywidth.integral.partition import uniform_points


def f_smooth(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x) + torch.exp(x)


def test_kernel_is_one_at_zero_and_zero_at_other_integers():
    s = torch.arange(-4, 5, dtype=torch.float64)
    expected = (s == 0).double()
    assert torch.equal(cubic_kernel(s), expected)


def test_kernel_is_symmetric_continuous_and_a_partition_of_unity():
    s = torch.linspace(-3, 3, 601, dtype=torch.float64)
    torch.testing.assert_close(cubic_kernel(s), cubic_kernel(-s))
    for knot in (1.0, 2.0):
        left, right = cubic_kernel(torch.tensor([knot - 1e-9, knot + 1e-9]).double())
        assert float(left) == pytest.approx(float(right), abs=1e-8)
    x = torch.rand(50, dtype=torch.float64)
    shifts = torch.arange(-3, 4, dtype=torch.float64)
    total = cubic_kernel(x[:, None] - shifts[None, :]).sum(1)
    torch.testing.assert_close(total, torch.ones_like(total))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("num_nodes", [1, 2, 3, 4, 7, 64, 1000, 2049])
def test_nodes_give_exactly_the_identity(num_nodes, dtype):
    m = interpolation_matrix(uniform_points(num_nodes, dtype=dtype), num_nodes)
    assert m.shape == (num_nodes, num_nodes)
    assert torch.equal(m, torch.eye(num_nodes, dtype=dtype))


@pytest.mark.parametrize("num_nodes", [1, 2, 3, 5, 16])
def test_rows_sum_to_one(num_nodes):
    points = torch.rand(100, dtype=torch.float64)
    m = interpolation_matrix(points, num_nodes)
    torch.testing.assert_close(m.sum(1), torch.ones(100, dtype=torch.float64))


def _edge_heavy_points() -> torch.Tensor:
    # Half of the points within one node spacing of an end, where the ghost nodes matter.
    r = torch.rand(200, dtype=torch.float64)
    return torch.cat([0.1 * r[:50], 1 - 0.1 * r[50:100], r[100:], torch.tensor([0.0, 1.0])])


@pytest.mark.parametrize("num_nodes", [3, 4, 8, 11])
@pytest.mark.parametrize("degree", [0, 1, 2])
def test_reproduces_polynomials_up_to_degree_two(num_nodes, degree):
    nodes = uniform_points(num_nodes, dtype=torch.float64)
    points = _edge_heavy_points()
    coef = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)[: degree + 1]

    def poly(x):
        return sum(c * x**k for k, c in enumerate(coef))

    values = interpolation_matrix(points, num_nodes) @ poly(nodes)
    torch.testing.assert_close(values, poly(points), atol=1e-12, rtol=0)


def test_two_nodes_interpolate_linearly():
    points = torch.rand(30, dtype=torch.float64)
    m = interpolation_matrix(points, 2)
    torch.testing.assert_close(m, torch.stack([1 - points, points], 1))


def test_one_node_is_constant():
    m = interpolation_matrix(torch.tensor([0.0, 0.3, 1.0]), 1)
    assert torch.equal(m, torch.ones(3, 1))


def test_smooth_functions_converge_at_third_order():
    points = torch.linspace(0, 1, 2001, dtype=torch.float64)
    sizes = [17, 33, 65, 129]
    errors = []
    for n in sizes:
        nodes = uniform_points(n, dtype=torch.float64)
        approx = interpolation_matrix(points, n) @ f_smooth(nodes)
        errors.append(float((approx - f_smooth(points)).abs().max()))
    rates = [math.log2(errors[i] / errors[i + 1]) for i in range(len(sizes) - 1)]
    assert min(rates) > 2.7, rates
    assert errors[-1] < 1e-6


def test_sample_at_the_nodes_returns_the_parameters():
    lam = torch.randn(8, 6, 3, 3)
    out = sample(lam, {0: uniform_points(8), 1: uniform_points(6)})
    assert torch.equal(out, lam)
    assert torch.equal(sample(lam, {}), lam)


def test_sample_is_separable_on_a_conv_weight():
    lam = torch.randn(8, 6, 3, 3, dtype=torch.float64)
    p_out = torch.rand(5, dtype=torch.float64).sort().values
    p_in = torch.rand(4, dtype=torch.float64).sort().values
    out = sample(lam, {0: p_out, 1: p_in})
    assert out.shape == (5, 4, 3, 3)
    m_out, m_in = interpolation_matrix(p_out, 8), interpolation_matrix(p_in, 6)
    expected = torch.einsum("ai,bj,ijkl->abkl", m_out, m_in, lam)
    torch.testing.assert_close(out, expected)
    # One dimension at a time, in either order, and with negative dimension indices.
    torch.testing.assert_close(sample(sample(lam, {1: p_in}), {0: p_out}), expected)
    torch.testing.assert_close(sample(lam, {-4: p_out, -3: p_in}), expected)


@pytest.mark.parametrize("num_nodes", [1, 2, 3, 4, 9, 40])
def test_sample_equals_the_dense_matrix_product(num_nodes):
    lam = torch.randn(num_nodes, 3, 2, dtype=torch.float64)
    points = torch.cat([torch.tensor([0.0, 1.0, 0.5]), torch.rand(20)]).double()
    expected = torch.einsum("mn,nab->mab", interpolation_matrix(points, num_nodes), lam)
    torch.testing.assert_close(sample(lam, {0: points}), expected, rtol=1e-12, atol=1e-12)


def test_sample_gradients_match_finite_differences():
    lam = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    points = torch.rand(5, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w, p: sample(w, {0: p, 2: p[:2]}), (lam, points))


def test_sample_a_bias_vector():
    lam = torch.randn(10, dtype=torch.float64)
    points = torch.rand(7, dtype=torch.float64)
    torch.testing.assert_close(sample(lam, {0: points}), interpolation_matrix(points, 10) @ lam)


def test_gradients_flow_to_points_and_parameters():
    points = torch.rand(6, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: interpolation_matrix(p, 5), (points,))
    lam = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    grid = torch.rand(3, dtype=torch.float64).requires_grad_(True)
    sample(lam, {0: grid}).pow(2).sum().backward()
    assert lam.grad is not None and lam.grad.abs().sum() > 0
    assert grid.grad is not None and torch.isfinite(grid.grad).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: interpolation_matrix(torch.tensor([0.0, 1.5]), 4), r"\[0, 1\]"),
        (lambda: interpolation_matrix(torch.tensor([-0.2]), 4), r"\[0, 1\]"),
        (lambda: interpolation_matrix(torch.zeros(2, 2), 4), "1-D"),
        (lambda: interpolation_matrix(torch.tensor([0, 1]), 4), "floating"),
        (lambda: interpolation_matrix(torch.tensor([0.5]), 0), "num_nodes"),
        (lambda: sample(torch.zeros(3, 3), {2: torch.tensor([0.5])}), "out of range"),
        (lambda: sample(torch.zeros(3, 3), {0: torch.rand(2), -2: torch.rand(2)}), "twice"),
    ],
    ids=["above-one", "below-zero", "2d", "integer", "no-nodes", "bad-dim", "dim-twice"],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
