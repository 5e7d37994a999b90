"""One layer's low-rank factorisations: k-slice SVDs, exact errors, sizes, and the modules.

A conv weight (f, c, κ1, κ2) is folded into an f × (c·κ1κ2) matrix W and cut into k equal
slices along the input channels (k divides c), each an f × (c/k)·κ1κ2 matrix W_i. Keeping
rank j of every slice gives Ŵ = [U_i,j S_i,j V_i,jᵀ]_i, which runs as a grouped conv
(c → k·j channels, groups k, the original kernel, stride, padding and dilation, no bias)
followed by a 1×1 conv (k·j → f, the original bias): j·(k·f + c·κ1κ2) weights instead of
f·c·κ1κ2. A linear layer is the case κ1 = κ2 = 1.

The error is exact: Ŵ − W = [E_1, ..., E_k] with E_i = U_i,>j S_i,>j V_i,>jᵀ, so
‖Ŵ − W‖₂² = λ_max(Σ_i U_i,>j S²_i,>j U_i,>jᵀ), an f × f matrix; relative to ‖W‖₂.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "LayerInfo",
    "SliceSVD",
    "LowRankConv2d",
    "LowRankLinear",
    "factored_module",
    "kernel_size",
    "load_factors",
]

# Damping of a data-aware factorisation: Σ + DAMPING·mean(diag Σ)·I keeps directions the
# calibration data never excites (a constant pixel, a dead channel) from being dropped for free.
DAMPING = 1e-3
# Errors of every rank are computed in one batched eigen-solve when the stack of f × f
# matrices holds at most this many numbers; larger layers compute ranks on demand.
_BATCHED_LIMIT = 2_000_000
# Error matrices with at most this many rows or columns get exact norms (one eigen-solve).
_EXACT_LIMIT = 1024
# ARPACK's tolerance on the residual of the top eigenpair: the eigenvalue converges far
# faster than its vector (errors of 1e-8 relative at 1e-4 on 3024-wide random layers, with
# about 30% fewer products than at 1e-6).
_LANCZOS_TOLERANCE = 1e-4
# Slices at least this wide on their short side (and 3x as long) are decomposed through
# their Gram matrix (`_svd`).
_GRAM_SVD_MIN = 512


@dataclass
class LayerInfo:
    """A layer that may be factored, with what sizing it needs."""

    name: str
    module: nn.Module
    out_features: int  # f
    in_features: int  # c
    kernel: int  # κ1·κ2 (1 for a linear)
    positions: int  # output positions per example input (H_out·W_out·batch; tokens)
    bias: int  # 1 if it has a bias

    @property
    def dense_params(self) -> int:
        return self.out_features * self.in_features * self.kernel + self.bias * self.out_features

    @property
    def dense_macs(self) -> int:
        return self.out_features * self.in_features * self.kernel * self.positions

    def per_rank(self, k: int) -> int:
        """Weights one unit of rank costs with k slices: k·f + c·κ1κ2."""
        return k * self.out_features + self.in_features * self.kernel

    def params(self, k: int, j: int) -> int:
        return j * self.per_rank(k) + self.bias * self.out_features

    def macs(self, k: int, j: int) -> int:
        return j * self.per_rank(k) * self.positions

    def max_rank(self, k: int) -> int:
        """The rank at which every slice is exact: min(f, c/k·κ1κ2)."""
        return min(self.out_features, self.in_features // k * self.kernel)

    def slice_counts(self, max_k: int) -> list[int]:
        """The admissible k: divisors of c up to ``max_k`` for a conv; 1 for a linear."""
        if not isinstance(self.module, nn.Conv2d):
            return [1]
        return [k for k in range(1, max_k + 1) if self.in_features % k == 0]


@dataclass
class SliceSVD:
    """The SVDs of one layer's k slices and the exact relative error of every rank."""

    k: int
    u: list[torch.Tensor]  # per slice, (f, r)
    s: list[torch.Tensor]  # per slice, (r,)
    vh: list[torch.Tensor]  # per slice, (r, (c/k)·κ1κ2)
    norm: float  # ‖W‖₂
    _errors: dict[int, float] = field(default_factory=dict)
    # minus the upper and lower error bounds per rank (ascending), and the exact errors
    # computed so far: their ranks in order and minus their errors (ascending too)
    _bounds: tuple[list[float], list[float]] | tuple = ()
    _known_ranks: list[int] = field(default_factory=list)
    _known_minus_errors: list[float] = field(default_factory=list)
    # the Lanczos path's columns U_i S_i in float64 (made once) and its last top vector,
    # where the next rank's solve starts: the error matrices of nearby ranks share it
    _scaled: list | None = None
    _start: object = None

    @classmethod
    def of(
        cls,
        weight: torch.Tensor,
        k: int,
        norm: float | None = None,
        cov: torch.Tensor | None = None,
    ) -> SliceSVD:
        """The k-slice SVD of a (f, c, ...) weight, in its own precision (float64 weights
        stay float64; anything else is factored in float32, exact to about 1e-6).

        ``norm`` is the error's reference (‖W‖₂, or ‖W·L‖₂ with ``cov``) if the caller knows
        it (the top singular value of the k = 1 SVD); otherwise it is computed.

        ``cov`` (d × d, d = c·κ1κ2, from `input_covariances`) makes the factorisation
        data-aware: each slice i is factored as the SVD of W_i·L_i, Σ_ii = L_i L_iᵀ (damped
        by `DAMPING` × its mean diagonal), and mapped back by L_i⁻¹, so the errors are
        relative errors of the layer's *output* on the calibration data — exact for k = 1;
        for k > 1 the correlations between slices' inputs are left out of the error.
        """
        f, c = weight.shape[:2]
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        w = weight.detach().to(dtype).reshape(f, c, -1)  # (f, c, κ1κ2)
        slices = w.reshape(f, k, c // k, -1).transpose(0, 1).reshape(k, f, -1)  # (k, f, ·)
        if cov is None:
            u, s, vh = _svd(slices)
        else:
            u, s, vh = _whitened_svd(slices, cov)
        if norm is None and k == 1:
            norm = float(s[0, 0])
        elif norm is None and cov is None:
            norm = float(torch.linalg.matrix_norm(w.reshape(f, -1), ord=2))
        elif norm is None:
            norm = float(_whitened_svd(w.reshape(1, f, -1), cov)[1][0, 0])
        svd = cls(k, list(u), list(s), list(vh), norm)
        rank = s.shape[1]
        if rank * f * f <= _BATCHED_LIMIT:
            svd._errors = dict(enumerate(svd._all_errors(), start=0))
        return svd

    def _all_errors(self) -> list[float]:
        """Relative errors of ranks 0..r, from one batched eigen-solve."""
        # (r, f, f): what each rank position adds to Σ_i E_i E_iᵀ once it is dropped
        terms = sum(
            torch.einsum("ar,br,r->rab", u, u, s.square())
            for u, s in zip(self.u, self.s, strict=True)
        )
        tails = terms.flip(0).cumsum(0).flip(0)  # tails[j] = Σ_{r >= j}
        top = torch.linalg.eigvalsh(tails)[:, -1].clamp_min(0).sqrt()
        scale = self.norm if self.norm > 0 else 1.0
        return [float(e) / scale for e in top] + [0.0]

    def error(self, j: int) -> float:
        """‖Ŵ − W‖₂ / ‖W‖₂ at rank j (0 for j at or above the slices' rank)."""
        rank = self.s[0].shape[0]
        if j >= rank:
            return 0.0
        if j not in self._errors:
            self._errors[j] = self._exact_error(j)
            at = bisect.bisect_left(self._known_ranks, j)
            self._known_ranks.insert(at, j)
            self._known_minus_errors.insert(at, -self._errors[j])
        return self._errors[j]

    def _exact_error(self, j: int) -> float:
        if self.norm <= 0:
            return 0.0
        if self.k == 1:
            return float(self.s[0][j]) / self.norm
        # Ŵ − W = [E_1 … E_k] with E_i = U_i,>j S_i,>j V_i,>jᵀ, so ‖Ŵ − W‖₂ is the top
        # singular value of A = [U_1,>j S_1,>j … U_k,>j S_k,>j] (f, k·(r − j))
        f, columns = self.u[0].shape[0], self.k * (self.s[0].shape[0] - j)
        if min(f, columns) <= _EXACT_LIMIT:
            tail = torch.cat([u[:, j:] * s[j:] for u, s in zip(self.u, self.s, strict=True)], 1)
            return top_singular_value(tail) / self.norm
        if self._scaled is None:
            pairs = zip(self.u, self.s, strict=True)
            self._scaled = [(u * s).to(torch.float64).numpy() for u, s in pairs]
        top, self._start = lanczos_norm([b[:, j:] for b in self._scaled], self._start)
        return top / self.norm

    def rank_for(self, epsilon: float, max_rank: int) -> int:
        """The smallest rank in 1..max_rank whose error is at most ``epsilon``.

        Errors do not grow with the rank, so the bisection over exact errors only runs
        between the ranks already known to err more and less than ``epsilon``, and those
        that two bounds allow: the error at rank j lies between max_i σ_i,j and
        (Σ_i σ_i,j²)^½ (σ_i,j: slice i's j-th singular value over ‖W‖₂).
        """
        rank = self.s[0].shape[0]
        if not self._bounds and self.norm > 0:
            sigma = torch.stack(self.s) / self.norm  # (k, r)
            upper, lower = sigma.square().sum(0).sqrt(), sigma.amax(0)
            self._bounds = ((-upper).tolist(), (-lower).tolist())
        lo, hi = 1, max_rank
        if self._bounds:
            minus_upper, minus_lower = self._bounds  # ascending in j
            hi = min(hi, bisect.bisect_left(minus_upper, -epsilon, 1))  # first upper <= eps
            lo = max(lo, bisect.bisect_left(minus_lower, -epsilon, 1))  # first lower <= eps
        known = bisect.bisect_left(self._known_minus_errors, -epsilon)  # first known <= eps
        if known < len(self._known_ranks):
            hi = min(hi, self._known_ranks[known])
        if known > 0:
            lo = max(lo, self._known_ranks[known - 1] + 1)
        lo, hi = min(lo, max_rank, rank), max(min(hi, max_rank, rank), 1)
        lo = min(lo, hi)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.error(mid) <= epsilon:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def factors(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(first, second): first (k·j, (c/k)·κ1κ2) rows of Vᵀ per slice, second (f, k·j)
        columns of U S per slice, so second @ blockdiag(first) = Ŵ, with each rank's
        factor pair scaled to equal norms (√σ each for a plain SVD). Balanced factors
        matter for fine-tuning: a data-aware Vᵀ L⁻¹ has rows of very different norms, and
        unbalanced pairs made SGD diverge."""
        firsts, seconds = [], []
        for u, s, vh in zip(self.u, self.s, self.vh, strict=True):
            rows = vh[:j]
            norms = rows.norm(dim=1).clamp_min(1e-30)  # 1 for a plain SVD
            root = (s[:j] * norms).sqrt()  # each factor of rank r gets norm √(σ_r‖v_r‖)
            firsts.append(rows * (root / norms)[:, None])
            seconds.append(u[:, :j] * root[None, :])
        return torch.cat(firsts, 0), torch.cat(seconds, 1)


def top_singular_value(a: torch.Tensor) -> float:
    """‖A‖₂ of an (f, m) matrix.

    Exactly, by one eigen-solve of the smaller Gram matrix (A Aᵀ or Aᵀ A: min(f, m)² entries)
    when min(f, m) is at most `_EXACT_LIMIT`; else by Lanczos iterations (`lanczos_norm`)
    on x ↦ A (Aᵀ x), O(f·m) each, instead of an O(min(f, m)³) solve:
    the ALDS errors of AlexNet's 4096 × 9216 layer in seconds rather than minutes.
    """
    f, m = a.shape
    if min(f, m) <= _EXACT_LIMIT:
        gram = a @ a.T if f <= m else a.T @ a
        return float(torch.linalg.eigvalsh(gram)[-1].clamp_min(0).sqrt())
    return lanczos_norm([a.detach().to(torch.float64).numpy()])[0]


def lanczos_norm(blocks: list, start=None) -> tuple[float, object]:
    """‖[B_1 … B_k]‖₂ of column blocks (float64 numpy arrays of f rows each, never joined)
    by Lanczos iterations (ARPACK, `_LANCZOS_TOLERANCE`) on x ↦ Σ_i B_i (B_iᵀ x).

    ``start`` is where the iterations begin: the top vector of a nearby matrix (the error of
    the previous rank) converges in a few steps; without one, the row sums (a fixed start:
    the same answer on every run). Returns the norm and its top left singular vector.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    f = blocks[0].shape[0]

    def product(x):
        return sum(b @ (b.T @ x) for b in blocks)

    operator = LinearOperator((f, f), matvec=product, dtype="float64")
    v0 = start if start is not None else sum(b.sum(axis=1) for b in blocks)
    values, vectors = eigsh(operator, k=1, which="LA", tol=_LANCZOS_TOLERANCE, v0=v0)
    return math.sqrt(max(float(values[0]), 0.0)), vectors[:, 0]


def _svd(slices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The thin SVD of each (f, d) slice of a (k, f, d) stack.

    Slices at least `_GRAM_SVD_MIN` on their short side and three times as long on the other
    (VGG's 4096 × 25088 classifier, 512 × 4608 convs) are decomposed through the Gram matrix
    of the short side: one product, an eigen-solve in float64, one more product — several
    times faster than LAPACK's SVD on such shapes (1024 × 6144: 3.7 s -> 0.8 s, one
    thread). Singular values below √ε of the largest are computed to an absolute precision
    of about ε·σ₁ (ε of the slices' dtype) — far below any error a rank is chosen for; their
    vectors are set to zero below ε·σ₁, where the Gram matrix holds no direction.
    """
    _, f, d = slices.shape
    short, long = min(f, d), max(f, d)
    if short < _GRAM_SVD_MIN or long < 3 * short:
        return torch.linalg.svd(slices, full_matrices=False)
    x = slices if f <= d else slices.transpose(1, 2)  # (k, short, long)
    values, vectors = torch.linalg.eigh((x @ x.transpose(1, 2)).to(torch.float64))
    s = values.flip(-1).clamp_min(0).sqrt()  # descending
    left = vectors.flip(-1).to(x.dtype)  # (k, short, short)
    alive = s > torch.finfo(x.dtype).eps * s[:, :1]
    s = torch.where(alive, s, torch.zeros_like(s)).to(x.dtype)
    right = (left.transpose(1, 2) @ x) / torch.where(alive, s, torch.ones_like(s))[..., None]
    right = right * alive[..., None]  # (k, short, long): rows of Vᵀ (of Uᵀ when f > d)
    if f <= d:
        return left, s, right
    return right.transpose(1, 2), s, left.transpose(1, 2)


def _whitened_svd(
    slices: torch.Tensor, cov: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SVD of every slice W_i·L_i with the right factor mapped back: W_i = U S (Vᵀ L_i⁻¹).

    slices (k, f, d/k); cov (d, d), the input covariance of the unsliced layer. Returns
    (U, S, Vᵀ L_i⁻¹), so truncating at rank j gives the output-optimal slice."""
    k, _, width = slices.shape
    blocks = torch.stack(
        [cov[i * width : (i + 1) * width, i * width : (i + 1) * width] for i in range(k)]
    )
    scale = blocks.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)  # (k,)
    eye = torch.eye(width, dtype=cov.dtype)
    chol = torch.linalg.cholesky(blocks + DAMPING * scale[:, None, None] * eye)  # (k, ·, ·)
    u, s, vh = torch.linalg.svd(slices.to(cov.dtype) @ chol, full_matrices=False)
    vh = torch.linalg.solve_triangular(chol, vh, upper=False, left=False)  # Vᵀ L⁻¹
    dtype = slices.dtype
    return u.to(dtype), s.to(dtype), vh.to(dtype)


class LowRankConv2d(nn.Module):
    """A conv factored into a grouped conv (c → k·j, the original kernel) and a 1×1 conv.

    Attributes:
        factor: ``nn.Conv2d(c, k·j, kernel, groups=k, bias=False)`` with the original stride,
            padding, dilation and padding mode.
        project: ``nn.Conv2d(k·j, f, 1)`` carrying the original bias.
    """

    def __init__(self, conv: nn.Conv2d, k: int, j: int) -> None:
        super().__init__()
        self.slices, self.rank = k, j
        self.factor = nn.Conv2d(
            conv.in_channels, k * j, conv.kernel_size, stride=conv.stride,
            padding=conv.padding, dilation=conv.dilation, groups=k, bias=False,
            padding_mode=conv.padding_mode,
        )  # fmt: skip
        self.project = nn.Conv2d(k * j, conv.out_channels, 1, bias=conv.bias is not None)

        # what code around a conv reads of it (davit pads by ``conv.kernel_size``)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation, self.groups = conv.padding, conv.dilation, conv.groups

    def extra_repr(self) -> str:
        return f"slices={self.slices}, rank={self.rank}"

    @property
    def weight(self) -> torch.Tensor:
        """The dense ``(f, c, κ1, κ2)`` weight the two factors multiply to, computed on each
        read — for code that reads a conv's weight (HF ViT and edgenext read its dtype and
        device); the forward never uses it."""
        k, j = self.slices, self.rank
        first = self.factor.weight.reshape(k, j, -1)  # (k, j, (c/k)·κ)
        second = self.project.weight.reshape(-1, k, j)  # (f, k, j)
        dense = torch.einsum("fkj,kjm->fkm", second, first)
        return dense.reshape(self.out_channels, self.in_channels, *self.kernel_size)

    @property
    def bias(self) -> torch.Tensor | None:
        return self.project.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.factor(x))  # (B, k·j, H', W') -> (B, f, H', W')


class LowRankLinear(nn.Module):
    """A linear layer factored into c → j and j → f linears (one slice: plain SVD)."""

    def __init__(self, linear: nn.Linear, k: int, j: int) -> None:
        super().__init__()
        if k != 1:
            raise ValueError(f"a Linear is factored with one slice (k=1), got k={k}")
        self.slices, self.rank = k, j
        self.factor = nn.Linear(linear.in_features, k * j, bias=False)
        self.project = nn.Linear(k * j, linear.out_features, bias=linear.bias is not None)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def extra_repr(self) -> str:
        return f"slices={self.slices}, rank={self.rank}"

    @property
    def weight(self) -> torch.Tensor:
        """The dense ``(f, c)`` weight the two factors multiply to, computed on each read."""
        return self.project.weight @ self.factor.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.project.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.factor(x))


def factored_module(layer: nn.Module, k: int, j: int) -> nn.Module:
    """An empty factored module of the right shapes (weights are set by `load_factors`)."""
    if isinstance(layer, nn.Conv2d):
        return LowRankConv2d(layer, k, j)
    return LowRankLinear(layer, k, j)


@torch.no_grad()
def load_factors(module: nn.Module, layer: nn.Module, svd: SliceSVD, j: int) -> None:
    """Write the rank-j factors of ``layer`` (and its bias) into a factored ``module``."""
    first, second = svd.factors(j)  # (k·j, (c/k)·κ), (f, k·j)
    dtype = layer.weight.dtype
    module.factor.weight.copy_(first.reshape(module.factor.weight.shape).to(dtype))
    module.project.weight.copy_(second.reshape(module.project.weight.shape).to(dtype))
    if layer.bias is not None:
        module.project.bias.copy_(layer.bias)


def kernel_size(layer: nn.Module) -> int:
    return math.prod(layer.kernel_size) if isinstance(layer, nn.Conv2d) else 1
