"""`anywidth search`: TAS shape search of a checkpoint; `anywidth distill` trains the shape."""

from __future__ import annotations

import argparse
import json

from anywidth.cli._options import add_data_options, checked_out, data_options
from anywidth.cli._plot import plot_search_log
from anywidth.cli._table import format_table
from anywidth.compression.pipeline import Source, open_checkpoint
from anywidth.search import SearchConfig, search_shape
from anywidth.train.distributed import processes

__all__ = ["add_search", "classifier_only"]


def add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="TAS: search the widths and block depths of a checkpoint under a MAC target",
        description=(
            "Learn a distribution over candidate widths (0.3..1.0 of each channel group) and "
            "over how many blocks of every run of residual blocks to keep, trading accuracy "
            "against the expected MACs; write the most likely shape to a JSON file for "
            "`anywidth distill`."
        ),
    )
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by anywidth")
    p.add_argument("--target-macs", type=float, required=True, help="fraction of MACs, (0, 1)")
    p.add_argument("--tolerance", type=float, default=0.05, help="band half-width (of MACs)")
    p.add_argument("--epochs", type=int, default=10, help="search epochs")
    p.add_argument("--lr", type=float, default=0.01, help="weight-step learning rate")
    p.add_argument("--arch-lr", type=float, default=0.05, help="architecture-step Adam lr")
    p.add_argument("--no-depth", action="store_true", help="search widths only")
    p.add_argument(
        "--fixed", action="append", default=[], help="channel group/glob to keep (repeatable)"
    )
    p.add_argument("--plot", default=None, help="PNG of MACs and accuracy over the search")
    p.add_argument("--out", required=True, help="the shape, a .json file")
    add_data_options(p, default=None)
    p.set_defaults(run=run_search, distributed=True)


def classifier_only(source: Source, command: str) -> None:
    """TAS searches and distils with cross-entropy and KL on logits: classifiers only."""
    if not source.scorer.is_accuracy:
        raise ValueError(
            f"anywidth {command}: {source.path} holds a super-resolution model; TAS searches "
            "and distils classifiers only. For it, use `anywidth prune`, `anywidth integrate` "
            "or `anywidth slim`, which train and score super-resolution models in PSNR"
        )


def run_search(args: argparse.Namespace) -> int:
    out = checked_out(args.out, (".json",))
    config = SearchConfig(
        target_macs=args.target_macs,
        tolerance=args.tolerance,
        epochs=args.epochs,
        lr=args.lr,
        arch_lr=args.arch_lr,
        depth=not args.no_depth,
        fixed=tuple(args.fixed),
        seed=args.seed,
    )
    source = open_checkpoint(args.checkpoint, data_options(args))
    classifier_only(source, "search")
    result = search_shape(source.model, source.example, source.loaders, config)
    if not processes().is_main:
        return 0  # rank 0 reports and writes; every rank found the same shape
    rows = [
        [e["epoch"], f"{e['tau']:.2f}", f"{100 * e['expected_macs']:.1f}",
         f"{100 * e['argmax_macs']:.1f}", f"{100 * e['val_accuracy']:.2f}"]
        for e in result.log
    ]  # fmt: skip
    print(format_table(["epoch", "tau", "expected MACs %", "argmax MACs %", "val acc %"], rows))
    sizes = result.original_widths
    widths = [[name, sizes[name], size] for name, size in result.plan.items()]
    print(format_table(["channel group", "width before", "width after"], widths))
    if result.runs:
        depth = [[f"{run[0]}..{run[-1]}", len(run), result.depths[run[0]]] for run in result.runs]
        print(format_table(["run of blocks", "blocks", "kept"], depth))
    data = {**result.to_dict(), "checkpoint": str(args.checkpoint)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    if args.plot:
        plot_search_log(result.log, config.target_macs, config.tolerance, args.plot)
    band = "inside" if result.in_band else "OUTSIDE"
    print(
        f"wrote {out}: {result.mac_ratio:.1%} of the MACs ({band} the band "
        f"{config.target_macs:.0%} ± {config.tolerance:.0%}), {result.seconds:.1f} s"
    )
    return 0
