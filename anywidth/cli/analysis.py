"""`anywidth rank-study`, `anywidth ranks` and `anywidth channel-search`: ReXNet's analyses."""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.cli._options import add_data_options, data_options
from anywidth.cli._plot import plot_layer_ranks
from anywidth.cli._table import format_table, human

__all__ = ["add_channel_search", "add_rank_study", "add_ranks"]


def add_rank_study(sub: argparse._SubParsersAction) -> None:
    from anywidth.analysis.rank_study import RankStudyConfig

    default = RankStudyConfig()
    p = sub.add_parser(
        "rank-study",
        help="ReXNet's rank study of random layers: CSV table, PNG figure, findings",
        description=(
            "Random 1x1/3x3 layers and inverted bottlenecks with BatchNorm and a nonlinearity; "
            "the rank ratio rank(f(WX))/d_out against d_in/d_out, averaged over random "
            "networks. Writes rank_study.csv and rank_study.png to --out and prints which of "
            "the paper's findings the numbers reproduce."
        ),
    )
    p.add_argument("--out", required=True, help="folder for rank_study.csv and rank_study.png")
    p.add_argument("--networks", type=int, default=default.networks, help="per point")
    p.add_argument("--kinds", nargs="+", default=list(default.kinds))
    p.add_argument("--activations", nargs="+", default=list(default.activations))
    p.add_argument(
        "--rtol", type=float, default=None, help="rank threshold (default: machine precision)"
    )
    p.add_argument("--no-batch-norm", action="store_true", help="f(WX) without BatchNorm")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: the matrices are small; more threads only contend)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run_rank_study)


def run_rank_study(args: argparse.Namespace) -> int:
    import torch

    from anywidth.analysis.rank_study import RankStudyConfig, rank_study

    if args.threads < 1:
        raise ValueError(f"--threads {args.threads}: give 1 or more")
    config = RankStudyConfig(
        kinds=tuple(args.kinds),
        activations=tuple(args.activations),
        networks=args.networks,
        rtol=args.rtol,
        batch_norm=not args.no_batch_norm,
        seed=args.seed,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        result = rank_study(config)
    finally:
        torch.set_num_threads(threads)
    csv_path, png = result.to_csv(out / "rank_study.csv"), result.plot(out / "rank_study.png")
    ratios = [r for r in config.ratios if r in (min(config.ratios), 0.5, max(config.ratios))]
    rows = [
        [kind, act, *(f"{result.point(kind, act, r).mean:.3f}" for r in ratios)]
        for kind in config.kinds
        for act in config.activations
    ]
    print(format_table(["kind", "nonlinearity", *(f"d_in/d_out={r:g}" for r in ratios)], rows))
    for f in result.findings():
        print(f"- {f.name}: {f.status} ({f.evidence})")
    print(f"{result.seconds:.1f} s; wrote {csv_path} and {png}")
    return 0


def add_ranks(sub: argparse._SubParsersAction) -> None:
    from anywidth.graph.ranks import DEFAULT_RTOL

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
    from anywidth.analysis import layer_ranks
    from anywidth.train import load_model

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


def add_channel_search(sub: argparse._SubParsersAction) -> None:
    from anywidth.analysis.channel_search import CANDIDATES, ChannelSearchConfig

    default = ChannelSearchConfig()
    p = sub.add_parser(
        "channel-search",
        help="ReXNet channel configurations (linear, stage-wise, piecewise) at equal MACs",
    )
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--width-mult", type=float, default=default.width_mult)
    p.add_argument("--data", default=default.data)
    p.add_argument("--epochs", type=int, default=default.epochs)
    p.add_argument("--lr", type=float, default=default.lr)
    p.add_argument("--batch-size", type=int, default=default.batch_size)
    p.add_argument("--seeds", type=int, nargs="+", default=list(default.seeds))
    p.add_argument("--csv", default=None, help="also write the table as CSV here")
    p.set_defaults(run=run_channel_search)


def run_channel_search(args: argparse.Namespace) -> int:
    import csv

    from anywidth.analysis.channel_search import ChannelSearchConfig, channel_search

    config = ChannelSearchConfig(
        candidates=tuple(args.candidates),
        width_mult=args.width_mult,
        data=args.data,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seeds=tuple(args.seeds),
    )
    rows = channel_search(config)
    headers = ["config", "channels", "MACs", "params", "test acc %", "seeds"]
    table = [
        [
            r.name,
            " ".join(map(str, r.channels)),
            human(r.macs),
            human(r.params),
            f"{100 * r.mean:.1f} ± {100 * r.std:.1f}",
            len(r.accuracies),
        ]
        for r in rows
    ]
    print(format_table(headers, table))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*headers[:4], "acc mean", "acc std", "accuracies"])
            for r in rows:
                accs = " ".join(f"{a:.4f}" for a in r.accuracies)
                writer.writerow(
                    [r.name, " ".join(map(str, r.channels)), r.macs, r.params, r.mean, r.std, accs]
                )
    return 0
