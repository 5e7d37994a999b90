"""`anywidth decompose`: low-rank factorisation (ALDS or uniform SVD) of a checkpoint."""

from __future__ import annotations

import argparse

from anywidth.cli import _options as opt
from anywidth.cli._table import compression_table, format_table, human
from anywidth.compression.pipeline import (
    FINETUNE_LR,
    compress_source,
    finetune_config,
    open_checkpoint,
    save_compressed,
)
from anywidth.lowrank import LowRankConfig, LowRankReport
from anywidth.train.distributed import processes

__all__ = ["add_decompose"]


def add_decompose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decompose",
        help="low-rank factorisation of a checkpoint's layers to a budget (ALDS or SVD)",
        description=(
            "Factor the Conv2d and Linear layers of a checkpoint into two thinner layers each. "
            "ALDS chooses a rank and a number of input-channel slices per layer so that the "
            "largest relative error of any layer is as small as the budget allows; svd gives "
            "every layer the same rank ratio. Errors are of each layer's output on a few "
            "training batches (--calibration-batches), or of its weights with 0. A layer "
            "stays dense where factoring would not make it smaller."
        ),
    )
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by anywidth")
    p.add_argument("--method", choices=["alds", "svd"], default="alds")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-params", type=float, help="fraction of params to keep, (0, 1]")
    target.add_argument("--target-macs", type=float, help="fraction of MACs to keep, (0, 1]")
    opt.add_latency_target(p, target)
    p.add_argument(
        "--round-to",
        type=int,
        default=1,
        help="each factored layer's k*rank channels are a multiple of this (8, 16)",
    )
    p.add_argument("--fixed", action="append", default=[],
                   help="layer name/glob to keep dense (repeatable)")  # fmt: skip
    p.add_argument("--calibration-batches", type=int, default=8,
                   help="training batches whose inputs make the factorisation data-aware (each "
                   "layer keeps what matters for its output on them); 0 factors the weights "
                   "alone")  # fmt: skip
    p.add_argument("--no-recalibrate", action="store_true", help="skip BatchNorm recalibration")
    p.add_argument("--finetune-epochs", type=int, default=0,
                   help="epochs of fine-tuning after decomposing (SGD, cosine)")  # fmt: skip
    p.add_argument("--lr", type=float, default=None,
                   help="fine-tuning learning rate; by default the checkpoint's own schedule is "
                   "'rewound': its last --finetune-epochs epochs (TrainConfig.rewind), or, "
                   f"without a recorded schedule, {FINETUNE_LR} (a tenth of `train`'s) decayed "
                   "by cosine")  # fmt: skip
    p.add_argument("--out", required=True, help="small.safetensors, or small.onnx for ONNX")
    opt.add_data_options(p, default=None)
    p.set_defaults(run=run_decompose, distributed=True)


def run_decompose(args: argparse.Namespace) -> int:
    out = opt.checked_out(args.out, (".safetensors", ".onnx"))
    for flag in ("finetune_epochs", "calibration_batches"):
        if getattr(args, flag) < 0:
            raise ValueError(f"--{flag.replace('_', '-')} {getattr(args, flag)} must be >= 0")
    config = LowRankConfig(
        method=args.method,
        target_params=args.target_params,
        target_macs=args.target_macs,
        fixed=tuple(args.fixed),
        calibration_batches=args.calibration_batches,
        round_to=args.round_to,
        **opt.latency_budget(args),
    )
    source = open_checkpoint(args.checkpoint, opt.data_options(args))
    finetune = finetune_config(source, args.finetune_epochs, args.lr, args.batch_size, args.seed)
    result = compress_source(source, config, recalibrate=not args.no_recalibrate,
                             finetune=finetune, latency=opt.latency_setting(args))  # fmt: skip
    if not processes().is_main:
        return 0  # rank 0 reports and writes; the other ranks trained the same weights
    report = result.report.details  # the LowRankReport
    print(_layer_table(report))
    print(compression_table(result, source.scorer))
    record = {**config.to_dict(), "error_kind": report.error_kind, "max_error": report.max_error,
              "recalibrated": not args.no_recalibrate, "finetune_epochs": args.finetune_epochs,
              "finetune_lr": finetune and finetune.lr}  # fmt: skip
    save_compressed(out, result, source, {"decompose": record})
    print(
        f"wrote {out} ({report.param_ratio:.1%} of the params, {report.mac_ratio:.1%} of the "
        f"MACs, max layer {report.error_kind} error {report.max_error:.3f}, "
        f"{report.seconds:.2f} s to decompose)"
    )
    return 0


def _layer_table(report: LowRankReport) -> str:
    """One row per factored layer, then how many stayed dense."""
    rows = [
        [r.name, r.k, r.j, f"{r.error:.3f}", human(r.params_before), human(r.params_after)]
        for r in report.layers
        if r.j is not None
    ]
    headers = ["layer", "k", "j", "error", "params before", "params after"]
    dense = len(report.layers) - len(rows)
    return f"{format_table(headers, rows)}\n{len(rows)} layers factored, {dense} kept dense"
