"""The `anywidth` command: train, eval, info, demo (and the compression commands)."""

from __future__ import annotations

import argparse
import logging
import sys

from anywidth import __version__
from anywidth.cli import commands

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anywidth",
        description="Make a trained network smaller by changing the width of its layers.",
    )
    parser.add_argument("--version", action="version", version=f"anywidth {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in commands.REGISTERED:
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
        return int(args.run(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, TypeError) as err:
        # Library errors are written for people: show the message, not a traceback.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"anywidth {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
