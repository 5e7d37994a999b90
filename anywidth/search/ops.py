"""The three small pieces of TAS arithmetic: CWI, Gumbel-softmax picks, the cost loss."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["cwi", "gumbel_softmax", "pick", "cost_loss"]


def cwi(x: torch.Tensor, size: int, dim: int = 1) -> torch.Tensor:
    """Channel-wise interpolation: resize dimension ``dim`` of ``x`` to ``size`` channels.

    ``B[i] = mean(A[s:e])`` with ``s = ⌊i·C_in/size⌋`` and ``e = ⌈(i+1)·C_in/size⌉``:
    adaptive average pooling along the channel axis. The identity when the sizes agree.

    Example:
        >>> cwi(torch.arange(4.0).view(1, 4), 2)
        tensor([[0.5000, 2.5000]])
    """
    length = x.shape[dim]
    if length == size:
        return x
    moved = x.movedim(dim, -1)  # (..., C_in)
    pooled = F.adaptive_avg_pool1d(moved.reshape(-1, 1, length), size)  # (N, 1, size)
    return pooled.reshape(*moved.shape[:-1], size).movedim(-1, dim)


def gumbel_softmax(
    logits: torch.Tensor, tau: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``softmax((log softmax(logits) + o) / tau)`` with Gumbel noise ``o = −log(−log u)``.

    Sums to 1; becomes one-hot (at the perturbed argmax) as ``tau → 0``.
    """
    u = torch.rand(logits.shape, generator=generator).to(logits.device)
    tiny = torch.finfo(logits.dtype).tiny
    noise = -torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-7)))
    return torch.softmax((torch.log_softmax(logits, -1) + noise) / tau, -1)


def pick(
    logits: torch.Tensor, tau: float, num: int = 2, generator: torch.Generator | None = None
) -> tuple[list[int], torch.Tensor]:
    """Draw ``num`` distinct candidates and their mixing weights, as the reference does.

    The candidates are sampled without replacement from the Gumbel-softmax probabilities;
    their weights are those probabilities renormalised over the picked ones (a softmax of
    the perturbed logits), so they sum to 1 and carry gradients to ``logits``.

    Returns:
        ``(indices, weights)``; fewer than ``num`` when there are fewer candidates.
    """
    num = min(num, logits.numel())
    probs = gumbel_softmax(logits, tau, generator)
    with torch.no_grad():
        weights = (probs.detach() + 1e-7).cpu()
        chosen = torch.multinomial(weights, num, replacement=False, generator=generator)
    index = chosen.to(logits.device)
    picked = probs[index]
    return chosen.tolist(), picked / picked.sum()


def cost_loss(expected: torch.Tensor, current: float, target: float, tolerance: float):
    """The TAS cost loss: push the expected cost down, up, or leave it, by the argmax's cost.

    ``log E`` when the argmax architecture's cost ``current`` is above ``target +
    tolerance``, ``−log E`` when below ``target − tolerance``, 0 inside the band. All
    three in the same unit (fractions of the original MACs in `search_shape`).

    Example:
        >>> cost_loss(torch.tensor(0.7), current=0.8, target=0.5, tolerance=0.05)
        tensor(-0.3567)
    """
    if current > target + tolerance:
        return torch.log(expected)
    if current < target - tolerance:
        return -torch.log(expected)
    return expected * 0.0
