"""`anywidth resample`: cut an any-width model (an INN or a slimmable checkpoint) to a budget.

An INN (from `anywidth integrate`) has its partition tuned for the plan, weights frozen,
unless ``--no-tune``; a slimmable checkpoint (from `anywidth slim`) keeps its first
channels. The result is an ordinary checkpoint (`anywidth eval` reads it) or an ONNX file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.budget import Budget
from anywidth.cli import _options as opt
from anywidth.cli._table import compression_table
from anywidth.cli.hf import add_hf_option, check_source
from anywidth.cli.hf_inn import hf_resample
from anywidth.compression.encoder import hf_source_of
from anywidth.compression.pipeline import Source, compress_source, open_checkpoint, save_compressed
from anywidth.integral import IntegralModel
from anywidth.slim import ShrinkConfig, to_slimmable

__all__ = ["add_resample"]

# What each kind of model is called in the summary line, and the step that says so.
_KINDS = {
    "inn": ("INN resampled", "resampled the INN"),
    "slim": ("slimmable: first channels kept", "kept the first channels"),
}


def add_resample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resample",
        help="cut an any-width model (integral or slimmable) to a budget or a ratio",
        description=(
            "Sample an integral model (from `anywidth integrate`) or cut a slimmable "
            "checkpoint (from `anywidth slim`) at a budget. By default an INN's partition is "
            "tuned for that plan (--tune-steps, weights frozen) and BatchNorm is recalibrated."
        ),
    )
    p.add_argument("inn", nargs="?", help="a model written by `anywidth integrate` or `slim`")
    add_hf_option(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-macs", type=float, help="fraction (<=1) or absolute MACs")
    target.add_argument("--ratio", type=float, help="the same width ratio for every group")
    opt.add_latency_target(p, target)
    p.add_argument("--allocation", choices=["uniform", "global", "rank"], default="uniform")
    p.add_argument("--no-recalibrate", action="store_true", help="skip BatchNorm recalibration")
    p.add_argument("--no-tune", action="store_true", help="skip the INN's partition tuning")
    p.add_argument("--tune-steps", type=int, default=100, help="partition tuning steps")
    p.add_argument("--out", required=True, help="small.safetensors, or small.onnx for ONNX")
    opt.add_data_options(p, default=None)
    p.set_defaults(run=run_resample)


def _any_width(source: Source):
    """The INN of an `integrate` file, or the slimmable model of a `slim` checkpoint."""
    if isinstance(source.model, IntegralModel):
        return source.model
    if "slimmable" in (source.meta.get("extra") or {}):
        return to_slimmable(source.model.eval(), source.example, sort=False)
    raise ValueError(
        f"{source.path}: neither an integral model (`anywidth integrate`) nor a slimmable "
        "checkpoint (`anywidth slim`); prune or decompose a plain checkpoint instead"
    )


def _config(args: argparse.Namespace, loss: str) -> ShrinkConfig:
    budget = None
    if args.target_macs is not None:
        many = args.target_macs > 1  # an absolute count of MACs
        budget = Budget.absolute(macs=args.target_macs) if many else Budget(macs=args.target_macs)
    tune_steps = 0 if args.no_tune else args.tune_steps
    target = opt.latency_budget(args) or {"budget": budget}
    return ShrinkConfig(ratio=args.ratio, allocation=args.allocation, tune_steps=tune_steps,
                        loss=loss, **target)  # fmt: skip


def run_resample(args: argparse.Namespace) -> int:
    recorded = args.inn is not None and Path(args.inn).is_file() and hf_source_of(args.inn)
    if recorded or check_source(args, "inn"):
        # an INN file that `integrate --hf-model` wrote (--hf-model: where its source is
        # now), or an encoder converted now
        return hf_resample(args, recorded or None)
    out = opt.checked_out(args.out, (".safetensors", ".onnx"))
    source = open_checkpoint(args.inn, opt.data_options(args))
    wide = _any_width(source)
    config = _config(args, source.scorer.task.loss)
    result = compress_source(source, config, model=wide, recalibrate=not args.no_recalibrate,
                             latency=opt.latency_setting(args))  # fmt: skip
    print(compression_table(result, source.scorer))
    kind, step = _KINDS[result.report.method]
    done = [d for d in result.report.done if d != step]
    print(f"{kind}; " + ("; ".join(done) or "no tuning, no recalibration"))
    record = {"target_macs": args.target_macs, "target_latency": args.target_latency,
              "ratio": args.ratio}  # fmt: skip
    record.update(allocation=args.allocation, recalibrated=not args.no_recalibrate)
    if isinstance(wide, IntegralModel):
        record["tune_steps"] = config.tune_steps
    save_compressed(out, result, source, {"resample": record})
    print(f"wrote {out} ({result.report.mac_ratio:.1%} of the MACs)")
    return 0
