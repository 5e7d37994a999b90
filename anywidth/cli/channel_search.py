"""`anywidth channel-search`: ReXNet's channel configurations at equal MACs
(`studies.channel_search`)."""

from __future__ import annotations

import argparse
import csv

from anywidth.cli._table import format_table, human
from studies.channel_search import CANDIDATES, ChannelSearchConfig, channel_search

__all__ = ["add_channel_search"]


def add_channel_search(sub: argparse._SubParsersAction) -> None:
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
