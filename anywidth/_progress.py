"""The one progress-bar helper of the library (tqdm, quiet when not on a terminal)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

import torch.distributed as dist
from tqdm.auto import tqdm

T = TypeVar("T")

__all__ = ["progress"]


def progress(items: Iterable[T], desc: str, total: int | None = None, leave: bool = False):
    """Wrap ``items`` in a progress bar on stderr.

    The bar is hidden when stderr is not a terminal or ``ANYWIDTH_PROGRESS=0``, so logs
    and CI output stay clean, and in every process but rank 0 of a multi-process run.
    """
    setting = os.environ.get("ANYWIDTH_PROGRESS", "auto")
    disable = setting == "0" or (setting == "auto" and not sys.stderr.isatty())
    disable = disable or (dist.is_available() and dist.is_initialized() and dist.get_rank() > 0)
    return tqdm(items, desc=desc, total=total, leave=leave, disable=disable, dynamic_ncols=True)
