"""The pipeline for a Hugging Face sentence encoder: load it with real sentences, convert or
tune it, score a smaller copy by the cosine of its sentence embeddings to the full model's.

What ``anywidth prune|integrate|resample --hf-model PATH`` run; ``"minilm"`` names the
bundled all-MiniLM-L6-v2 (`anywidth.models.hf`, optional extra ``nlp``). The fidelity is
scored on the first `SCORE_SENTENCES` reference sentences (`anywidth.data.text`); partition
tuning distils on the next `TUNE_SENTENCES`, so the two never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anywidth.data.text import reference_sentences
from anywidth.graph import analyze_channels

__all__ = [
    "SCORE_SENTENCES",
    "TUNE_SENTENCES",
    "Encoder",
    "budget_fidelity",
    "convert_encoder",
    "embedding_cosine",
    "embeddings",
    "encoder_inn",
    "hf_source_of",
    "open_encoder",
    "tune_encoder",
    "tuning_batches",
    "width_rows",
]

SCORE_SENTENCES = 256  # fidelity is the mean cosine over these (the first ones)
TUNE_SENTENCES = 256  # partition tuning distils on the next ones


@dataclass
class Encoder:
    """An encoder with its tokenizer, an example input ``(ids, mask)`` padded to 64 tokens,
    the score batches (32 sentences each) and the source a saved file records."""

    model: nn.Module
    tokenizer: Any
    example: tuple[torch.Tensor, torch.Tensor]
    data: list[tuple[torch.Tensor, torch.Tensor]]
    source: str  # "minilm" or an absolute folder


def open_encoder(name: str | Path, batch: int = 32) -> Encoder:
    """Load ``name`` (a model folder or ``"minilm"``) with ``batch`` example sentences."""
    from anywidth.models.hf import encode, load_hf_model, minilm_path

    path = minilm_path() if name == "minilm" else Path(name)
    model, tokenizer = load_hf_model(path)
    sentences = reference_sentences(SCORE_SENTENCES)
    example = encode(tokenizer, sentences[:batch], fixed=True)
    data = [encode(tokenizer, sentences[i : i + 32], fixed=True)
            for i in range(0, SCORE_SENTENCES, 32)]  # fmt: skip
    source = "minilm" if name == "minilm" else str(Path(name).resolve())
    return Encoder(model, tokenizer, example, data, source)


@torch.no_grad()
def embeddings(model: nn.Module, data: list) -> torch.Tensor:
    """The sentence embeddings ``(N, hidden)`` of ``model`` (eval mode) on ``data``."""
    from anywidth.models.hf import sentence_embeddings

    return torch.cat([sentence_embeddings(model.eval(), ids, mask) for ids, mask in data])


def embedding_cosine(small: nn.Module, full: nn.Module | torch.Tensor, data: list) -> float:
    """The mean cosine of ``small``'s sentence embeddings to ``full``'s (or to embeddings
    given as a tensor) on the score batches."""
    reference = full if isinstance(full, torch.Tensor) else embeddings(full, data)
    return (embeddings(small, data) * reference).sum(-1).mean().item()


def width_rows(model: nn.Module, example) -> list[list[str]]:
    """``[group, "h heads × d" or "n channels"]`` of every resizable channel group."""
    rows = []
    for g in analyze_channels(model, example):
        if g.fixed:
            continue
        block = max(m.block for m in g.members)
        rows.append([g.name, f"{g.size} heads × {block}" if block > 1 else f"{g.size} channels"])
    return rows


def convert_encoder(model: nn.Module, example):
    """The encoder's INN (`anywidth.integral.to_integral`, channel ordering capped at 5 s)."""
    from anywidth.integral import IntegralConfig, to_integral

    return to_integral(model, example, IntegralConfig(order_time_limit=5.0))


def encoder_inn(encoder: Encoder, path: str | Path | None = None):
    """The INN saved at ``path`` (with the encoder as its model), else converted now."""
    from anywidth.integral import load_integral

    if path is not None:
        return load_integral(path, model=encoder.model)
    return convert_encoder(encoder.model, encoder.example)


def budget_fidelity(inn, encoder: Encoder, budgets) -> list[tuple[float, nn.Module, float]]:
    """``(MAC budget, resampled model, embedding cosine to the full model)`` per budget."""
    reference = embeddings(encoder.model, encoder.data)
    rows = []
    for target in budgets:
        small = inn.resample(target_macs=target)
        rows.append((target, small, embedding_cosine(small, reference, encoder.data)))
    return rows


def tuning_batches(tokenizer, batch: int) -> list[tuple]:
    """``(ids, mask)`` batches of the sentences after the ones the fidelity is scored on."""
    from anywidth.models.hf import encode

    sentences = reference_sentences(SCORE_SENTENCES + TUNE_SENTENCES)[SCORE_SENTENCES:]
    return [encode(tokenizer, sentences[i : i + batch], fixed=True)
            for i in range(0, len(sentences) - batch + 1, batch)]  # fmt: skip


def tune_encoder(inn, plan: dict, steps: int, encoder: Encoder):
    """`anywidth.models.hf.tune_hf_partition` on sentences apart from the scored ones."""
    from anywidth.models.hf import tune_hf_partition

    batches = tuning_batches(encoder.tokenizer, encoder.example[0].shape[0])
    return tune_hf_partition(inn, plan, batches, steps=steps)


def hf_source_of(path: str | Path) -> str | None:
    """The encoder an INN file was converted from (``"minilm"`` or a folder), or None when
    the file holds no encoder INN."""
    from anywidth.train.checkpoint import read_checkpoint

    return (read_checkpoint(path).meta.get("metrics") or {}).get("hf_source")
