import itertools

import numpy as np
import pytest
import torch

from anywidth.integral import ordering
from anywidth.integral.ordering import channel_order, distance_matrix, path_length


def length(dist: np.ndarray, perm) -> float:
    perm = np.asarray(perm)
    return float(dist[perm[:-1], perm[1:]].sum())


def nearest_neighbour_length(dist: np.ndarray, start: int) -> float:
    n = dist.shape[0]
    path, seen = [start], {start}
    while len(path) < n:
        row = dist[path[-1]].copy()
        row[list(seen)] = np.inf
        path.append(int(row.argmin()))
        seen.add(path[-1])
    return length(dist, path)


def curve_features(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows on a curve that is monotone in every coordinate, in shuffled order."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    feats = torch.stack([t, t**2, torch.exp(t), 3 * t + torch.sin(t)], 1)  # (n, 4)
    return feats, t


def clustered_features(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(max(n // 8, 1), d, generator=g)
    labels = torch.randint(0, centres.shape[0], (n,), generator=g)
    return centres[labels] + 0.3 * torch.randn(n, d, generator=g)


def assert_permutation(perm: torch.Tensor, n: int) -> None:
    assert perm.dtype == torch.long and perm.shape == (n,)
    assert torch.equal(perm.sort().values, torch.arange(n))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 11, 100, 300])
def test_returns_a_permutation(n):
    perm = channel_order(torch.randn(n, 7))
    assert_permutation(perm, n)
    if n >= 2:
        assert perm[0] < perm[-1]  # canonical orientation


def test_trivial_sizes():
    assert channel_order(torch.randn(1, 3)).tolist() == [0]
    assert channel_order(torch.randn(2, 3)).tolist() == [0, 1]
    assert channel_order(torch.tensor([[0.0], [5.0], [1.0]])).tolist() == [0, 2, 1]


@pytest.mark.parametrize("n, seed", [(20, 0), (200, 1), (600, 2)])
def test_finds_the_sorted_order_on_a_shuffled_curve(n, seed):
    feats, t = curve_features(n, seed)
    perm = channel_order(feats)
    order = t.argsort()
    assert torch.equal(perm, order) or torch.equal(perm, order.flip(0))
    dist = distance_matrix(feats)
    assert length(dist, perm) == pytest.approx(length(dist, order), rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_small_instances_are_solved_exactly(seed):
    feats = clustered_features(8, 5, seed) if seed % 2 else torch.randn(8, 5)
    dist = distance_matrix(feats)
    best = min(length(dist, p) for p in itertools.permutations(range(8)) if p[0] < p[-1])
    assert length(dist, channel_order(feats)) == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("n", [4, 6, 9, 11])
@pytest.mark.parametrize("seed", range(4))
def test_no_improving_two_opt_or_or_opt_move_remains(n, seed, monkeypatch):
    # Switch the exact solver off to test the local search. With n <= 11 every city is in
    # every neighbour list, so the result must be a local optimum of the full 2-opt and
    # Or-opt neighbourhoods, path ends included.
    monkeypatch.setattr(ordering, "_EXACT_MAX_N", 0)
    feats = torch.randn(n, 6, generator=torch.Generator().manual_seed(seed))
    dist = distance_matrix(feats)
    perm = channel_order(feats).tolist()
    base = length(dist, perm)
    tol = 1e-9 * base
    for i in range(n):
        for j in range(i + 1, n + 1):
            cand = perm[:i] + perm[i:j][::-1] + perm[j:]  # includes prefix/suffix reversals
            assert length(dist, cand) >= base - tol, ("2-opt", i, j)
    for size in (1, 2, 3):
        for i in range(n - size + 1):
            seg, rest = perm[i : i + size], perm[:i] + perm[i + size :]
            for k in range(len(rest) + 1):
                for piece in (seg, seg[::-1]):
                    cand = rest[:k] + piece + rest[k:]
                    assert length(dist, cand) >= base - tol, ("or-opt", size, i, k)


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(150, 40, generator=torch.Generator().manual_seed(0)),
        lambda: clustered_features(150, 40, seed=1),
        lambda: curve_features(150, 2)[0] + 0.05 * torch.randn(150, 4, dtype=torch.float64),
    ],
    ids=["gaussian", "clustered", "noisy-curve"],
)
def test_never_worse_than_identity_or_nearest_neighbour(make):
    feats = make()
    dist = distance_matrix(feats)
    ours = length(dist, channel_order(feats))
    assert ours <= length(dist, np.arange(len(dist)))
    assert ours <= min(nearest_neighbour_length(dist, s) for s in range(0, 150, 10))


def test_identity_is_kept_when_it_is_already_optimal():
    feats = torch.linspace(0, 1, 50)[:, None].repeat(1, 3)
    assert torch.equal(channel_order(feats), torch.arange(50))


def test_deterministic():
    feats = clustered_features(200, 30, seed=3)
    assert torch.equal(channel_order(feats), channel_order(feats))
    assert torch.equal(channel_order(feats, seed=5), channel_order(feats, seed=5))


def test_numpy_input_and_path_length():
    feats = np.random.default_rng(0).normal(size=(40, 9))
    perm = channel_order(feats)
    assert_permutation(perm, 40)
    dist = distance_matrix(feats)
    assert path_length(feats, perm) == pytest.approx(length(dist, perm), rel=1e-6)
    assert path_length(feats, perm.numpy()) == path_length(torch.from_numpy(feats), perm)


def test_distance_matrix_is_symmetric_l1():
    feats = torch.randn(30, 5, dtype=torch.float64)
    dist = distance_matrix(feats)
    expected = (feats[:, None] - feats[None]).abs().sum(-1).numpy()
    np.testing.assert_allclose(dist, expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(dist, dist.T) and not dist.diagonal().any()


def test_a_spent_time_limit_still_returns_a_valid_order():
    feats = clustered_features(120, 20, seed=4)
    dist = distance_matrix(feats)
    perm = channel_order(feats, time_limit=0.0)
    assert_permutation(perm, 120)
    assert length(dist, perm) <= length(dist, np.arange(120))


def test_time_limit_search_is_no_worse_than_the_default():
    feats = clustered_features(60, 20, seed=5)
    dist = distance_matrix(feats)
    default = length(dist, channel_order(feats))
    assert length(dist, channel_order(feats, time_limit=0.3)) <= default * (1 + 1e-9)


@pytest.mark.parametrize(
    "feats, message",
    [
        (torch.randn(5), r"shape \(n, d\)"),
        (torch.tensor([[0.0], [float("nan")], [1.0]]), "finite"),
    ],
    ids=["1d", "nan"],
)
def test_bad_input(feats, message):
    with pytest.raises(ValueError, match=message):
        channel_order(feats)


# --- wide groups: distances estimated from sampled columns (sketch_columns) ---------------


def _curve_features(n: int, d: int, noise: float, seed: int = 0) -> torch.Tensor:
    """Channels at random points of a smooth curve in R^d, plus noise: a short path exists."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=gen)
    freqs = torch.rand(8, d, generator=gen) * 6
    phase = torch.rand(8, d, generator=gen) * 6.28
    amp = torch.randn(8, d, generator=gen) / 8
    f = (amp * torch.sin(t[:, None, None] * freqs * 3.14 + phase)).sum(1)  # (n, d)
    return f + noise * f.std() * torch.randn(n, d, generator=gen)


def test_narrow_feature_matrices_are_not_sketched():
    feats = torch.randn(64, 32)
    assert ordering.sketch_columns(feats) is feats


def test_sketched_distances_are_unbiased_and_skip_constant_columns(monkeypatch):
    monkeypatch.setattr(ordering, "EXACT_WORK", 1.0)
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 4096, generator=gen) * torch.linspace(0, 2, 4096)  # column 0 constant
    feats[:, 1000:1010] = 5.0  # constant columns: no distance, never drawn
    exact = (feats[0] - feats[1]).abs().sum()
    estimates = []
    for seed in range(200):
        sketch = ordering.sketch_columns(feats, seed=seed)
        assert sketch.shape == (2, 256)
        estimates.append((sketch[0] - sketch[1]).abs().sum())
    assert torch.stack(estimates).mean() == pytest.approx(exact.item(), rel=0.02)
    monkeypatch.setattr(torch, "multinomial", _checked_multinomial(feats))
    ordering.sketch_columns(feats, seed=0)


def _checked_multinomial(feats):
    draw = torch.multinomial

    def checked(p, k, replacement, generator):
        cols = draw(p, k, replacement=replacement, generator=generator)
        assert not ((cols >= 1000) & (cols < 1010)).any() and not (cols == 0).any()
        return cols

    return checked


def test_a_sketched_order_is_nearly_as_short_as_the_exact_one(monkeypatch):
    feats = _curve_features(512, 2048, noise=0.3)
    exact = ordering.channel_order(feats)
    monkeypatch.setattr(ordering, "EXACT_WORK", 1e7)  # k = 256 of 2048 columns
    sketched = ordering.channel_order(feats)
    identity = ordering.path_length(feats, torch.arange(512))
    assert ordering.path_length(feats, exact) < 0.5 * identity
    assert ordering.path_length(feats, sketched) <= 1.03 * ordering.path_length(feats, exact)
    assert sorted(sketched.tolist()) == list(range(512))
