"""Channel ordering for INN conversion: a short open path through the channels.

Converting a trained layer into a weight function only works if the weights vary smoothly
along the channel coordinate. The channels are reordered to minimise the total variation
``Σ_i ‖F[σ(i)] − F[σ(i+1)]‖₁`` of the per-channel feature rows: an open-path travelling
salesman problem with channels as cities and L1 distances.

Groups of up to 12 channels are solved exactly by dynamic programming. For larger groups
the solver builds the full distance matrix once, starts from a greedy-edge path (shortest
edges first, on the k-nearest-neighbour graph) and improves it with vectorised 2-opt and
Or-opt moves over neighbour lists until no candidate move improves it. The path ends are
handled by a virtual city at distance zero from every channel, placed at both ends of the
path, so reversing a prefix or a suffix and moving a segment to an end go through the same
move tests as every other move. Given a time budget, the time left is spent on iterated
local search.

Exact L1 distances cost O(n² d): minutes on one core for a 4096-channel group with
13,000 features per channel (alexnet's and VGG's classifiers, ViT-B and ConvNeXt MLPs).
Past `EXACT_WORK` operations the distances are estimated from k = max(256, EXACT_WORK / n²)
columns sampled in proportion to their spread and reweighted (an unbiased estimate of
every distance), so the cost becomes O(n d + n² k) and the path search O(n²) memory and
time; smaller groups, every zoo model's among them, are ordered exactly as before.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

__all__ = ["EXACT_WORK", "channel_order", "distance_matrix", "path_length", "sketch_columns"]

# Moves must gain more than this fraction of the mean edge to count, so that float rounding
# can never make the search cycle.
_REL_EPS = 1e-9
_NUM_NEIGHBOURS = 10
_KICK_WINDOW = 50
# Up to this many channels the path is solved exactly by dynamic programming.
_EXACT_MAX_N = 12
_OR_SEGMENTS = (1, 2, 3)
# Up to n²·d = EXACT_WORK (about two seconds of cdist on one core) distances are exact.
EXACT_WORK = 2e9
_SKETCH_MIN_COLUMNS = 256


def _as_tensor(features: Tensor | np.ndarray) -> Tensor:
    feats = torch.as_tensor(features)
    if feats.ndim != 2:
        raise ValueError(f"features must have shape (n, d), got {tuple(feats.shape)}")
    if not feats.is_floating_point():
        feats = feats.float()
    return feats.detach().cpu()


def distance_matrix(features: Tensor | np.ndarray, *, chunk: int = 128) -> np.ndarray:
    """Pairwise L1 distances between the rows of ``features``.

    Computed with ``torch.cdist`` in float32, one block of rows at a time against the rows
    after it (the matrix is symmetric, so this does about half the work), and returned as
    float64.

    Args:
        features: Per-channel feature rows of shape ``(n, d)``.
        chunk: Rows per ``cdist`` call.

    Returns:
        Symmetric matrix of shape ``(n, n)`` with a zero diagonal.

    Example:
        >>> distance_matrix(torch.tensor([[0.0, 0.0], [1.0, 2.0]])).tolist()
        [[0.0, 3.0], [3.0, 0.0]]
    """
    feats = _as_tensor(features).float()  # (n, d)
    n = feats.shape[0]
    dist = np.empty((n, n), dtype=np.float64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = torch.cdist(feats[start:stop], feats[start:], p=1).numpy()  # (c, n - start)
        dist[start:stop, start:] = block
        dist[start:, start:stop] = block.T
    np.fill_diagonal(dist, 0.0)
    return dist


def path_length(features: Tensor | np.ndarray, perm: Tensor | np.ndarray) -> float:
    """Total variation ``Σ_i ‖F[perm[i]] − F[perm[i+1]]‖₁`` of an open path.

    Args:
        features: Per-channel feature rows of shape ``(n, d)``.
        perm: Order of the rows, shape ``(n,)``.

    Returns:
        The path length (float64 accumulation).

    Example:
        >>> f = torch.tensor([[0.0], [2.0], [1.0]])
        >>> path_length(f, torch.tensor([0, 2, 1]))
        2.0
    """
    feats = _as_tensor(features).double()  # (n, d)
    order = torch.as_tensor(perm, dtype=torch.long)
    rows = feats[order]  # (n, d)
    return float((rows[1:] - rows[:-1]).abs().sum())


def channel_order(
    features: Tensor | np.ndarray,
    *,
    seed: int = 0,
    time_limit: float | None = None,
) -> Tensor:
    """Order channels so that neighbouring feature rows are close in L1 (open-path TSP).

    Up to 12 channels the shortest path is found exactly (dynamic programming). Larger
    groups start from a greedy-edge path that is improved with 2-opt and Or-opt moves
    (segments of 1–3 channels) to a local optimum. The result is never longer than the given
    order or a
    nearest-neighbour path from a start chosen by ``seed``, and is deterministic unless
    ``time_limit`` is set. On 512 channels with 576 features it takes well under a second
    on two CPU cores and lands within 0.5% of LKH-3 (``benchmarks/integral_ordering.py``).
    Past ``n² d = EXACT_WORK`` the distances are estimated (`sketch_columns`) and the
    guarantee above holds for the estimates.

    Args:
        features: Per-channel feature rows of shape ``(n, d)``, e.g. a conv weight
            flattened to ``(C_out, C_in·kH·kW)``, or several tensors of a channel group
            concatenated along ``d``.
        seed: Seed of the nearest-neighbour start city and of the iterated local search.
        time_limit: Optional wall-clock budget in seconds, distance matrix included. Time
            left after the local search is spent on iterated local search (swap two nearby
            segments, re-optimise, keep the path if shorter), so the result may be shorter
            but then depends on the machine's speed. If the budget runs out earlier, the
            best path so far is returned.

    Returns:
        Permutation of shape ``(n,)`` (int64): ``features[perm]`` is the ordered rows. The
        path is oriented to start at the smaller of its two end indices.

    Raises:
        ValueError: If ``features`` is not 2-D or not finite.

    Example:
        >>> f = torch.tensor([[3.0], [0.0], [2.0], [1.0]])
        >>> channel_order(f).tolist()
        [0, 2, 3, 1]
    """
    feats = _as_tensor(features)
    if not torch.isfinite(feats).all():
        raise ValueError("features must be finite (no NaN or inf)")
    n = feats.shape[0]
    if n <= 2:
        return torch.arange(n, dtype=torch.long)
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    dist = distance_matrix(sketch_columns(feats, seed=seed))  # (n, n)
    best = _solve(dist, seed=seed, deadline=deadline)
    return torch.from_numpy(_canonical(best)).long()


def sketch_columns(features: Tensor, *, seed: int = 0) -> Tensor:
    """``features`` with few enough columns that exact L1 distances cost at most `EXACT_WORK`.

    Columns are drawn with replacement, with probability ``p_j`` proportional to their
    mean absolute deviation from the mean (constant columns never: they add nothing to
    any distance), and divided by ``k p_j``: the L1 distance between two reduced rows is
    then an unbiased estimate of the distance between the full rows, most precise where
    the distances are large. Returned unchanged when ``n² d <= EXACT_WORK``.

    Example:
        >>> sketch_columns(torch.randn(4096, 13312)).shape
        torch.Size([4096, 256])
    """
    n, d = features.shape
    if n * n * d <= EXACT_WORK:
        return features
    k = max(_SKETCH_MIN_COLUMNS, int(EXACT_WORK / n**2))
    if k >= d:
        return features
    feats = features.float()
    spread = (feats - feats.mean(0)).abs().mean(0)  # (d,)
    total = spread.sum()
    if not total > 0:
        return feats[:, :1]  # every channel equal: any order is as short
    p = spread / total
    gen = torch.Generator().manual_seed(seed)
    cols = torch.multinomial(p, k, replacement=True, generator=gen)  # (k,)
    return feats[:, cols] / (k * p[cols])


def _solve(dist: np.ndarray, *, seed: int, deadline: float | None) -> np.ndarray:
    n = dist.shape[0]
    if n <= _EXACT_MAX_N:
        return _held_karp(dist)
    ext = np.zeros((n + 1, n + 1), dtype=np.float64)  # city n is the virtual end city
    ext[:n, :n] = dist
    eps = _REL_EPS * float(dist.sum()) / (n * (n - 1))
    nbrs = _neighbours(dist, min(_NUM_NEIGHBOURS, n - 1))  # (n, k) nearest first
    rng = np.random.default_rng(seed)
    best = _local_search(ext, nbrs, _greedy_path(dist, nbrs), eps, deadline)
    best_len = _length(dist, best)
    # Guarantee: never longer than the given order or a nearest-neighbour path.
    for fallback in (np.arange(n), _nearest_neighbour_path(dist, int(rng.integers(n)))):
        if _length(dist, fallback) < best_len - eps:
            best = _local_search(ext, nbrs, fallback, eps, deadline)
            best_len = _length(dist, best)
    if deadline is not None:
        best = _perturb(ext, nbrs, best, eps, deadline, rng)
    return best


def _perturb(
    ext: np.ndarray,
    nbrs: np.ndarray,
    path: np.ndarray,
    eps: float,
    deadline: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Iterated local search: swap two nearby segments, re-optimise, keep improvements.

    Needs n > 3 (guaranteed: smaller groups are solved exactly).
    """
    n = path.shape[0]
    dist = ext[:n, :n]
    best_len = _length(dist, path)
    while time.perf_counter() < deadline:
        a = int(rng.integers(0, n - 2))
        b, c = np.sort(rng.choice(np.arange(a + 1, min(a + _KICK_WINDOW, n + 1)), 2, False))
        kicked = np.concatenate([path[:a], path[b:c], path[a:b], path[c:]])
        kicked = _local_search(ext, nbrs, kicked, eps, deadline)
        length = _length(dist, kicked)
        if length < best_len - eps:
            path, best_len = kicked, length
    return path


