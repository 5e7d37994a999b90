"""The eval-mode cache of an IntegralModel: discretized tensors and runners per plan.

An `Entry` holds one plan's discretized tensors (no autograd history) and, once built,
the module eval-mode calls at that plan run. It is valid while every λ and grid tensor is
unchanged. The check runs on every call, so it is kept to one C-level pass over the
tracked tensors (few: the model passes the counters its λ share, see
`anywidth.integral._store.LamStore.version_tensors`): the sum of their in-place version
counters. A counter only grows, so the sum changes exactly when one of them does
(optimizer steps, in-place edits under ``no_grad``). Changes through ``.data`` and new
tensor objects are not seen: the model calls `EvalCache.clear` where it replaces tensors
(``.to()``, ``load_state_dict``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

import torch
from torch import Tensor, nn

__all__ = ["EvalCache", "Entry"]

_VERSION = attrgetter("_version")
_REQUIRES_GRAD = attrgetter("requires_grad")


@dataclass(eq=False)
class Entry:
    """One plan's cached tensors; ``runner`` is set by the model on first use."""

    stamp: int
    tensors: dict[str, Tensor]
    runner: nn.Module | None = None


class EvalCache:
    """The entries of the last ``size`` plans used, keyed by plan.

    Args:
        size: how many plans are kept (the oldest is dropped first).
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.entries: dict[tuple, Entry] = {}
        self.tracked: list[Tensor] | None = None
        self.params: list[Tensor] | None = None

    def __deepcopy__(self, memo: dict) -> EvalCache:
        """An empty cache: entries hold the original's tensors and runners."""
        new = EvalCache(self.size)
        memo[id(self)] = new
        return new

    def track(self, tensors: Callable[[], list[Tensor]]) -> list[Tensor]:
        """The tensors entries depend on, listed once (by ``tensors``) until `clear`."""
        if self.tracked is None:
            self.tracked = tensors()
        return self.tracked

    def frozen(self, params: Callable[[], list[Tensor]]) -> bool:
        """True when no gradient can reach the model's parameters (listed once by
        ``params`` until `clear`) from this call."""
        if not torch.is_grad_enabled():
            return True
        if self.params is None:
            self.params = params()
        return not any(map(_REQUIRES_GRAD, self.params))

    def get(
        self,
        key: tuple,
        tensors: Callable[[], list[Tensor]],
        compute: Callable[[], dict[str, Tensor]],
    ) -> Entry:
        """The valid entry of plan ``key``, made with ``compute()`` if there is none.

        Args:
            key: the plan's key (equal plans, equal keys).
            tensors: lists the tracked tensors (see `track`).
            compute: the plan's discretized tensors, without autograd history.
        """
        stamp = sum(map(_VERSION, self.track(tensors)))
        entry = self.entries.get(key)
        if entry is not None and entry.stamp == stamp:
            return entry
        if entry is None and len(self.entries) >= self.size:
            del self.entries[next(iter(self.entries))]
        entry = self.entries[key] = Entry(stamp, compute())
        return entry

    def clear(self) -> None:
        """Forget every entry and the tensor lists."""
        self.entries.clear()
        self.tracked = self.params = None
