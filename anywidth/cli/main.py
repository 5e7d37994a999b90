"""The `anywidth` command: train, eval, info, demo (and the compression commands)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

import torch.distributed as dist

from anywidth import __version__
from anywidth.cli.channel_search import add_channel_search
from anywidth.cli.compare import add_compare
from anywidth.cli.compress import add_compress
from anywidth.cli.demo import add_demo
from anywidth.cli.distill import add_distill
from anywidth.cli.info import add_info
from anywidth.cli.integrate import add_integrate
from anywidth.cli.lowrank import add_decompose
from anywidth.cli.prune import add_prune
from anywidth.cli.rank_study import add_rank_study
from anywidth.cli.ranks import add_ranks
from anywidth.cli.resample import add_resample
from anywidth.cli.search import add_search
from anywidth.cli.slim import add_slim
from anywidth.cli.train import add_eval, add_train
from anywidth.train.distributed import DistributedError, Processes, init_distributed

__all__ = ["DISTRIBUTED", "REGISTERED", "build_parser", "main"]

REGISTERED = [add_demo, add_train, add_eval, add_info, add_compare, add_compress, add_prune,
              add_integrate, add_slim, add_resample, add_decompose, add_search, add_distill,
              add_rank_study, add_ranks, add_channel_search]  # fmt: skip
"""Each adds one sub-command to the parser, in the order `anywidth --help` lists them."""

DISTRIBUTED = ("train", "slim", "integrate", "decompose", "search", "distill")
"""The commands that train under ``torchrun`` (DDP); the others refuse to start there."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anywidth",
        description="Make a trained network smaller by changing the width of its layers.",
    )
    parser.add_argument("--version", action="version", version=f"anywidth {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTERED:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        where = _join_processes(args)
        with _only_rank_0_prints(where):
            return int(args.run(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, TypeError, DistributedError) as err:
        # Library errors are written for people: show the message, not a traceback.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"anywidth {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _join_processes(args: argparse.Namespace) -> Processes:
    """Under torchrun, join the process group; only the commands that train may run there."""
    where = init_distributed()
    if where.active and not getattr(args, "distributed", False):
        raise ValueError(
            f"`anywidth {args.command}` runs in one process; start it without torchrun "
            f"(under torchrun: {', '.join(DISTRIBUTED)})"
        )
    return where


def _only_rank_0_prints(where: Processes) -> contextlib.AbstractContextManager:
    """Every rank computes the same tables; rank 0 shows them (errors still go to stderr)."""
    if where.is_main:
        return contextlib.nullcontext()
    return contextlib.redirect_stdout(open(os.devnull, "w"))  # noqa: SIM115  closed at exit


if __name__ == "__main__":
    sys.exit(main())
