"""`anywidth prune`: structured pruning of a checkpoint to a MAC or parameter budget."""

from __future__ import annotations

import argparse

from anywidth.cli import _options as opt
from anywidth.cli._table import compression_table, format_table
from anywidth.cli.hf import add_hf_option, check_source, hf_prune
from anywidth.compression.pipeline import compress_source, open_checkpoint, save_compressed
from anywidth.pruning import PruneConfig

__all__ = ["add_prune"]


def add_prune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="structured pruning of a checkpoint to a budget")
    p.add_argument("checkpoint", nargs="?", help="a .safetensors checkpoint written by anywidth")
    add_hf_option(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-macs", type=float, help="fraction (<=1) or absolute MACs")
    target.add_argument("--target-params", type=float, help="fraction (<=1) or absolute")
    opt.add_latency_target(p, target)
    p.add_argument(
        "--importance",
        choices=["l1", "l2", "taylor", "activation", "random"],
        default=None,
        help="channel criterion (default: l1; activation for --hf-model, which it serves best)",
    )
    p.add_argument("--ranking", choices=["global", "local", "rank"], default="global")
    p.add_argument("--round-to", type=int, default=1)
    p.add_argument("--fixed", action="append", default=[], help="group name/glob to keep")
    p.add_argument("--no-recalibrate", action="store_true", help="skip BatchNorm recalibration")
    p.add_argument("--out", required=True, help="small.safetensors, or small.onnx for ONNX")
    opt.add_data_options(p, default=None)
    p.set_defaults(run=run_prune)


def _config(args: argparse.Namespace, default_importance: str) -> PruneConfig:
    return PruneConfig(
        target_macs=args.target_macs,
        target_params=args.target_params,
        importance=args.importance or default_importance,
        ranking=args.ranking,
        round_to=args.round_to,
        fixed=tuple(args.fixed),
        **opt.latency_budget(args),
    )


def run_prune(args: argparse.Namespace) -> int:
    if check_source(args, "checkpoint"):
        return hf_prune(args, _config(args, default_importance="activation"))
    out = opt.checked_out(args.out, (".safetensors", ".onnx"))
    config = _config(args, default_importance="l1")
    source = open_checkpoint(args.checkpoint, opt.data_options(args))
    result = compress_source(source, config, recalibrate=not args.no_recalibrate,
                             latency=opt.latency_setting(args))  # fmt: skip
    report = result.report.details  # the PruneReport
    rows = [[name, b, a] for name, (b, a) in report.changed().items()]
    print(format_table(["group", "before", "after"], rows))
    print(compression_table(result, source.scorer))
    save_compressed(out, result, source, {"prune": config.to_dict()})
    print(f"wrote {out} ({report.mac_ratio:.1%} of the MACs, {report.seconds:.2f} s to prune)")
    return 0
