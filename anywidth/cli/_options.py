"""Options several commands share: the data they use and the file they write."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from anywidth.compression.pipeline import DataOptions
from anywidth.data import list_datasets

__all__ = ["add_data_options", "checked_out", "data_options"]


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
