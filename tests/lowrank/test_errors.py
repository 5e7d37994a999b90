"""The rank errors ALDS allocates with: exact where cheap, bounded search, Lanczos norms."""

from __future__ import annotations

import torch

from anywidth.lowrank._factors import SliceSVD, _svd, top_singular_value


def _brute_rank(svd: SliceSVD, epsilon: float, max_rank: int) -> int:
    return next((j for j in range(1, max_rank + 1) if svd.error(j) <= epsilon), max_rank)


def test_rank_for_matches_a_scan_over_every_rank_for_sliced_and_plain_factors():
    torch.manual_seed(0)
    weight = torch.randn(48, 32, 3, 3)
    for k in (1, 2, 4):
        svd = SliceSVD.of(weight, k)
        plain = SliceSVD.of(weight, k)
        plain._errors = {}  # force the per-rank path, not the batched table
        top = svd.s[0].shape[0]
        for epsilon in (0.9, 0.6, 0.3, 0.1, 0.01, 0.0):
            for max_rank in (top, top // 3):
                want = _brute_rank(svd, epsilon, max_rank)
                assert svd.rank_for(epsilon, max_rank) == want
                assert plain.rank_for(epsilon, max_rank) == want
        for j in (1, 5, 17):
            assert abs(plain.error(j) - svd.error(j)) <= 1e-5


def test_the_error_of_one_slice_is_the_next_singular_value():
    torch.manual_seed(1)
    weight = torch.randn(20, 12)
    svd = SliceSVD.of(weight, 1)
    s = torch.linalg.svdvals(weight)
    assert abs(svd.error(3) - float(s[3] / s[0])) <= 1e-6


def test_the_norm_of_a_wide_matrix_by_lanczos_matches_the_exact_one():
    torch.manual_seed(2)
    a = torch.randn(1100, 1300, dtype=torch.float64) @ torch.diag(
        torch.linspace(1, 2, 1300, dtype=torch.float64)
    )
    got = top_singular_value(a)  # both sides over the exact limit: the Lanczos path
    want = float(torch.linalg.matrix_norm(a, ord=2))
    assert abs(got - want) <= 1e-5 * want
    small = a[:, :300]  # 300 columns: the exact path through the 300 × 300 Gram matrix
    assert (
        abs(top_singular_value(small) - float(torch.linalg.matrix_norm(small, ord=2)))
        <= 1e-9 * want
    )


def test_errors_on_the_lanczos_path_started_from_the_last_vector_are_exact():
    # 1040 rows and 2 × (1040 − j) columns: past the exact limit, so each error is a Lanczos
    # solve started from the previous rank's top vector
    torch.manual_seed(3)
    weight = torch.randn(1040, 2080, dtype=torch.float64)
    svd = SliceSVD.of(weight, 2)
    for j in (300, 100, 200):
        first, second = svd.factors(j)
        halves = first.reshape(2, j, -1)
        approx = torch.cat([second[:, i * j : (i + 1) * j] @ halves[i] for i in range(2)], 1)
        want = float(torch.linalg.matrix_norm(weight - approx, ord=2)) / svd.norm
        assert abs(svd.error(j) - want) <= 1e-5 * want
    assert svd._start is not None  # the path taken


def test_long_slices_decomposed_through_their_gram_matrix_match_lapack():
    torch.manual_seed(4)
    for shape in ((520, 1600), (1700, 520)):  # wide and tall: both sides of the Gram path
        weight = torch.randn(*shape) @ torch.diag(torch.linspace(0.1, 3, shape[1]))
        u, s, vh = _svd(weight[None])
        want = torch.linalg.svdvals(weight)
        assert float((s[0] - want).abs().max()) <= 1e-5 * float(want[0])
        for j in (10, 200, 520):
            got = (u[0, :, :j] * s[0, :j]) @ vh[0, :j]
            uu, ss, vv = torch.linalg.svd(weight, full_matrices=False)
            exact = (uu[:, :j] * ss[:j]) @ vv[:j]
            assert float((got - exact).norm() / exact.norm()) <= 1e-4