def _held_karp(dist: np.ndarray) -> np.ndarray:
    """Shortest open path by dynamic programming over subsets, O(2^n n^2)."""
    n = dist.shape[0]
    full = 1 << n
    best = np.full((full, n), np.inf)  # best[mask, j]: shortest path over mask ending at j
    parent = np.full((full, n), -1, dtype=np.int64)
    cities = np.arange(n)
    best[1 << cities, cities] = 0.0
    masks = np.arange(full)
    popcount = np.array([bin(m).count("1") for m in range(full)])
    for size in range(2, n + 1):
        layer = masks[popcount == size]  # (m,)
        for j in range(n):
            ending = layer[(layer >> j) & 1 == 1]
            cand = best[ending ^ (1 << j)] + dist[:, j][None, :]  # (m_j, n) via city i
            parent[ending, j] = np.argmin(cand, axis=1)
            best[ending, j] = cand[np.arange(ending.size), parent[ending, j]]
    mask, city = full - 1, int(np.argmin(best[full - 1]))
    path = [city]
    while mask != 1 << city:
        prev = int(parent[mask, city])
        mask, city = mask ^ (1 << city), prev
        path.append(city)
    return np.array(path[::-1], dtype=np.int64)


def _length(dist: np.ndarray, path: np.ndarray) -> float:
    path = np.asarray(path)
    return float(dist[path[:-1], path[1:]].sum())


