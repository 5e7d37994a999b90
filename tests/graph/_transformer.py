"""A tiny BERT-style encoder (no download): embeddings, attention, MLP, LayerNorm, a head.

Every transformer rule of the channel analysis is exercised by one of its variants:
``attention="sdpa"`` calls ``F.scaled_dot_product_attention``, ``"explicit"`` writes
``softmax(Q Kᵀ / √d + mask) V``; ``write_heads`` puts the head count in the ``view`` (a graph
constant `cut` rewrites) instead of ``-1``; ``untraceable`` assigns into a tensor in
``forward``, which torch.fx cannot trace, so the model goes through ``torch.export``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, attention: str, write_heads: bool) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.attention, self.write_heads = attention, write_heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[0], x.shape[1]  # x: (B, T, hidden); bias: (B, 1, 1, T) additive
        heads = self.heads if self.write_heads else -1
        q = self.query(x).view(b, t, heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.key(x).view(b, t, heads, self.head_dim).transpose(1, 2)
        v = self.value(x).view(b, t, heads, self.head_dim).transpose(1, 2)
        if self.attention == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            scores = q @ k.transpose(-2, -1) * self.head_dim**-0.5 + bias  # (B, H, T, T)
            y = torch.matmul(scores.softmax(dim=-1), v)
        return self.out(y.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp: int, act: str, **attn) -> None:
        super().__init__()
        self.attn = Attention(hidden, heads, **attn)
        self.ln1 = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, mlp)
        self.act = nn.GELU() if act == "gelu" else nn.SiLU()
        self.fc2 = nn.Linear(mlp, hidden)
        self.ln2 = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attn(x, bias))
        return self.ln2(x + self.fc2(self.act(self.fc1(x))))


class TinyBert(nn.Module):
    """``forward(ids, mask) -> logits`` of a masked-mean pooled encoder (or its hidden
    states with ``head=False``, which makes the hidden size an output, fixed)."""

    def __init__(
        self,
        hidden: int = 16,
        heads: int = 4,
        mlp: int = 24,
        layers: int = 2,
        vocab: int = 30,
        attention: str = "sdpa",
        act: str = "gelu",
        write_heads: bool = False,
        untraceable: bool = False,
        head: bool = True,
    ) -> None:
        super().__init__()
        self.untraceable = untraceable
        self.words = nn.Embedding(vocab, hidden)
        self.positions = nn.Embedding(32, hidden)
        self.ln = nn.LayerNorm(hidden)
        attn = {"attention": attention, "write_heads": write_heads}
        self.blocks = nn.ModuleList(Block(hidden, heads, mlp, act, **attn) for _ in range(layers))
        self.classifier = nn.Linear(hidden, 3) if head else None

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.ln(self.words(ids) + self.positions(positions))  # (B, T, hidden)
        keep = mask[:, None, None, :].to(x.dtype)  # (B, 1, 1, T)
        if self.untraceable:
            bias = torch.zeros_like(keep)
            bias[keep == 0] = -1e4  # item assignment: symbolic tracing fails here
        else:
            bias = (1.0 - keep) * -1e4
        for block in self.blocks:
            x = block(x, bias)
        if self.classifier is None:
            return x
        weights = mask[..., None].to(x.dtype)  # (B, T, 1)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1)  # (B, hidden)
        return self.classifier(pooled)


def tiny_inputs(batch: int = 2, tokens: int = 7, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Token ids and a padding mask (the last sequence ends three tokens early)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 30, (batch, tokens), generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.long)
    mask[-1, tokens - 3 :] = 0
    return ids, mask
