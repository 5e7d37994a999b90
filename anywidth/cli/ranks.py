"""`anywidth ranks`: the numerical rank of every layer's output on data."""

from __future__ import annotations

import argparse

from anywidth.analysis import layer_ranks
from anywidth.cli._options import add_data_options, data_options
from anywidth.cli._plot import plot_layer_ranks
from anywidth.cli._table import format_table
from anywidth.graph.ranks import DEFAULT_RTOL
from anywidth.train import load_model

__all__ = ["add_ranks"]


def add_ranks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ranks",
        help="numerical rank of every layer's output on data: where a network under-uses width",
    )
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by anywidth")
    p.add_argument("--layers", nargs="+", default=None, help="module names/globs (default: all)")
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help="singular-value threshold")
    p.add_argument("--batches", type=int, default=4, help="batches of training data used")
    p.add_argument("--plot", default=None, help="write a per-layer bar chart (PNG) here")
    add_data_options(p, default=None)
    p.set_defaults(run=run_ranks)


def run_ranks(args: argparse.Namespace) -> int:
    model, meta = load_model(args.checkpoint)
    loaders = data_options(args).loaders(meta)
    ranks = layer_ranks(model, loaders.train, args.layers, rtol=args.rtol, max_batches=args.batches)
    rows = [[n, r.channels, r.rank, f"{r.ratio:.2f}", r.rows] for n, r in ranks.items()]
    print(format_table(["layer", "channels", "rank", "rank ratio", "rows"], rows))
    low = [n for n, r in ranks.items() if r.ratio < 0.9]
    print(f"rtol {args.rtol:g}; {len(low)} of {len(ranks)} layers below rank ratio 0.9")
    capped = [n for n, r in ranks.items() if r.row_limited and r.rank == r.rows]
    if capped:
        print(
            f"{len(capped)} layers have fewer rows than channels and full row rank, so the data "
            f"caps their rank (e.g. {capped[0]}): raise --batches"
        )
    if args.plot:
        path = plot_layer_ranks(ranks, args.plot, f"{meta['model']['name']}: output rank ratio")
        print(f"plot: {path}")
    return 0