def _canonical(path: np.ndarray) -> np.ndarray:
    """Orient a path so that it starts at its smaller end city (deterministic output)."""
    return path[::-1].copy() if path[-1] < path[0] else path


def _nearest_neighbour_path(dist: np.ndarray, start: int) -> np.ndarray:
    n = dist.shape[0]
    visited = np.zeros(n, dtype=bool)
    path = np.empty(n, dtype=np.int64)
    path[0], visited[start] = start, True
    for k in range(1, n):
        row = np.where(visited, np.inf, dist[path[k - 1]])
        path[k] = int(np.argmin(row))
        visited[path[k]] = True
    return path


def _neighbours(dist: np.ndarray, k: int) -> np.ndarray:
    """The k nearest other cities of every city, shape (n, k)."""
    n = dist.shape[0]
    off_diag = dist + np.diag(np.full(n, np.inf))
    nbrs = np.argpartition(off_diag, k - 1, axis=1)[:, :k]  # (n, k) unordered
    order = np.argsort(np.take_along_axis(off_diag, nbrs, 1), axis=1, kind="stable")
    return np.take_along_axis(nbrs, order, 1)  # nearest first


def _greedy_path(dist: np.ndarray, nbrs: np.ndarray) -> np.ndarray:
    """Greedy edge matching: add the shortest edges that keep a set of disjoint paths.

    Candidate edges are the neighbour-list edges; fragments left over are then joined
    greedily through their end cities.
    """
    n, k = nbrs.shape
    rows = np.repeat(np.arange(n), k)
    cols = nbrs.ravel()
    edges = np.unique(np.stack([np.minimum(rows, cols), np.maximum(rows, cols)], 1), axis=0)
    degree = np.zeros(n, dtype=np.int64)
    parent = np.arange(n)
    adj: list[list[int]] = [[] for _ in range(n)]

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    def add_edges(cand: np.ndarray, weights: np.ndarray, used: int) -> int:
        for a, b in cand[np.argsort(weights, kind="stable")].tolist():
            if used == n - 1:
                break
            if degree[a] < 2 and degree[b] < 2:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[ra] = rb
                    degree[a] += 1
                    degree[b] += 1
                    adj[a].append(b)
                    adj[b].append(a)
                    used += 1
        return used

    used = add_edges(edges, dist[edges[:, 0], edges[:, 1]], 0)
    if used < n - 1:
        # Join the remaining fragments through their end cities.
        ends = np.flatnonzero(degree < 2)
        ii, jj = np.triu_indices(len(ends), 1)
        cand = np.stack([ends[ii], ends[jj]], 1)
        add_edges(cand, dist[cand[:, 0], cand[:, 1]], used)
    start = int(np.flatnonzero(degree < 2)[0])
    path = [start]
    prev = -1
    while len(path) < n:
        cur = path[-1]
        nxt = adj[cur][0] if adj[cur][0] != prev else adj[cur][1]
        path.append(nxt)
        prev = cur
    return np.array(path, dtype=np.int64)


