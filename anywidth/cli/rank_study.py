"""`anywidth rank-study`: ReXNet's rank study of random layers (`studies.rank_study`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from anywidth.cli._table import format_table
from studies.rank_study import RankStudyConfig, rank_study

__all__ = ["add_rank_study"]


def add_rank_study(sub: argparse._SubParsersAction) -> None:
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
