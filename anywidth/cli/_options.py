"""Options several commands share: the data they use and the file they write."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from anywidth.compression.pipeline import DataOptions
from anywidth.data import list_datasets

__all__ = [
    "add_data_options",
    "add_latency_options",
    "add_latency_target",
    "checked_out",
    "data_options",
    "latency_budget",
    "latency_setting",
]


def add_data_options(p: argparse.ArgumentParser, default: str | None = "digits") -> None:
    p.add_argument("--data", default=default, help=f"dataset: one of {list_datasets()}")
    p.add_argument(
        "--data-root",
        default=None,
        help="folder of local files (cifar10; fashion-mnist defaults to the Debian package)",
    )
    p.add_argument("--image-size", type=int, default=None, help="resize images (pixels)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seeds the split, shuffle and init")


def data_options(args: argparse.Namespace) -> DataOptions:
    """The `DataOptions` of `add_data_options`'s flags."""
    return DataOptions(name=args.data, root=args.data_root, image_size=args.image_size,
                       batch_size=args.batch_size, seed=args.seed)  # fmt: skip


def checked_out(out: str, suffixes: Sequence[str]) -> Path:
    """``--out`` as a path, refused early unless it ends in one of ``suffixes``."""
    path = Path(out)
    if path.suffix not in suffixes:
        names = " or ".join(suffixes)
        raise ValueError(f"--out {path}: use a {names} file name")
    return path


def add_latency_options(p: argparse.ArgumentParser) -> None:
    """--runtime, --batch, --threads (timing both models) and --latency-cache."""
    from anywidth.latency import RUNTIMES

    p.add_argument("--runtime", choices=RUNTIMES, default=None,
                   help="time both models on this runtime and report the measured speed-up "
                   "(default with --target-latency: torch)")  # fmt: skip
    p.add_argument("--batch", type=int, default=None,
                   help="batch size latency is measured at (default: 1)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads latency is measured with (default: 1)")  # fmt: skip
    p.add_argument("--latency-cache", default="runs/latency",
                   help="folder of per-layer latency tables (--target-latency, and "
                   "lowrank's timed layers)")  # fmt: skip


def latency_setting(args: argparse.Namespace):
    """The `LatencyConfig` both models are timed on: asked for by --target-latency or any of
    --runtime, --batch, --threads (None: no side-by-side timing)."""
    from anywidth.latency import LatencyConfig

    asked = (getattr(args, "target_latency", None), args.runtime, args.batch, args.threads)
    if all(a is None for a in asked):
        return None
    return LatencyConfig(runtime=args.runtime or "torch", batch=args.batch or 1,
                         threads=args.threads or 1)  # fmt: skip


def add_latency_target(
    p: argparse.ArgumentParser, target: argparse._MutuallyExclusiveGroup
) -> None:
    """--target-latency in the command's group of targets, and the latency options."""
    target.add_argument("--target-latency", type=float,
                        help="fraction of the measured latency (0, 1] on --runtime, "
                        "--batch and --threads (0.5: twice as fast)")  # fmt: skip
    add_latency_options(p)


def latency_budget(args: argparse.Namespace) -> dict:
    """The fields a method's config takes for --target-latency (``{}`` without it): the
    budget, the setting it is measured on and the folder of its per-layer tables."""
    from anywidth.budget import Budget

    if args.target_latency is None:
        return {}
    return {"budget": Budget(latency=args.target_latency), "latency": latency_setting(args),
            "latency_cache": args.latency_cache}  # fmt: skip
