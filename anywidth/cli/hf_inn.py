"""``--hf-model PATH`` for `integrate` and `resample`: an encoder's INN (pipeline in
`anywidth.compression.encoder`), saved with the source it was converted from, then sampled
at a budget after partition tuning by distillation from the full model (unless
``--no-tune``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.cli._table import format_table, human
from anywidth.cli.hf import report_encoder, safetensors_out
from anywidth.compression.encoder import (
    budget_fidelity,
    convert_encoder,
    encoder_inn,
    open_encoder,
    tune_encoder,
)
from anywidth.measure import count_macs, count_params

__all__ = ["hf_integrate", "hf_resample"]

_REPORT_MACS = (0.75, 0.5, 0.25)  # budgets `integrate --hf-model` reports


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
    out, encoder = safetensors_out(args.out), open_encoder(args.hf_model)
    model, example = encoder.model, encoder.example
    inn = convert_encoder(model, example)
    if args.tune_partition:
        plan = inn.width_plan(target_macs=args.tune_target_macs)
        inn = tune_encoder(inn, plan, args.tune_steps, encoder)
    rows = [["full", human(count_params(model)), human(count_macs(model, example)), "1.000"]]
    metrics = {"hf_source": encoder.source}
    for target, small, cos in budget_fidelity(inn, encoder, _REPORT_MACS):
        macs = human(count_macs(small, example))
        rows.append([f"{target:.0%} MACs", human(count_params(small)), macs, f"{cos:.3f}"])
        metrics[f"embedding_cosine_{target:.0%}_macs".replace("%", "pct")] = cos
    save_integral(inn, out, metrics=metrics)
    print(format_table(["width", "params", "MACs", "embedding cosine to full"], rows))
    print(f"wrote {out}; `anywidth resample {out} --target-macs R --out small.safetensors` "
          "tunes the partition for R and cuts")  # fmt: skip
    return 0


def hf_resample(args: argparse.Namespace, recorded: str | None = None) -> int:
    """Sample an encoder's INN (converted now from ``--hf-model``, or read from an INN file
    that `hf_integrate` wrote, converted from ``recorded``) at a budget; tune its
    partition for it unless ``--no-tune``."""
    if args.inn is not None:  # an INN file; --hf-model, if given, says where its source is now
        args.hf_model = args.hf_model or recorded
        if args.hf_model != "minilm" and not Path(args.hf_model).is_dir():
            raise ValueError(
                f"{args.inn}: converted from the encoder folder {args.hf_model}, which does "
                "not exist here; pass --hf-model PATH with that encoder's folder"
            )
    out, encoder = safetensors_out(args.out), open_encoder(args.hf_model)
    inn = encoder_inn(encoder, args.inn)
    if args.ratio is not None:
        plan = inn.width_plan(args.ratio)
    else:
        plan = inn.width_plan(target_macs=args.target_macs, allocation=args.allocation)
    done = "partition not tuned"
    if not args.no_tune:
        inn = tune_encoder(inn, plan, args.tune_steps, encoder)
        done = f"partition tuned for {args.tune_steps} steps (distilled from the full model)"
    report_encoder(encoder, inn.resample(plan), out)
    print(f"INN resampled; {done}")
    return 0
