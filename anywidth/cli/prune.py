"""`anywidth prune`: structured pruning of a checkpoint to a MAC or parameter budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.cli._score import scorer_for
from anywidth.cli._table import before_after_table, format_table
from anywidth.cli.hf import add_hf_option, check_source, hf_prune
from anywidth.graph import export_onnx
from anywidth.pruning import PruneConfig, prune, recalibrate_bn_
from anywidth.train import load_model, save_checkpoint

__all__ = ["add_prune"]


def add_prune(sub: argparse._SubParsersAction) -> None:
    from anywidth.cli.commands import add_data_options

    p = sub.add_parser("prune", help="structured pruning of a checkpoint to a budget")
    p.add_argument("checkpoint", nargs="?", help="a .safetensors checkpoint written by anywidth")
    add_hf_option(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-macs", type=float, help="fraction (<=1) or absolute MACs")
    target.add_argument("--target-params", type=float, help="fraction (<=1) or absolute")
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
    add_data_options(p, default=None)
    p.set_defaults(run=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    from anywidth.cli.commands import loaders_for_checkpoint

    if check_source(args, "checkpoint"):
        return hf_prune(args)
    out = Path(args.out)
    if out.suffix not in (".safetensors", ".onnx"):
        raise ValueError(f"--out {out}: use a .safetensors or .onnx file name")
    model, meta = load_model(args.checkpoint)
    loaders = loaders_for_checkpoint(args, meta)
    example = next(iter(loaders.test))[0][:1]
    config = prune_config(args)
    score = scorer_for(model)
    before = score(model, loaders.test)
    small, report = prune(model, example, config, data=loaders.train)
    if not args.no_recalibrate:
        recalibrate_bn_(small, loaders.train)
    after = score(small, loaders.test)
    changed = report.changed()
    rows = [[name, b, a] for name, (b, a) in changed.items()]
    print(format_table(["group", "before", "after"], rows))
    print(
        before_after_table(
            (report.params_before, report.macs_before, before),
            (report.params_after, report.macs_after, after),
            score,
        )
    )
    if out.suffix == ".onnx":
        export_onnx(small, example, out)
    else:
        save_checkpoint(
            out,
            small,
            metrics={f"test_{score.metric.name}": after, "macs": report.macs_after},
            extra={"data": (meta.get("extra") or {}).get("data"), "prune": config.to_dict()},
        )
    print(f"wrote {out} ({report.mac_ratio:.1%} of the MACs, {report.seconds:.2f} s to prune)")
    return 0


def prune_config(args: argparse.Namespace, default_importance: str = "l1") -> PruneConfig:
    """The `PruneConfig` that `anywidth prune`'s options describe."""
    return PruneConfig(
        target_macs=args.target_macs,
        target_params=args.target_params,
        importance=args.importance or default_importance,
        ranking=args.ranking,
        round_to=args.round_to,
        fixed=tuple(args.fixed),
    )
