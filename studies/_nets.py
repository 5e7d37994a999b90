"""The random networks of the rank study and how their output rank is counted."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "elu": F.elu,
    "silu": F.silu,
    "gelu": F.gelu,
}

KINDS: dict[str, str] = {
    "conv1x1": "1x1 conv (a matrix): d_in -> d_out",
    "conv3x3": "3x3 conv: d_in -> d_out",
    "ib_conv3x3": "1x1 expand d_in -> d_out, 3x3 conv d_out -> d_out",
    "ib_dw3x3": "1x1 expand d_in -> d_out, depthwise 3x3",
}

_BN_EPS = 1e-5


def batch_norm(y: torch.Tensor) -> torch.Tensor:
    """Training-mode BatchNorm without affine parameters: per channel over batch and space."""
    mean = y.mean(dim=(0, 2, 3), keepdim=True)
    var = y.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (y - mean) / torch.sqrt(var + _BN_EPS)  # (B, C, H, W)


def numerical_rank(matrix: torch.Tensor, rtol: float | None) -> int:
    """Singular values above ``rtol * sigma_max`` (default: ``max(shape) * eps(dtype)``)."""
    if rtol is None:
        return int(torch.linalg.matrix_rank(matrix))
    return int(torch.linalg.matrix_rank(matrix, rtol=rtol))


def channel_matrix(y: torch.Tensor) -> torch.Tensor:
    """``(B, C, *spatial)`` or ``(B, C)`` as ``(C, B * prod(spatial))``: one row per channel."""
    return y.movedim(1, 0).reshape(y.shape[1], -1)


class RandomNet:
    """One random network of a study kind: weights drawn once, any activation applied.

    Args:
        kind: a key of `KINDS`.
        d_in: input channels.
        d_out: output channels.
        gen: the random generator.
        dtype: float32 or float64.
        norm: BatchNorm (training mode, no affine) after every conv.
    """

    def __init__(
        self, kind: str, d_in: int, d_out: int, gen, dtype: torch.dtype, norm: bool = True
    ) -> None:
        self.kind, self.d_out, self.norm = kind, d_out, norm

        def weight(out: int, inp: int, k: int) -> torch.Tensor:
            w = torch.randn(out, inp, k, k, generator=gen, dtype=torch.float64)
            return (w / (inp * k * k) ** 0.5).to(dtype)  # He-style scale

        first_k = 3 if kind == "conv3x3" else 1
        self.w1 = weight(d_out, d_in, first_k)
        self.w2 = None
        if kind == "ib_conv3x3":
            self.w2 = weight(d_out, d_out, 3)
        elif kind == "ib_dw3x3":
            self.w2 = weight(d_out, 1, 3)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's output (after BN): what every activation is applied to."""
        return self._norm(F.conv2d(x, self.w1, padding=self.w1.shape[-1] // 2))

    def _norm(self, y: torch.Tensor) -> torch.Tensor:
        return batch_norm(y) if self.norm else y

    def output(self, pre: torch.Tensor, act: Callable) -> torch.Tensor:
        """The network's output for ``act`` given `pre_activation`."""
        y = act(pre)  # (B, d_out, H, W)
        if self.w2 is not None:
            groups = self.d_out if self.kind == "ib_dw3x3" else 1
            y = act(self._norm(F.conv2d(y, self.w2, padding=1, groups=groups)))
        return y