def _local_search(
    ext: np.ndarray, nbrs: np.ndarray, path: np.ndarray, eps: float, deadline: float | None
) -> np.ndarray:
    """Alternate 2-opt and Or-opt sweeps until neither improves the path."""
    while True:
        if deadline is not None and time.perf_counter() > deadline:
            return path
        path, moved_2opt = _two_opt(ext, nbrs, path, eps)
        path, moved_or = _or_opt(ext, nbrs, path, eps)
        if not (moved_2opt or moved_or):
            return path


def _padded(ext: np.ndarray, path: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Path with the virtual city at both ends, position of every real city, edge lengths."""
    virtual = ext.shape[0] - 1
    q = np.concatenate([[virtual], path, [virtual]])  # (n+2,)
    pos = np.empty(virtual, dtype=np.int64)
    pos[path] = np.arange(1, virtual + 1)
    edge = ext[q[:-1], q[1:]]  # (n+1,) length of edge (q_e, q_e+1)
    return q, pos, edge


def _two_opt(
    ext: np.ndarray, nbrs: np.ndarray, path: np.ndarray, eps: float
) -> tuple[np.ndarray, bool]:
    """2-opt sweeps: replace edges (q_i, q_i+1), (q_j, q_j+1) by (q_i, q_j), (q_i+1, q_j+1).

    In the padded path ``q`` the virtual city sits at both ends, so i = 0 reverses a prefix
    and j = n a suffix of the real path. An improving move creates at least one edge that is
    shorter than one it removes; candidates are the moves that create an edge to one of a
    city's nearest neighbours, plus every prefix and suffix reversal. Each sweep applies
    the improving candidates that touch disjoint stretches of the path, best first.
    """
    n = path.shape[0]
    moved = False
    while True:
        q, pos, edge = _padded(ext, path)
        p = pos[np.arange(n)].repeat(nbrs.shape[1])  # (n*k,) position of each city
        r = pos[nbrs.ravel()]  # (n*k,) position of its neighbour
        lo, hi = np.minimum(p, r), np.maximum(p, r)
        ends = np.arange(1, n)
        i = np.concatenate([lo, lo - 1, np.zeros(n - 1, np.int64), ends])
        j = np.concatenate([hi, hi - 1, ends + 1, np.full(n - 1, n)])
        keep = j >= i + 2
        i, j = i[keep], j[keep]
        gain = edge[i] + edge[j] - ext[q[i], q[j]] - ext[q[i + 1], q[j + 1]]
        good = _best_per_key(i, gain, eps)
        if good.size == 0:
            return path, moved
        taken = np.zeros(n + 1, dtype=bool)  # edges of the padded path already changed
        for a, b in zip(i[good].tolist(), j[good].tolist(), strict=True):
            if taken[a : b + 1].any():
                continue
            taken[a : b + 1] = True
            q[a + 1 : b + 1] = q[a + 1 : b + 1][::-1]
        path = q[1:-1].copy()
        moved = True


def _best_per_key(key: np.ndarray, gain: np.ndarray, eps: float) -> np.ndarray:
    """Indices of the best improving candidate for each key, best first."""
    good = np.flatnonzero(gain > eps)
    good = good[np.lexsort((-gain[good], key[good]))]  # by key, then best gain first
    first = np.ones(good.size, dtype=bool)
    first[1:] = key[good[1:]] != key[good[:-1]]
    good = good[first]
    return good[np.argsort(-gain[good], kind="stable")]


def _or_opt(
    ext: np.ndarray, nbrs: np.ndarray, path: np.ndarray, eps: float
) -> tuple[np.ndarray, bool]:
    """Or-opt sweeps: move a segment of 1–3 cities, possibly reversed, next to a neighbour.

    Candidate targets for a segment are the two edges at each nearest neighbour of either
    segment end, plus the two path ends. Each sweep takes the best move of every segment
    and applies, best first, those that remove and target edges no earlier move touched;
    such moves do not interact, so their gains add up.
    """
    n = path.shape[0]
    moved = False
    while True:
        q, pos, edge = _padded(ext, path)
        starts, segs, targets, gains, flips = [], [], [], [], []
        for seg in _OR_SEGMENTS:
            if seg >= n:
                break
            found = _or_candidates(ext, nbrs, q, pos, edge, seg, eps)
            for out, new in zip((starts, targets, gains, flips), found, strict=True):
                out.append(new)
            segs.append(np.full(found[0].size, seg))
        gain = np.concatenate(gains)
        if gain.size == 0:
            return path, moved
        start, seg_len, target, flip = map(np.concatenate, (starts, segs, targets, flips))
        taken = np.zeros(n + 1, dtype=bool)
        chosen = []
        for m in _best_per_key(start * 4 + seg_len, gain, eps).tolist():
            s, length, k = int(start[m]), int(seg_len[m]), int(target[m])
            # Moves that change disjoint sets of edges can be applied together.
            if taken[k] or taken[s - 1 : s + length].any():
                continue
            taken[s - 1 : s + length] = True
            taken[k] = True
            chosen.append((s, length, k, bool(flip[m])))
        path = _apply_or_moves(q, chosen)[1:-1].copy()
        moved = True


def _or_candidates(
    ext: np.ndarray,
    nbrs: np.ndarray,
    q: np.ndarray,
    pos: np.ndarray,
    edge: np.ndarray,
    seg: int,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Improving moves of the segments q[s : s+seg] (s = 1..n-seg+1): start, target, gain, flip.

    The target k means inserting between q_k and q_k+1.
    """
    n = q.shape[0] - 2
    k_nb = nbrs.shape[1]
    first = np.arange(1, n - seg + 2)  # (s,) first position of each segment
    last = first + seg - 1
    removal = edge[first - 1] + edge[last] - ext[q[first - 1], q[last + 1]]  # (s,)
    near = np.concatenate([pos[nbrs[q[first]]], pos[nbrs[q[last]]]], axis=1)  # (s, 2k)
    cols = [near, near - 1, np.zeros((first.size, 1), np.int64), np.full((first.size, 1), n)]
    target = np.concatenate(cols, axis=1)  # (s, 4k+2)
    seg_idx = np.arange(first.size).repeat(4 * k_nb + 2)
    k = target.ravel()
    f, lst = first[seg_idx], last[seg_idx]
    valid = (k < f - 1) | (k > lst)
    seg_idx, k, f, lst = seg_idx[valid], k[valid], f[valid], lst[valid]
    flat, size = ext.ravel(), ext.shape[0]
    qk, qk1, qf, ql = q[k] * size, q[k + 1], q[f], q[lst]
    fwd = flat[qk + qf] + flat[ql * size + qk1]  # q_k—first … last—q_k+1
    rev = flat[qk + ql] + flat[qf * size + qk1]  # q_k—last … first—q_k+1
    gain = removal[seg_idx] + edge[k] - np.minimum(fwd, rev)
    good = gain > eps
    return f[good], k[good], gain[good], (rev < fwd)[good]


def _apply_or_moves(q: np.ndarray, moves: list[tuple[int, int, int, bool]]) -> np.ndarray:
    """Apply non-interacting segment moves to the padded path in one pass."""
    # A moved segment takes sort keys between those of its target edge's two cities.
    key = np.arange(q.shape[0], dtype=np.float64)
    for s, seg, k, flip in moves:
        offsets = (np.arange(seg) + 1.0) / (seg + 1)
        key[s : s + seg] = k + (offsets[::-1] if flip else offsets)
    return q[np.argsort(key, kind="stable")]
