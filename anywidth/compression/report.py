"""`CompressionReport`: what `anywidth.compress` did, the same for every method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anywidth.budget import Budget
from anywidth.latency import LatencyConfig
from anywidth.measure import Report

__all__ = ["CompressionReport", "SlowerWarning"]

_FIELDS = {"macs": "macs", "params": "params", "latency": "latency_ms"}


class SlowerWarning(UserWarning):
    """The compressed model is not faster than the original on the runtime it was timed on."""


def _short(n: float) -> str:
    """A count in short form: 1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


@dataclass
class CompressionReport:
    """Before and after measurements of one compression, its widths and its steps.

    Attributes:
        method: the handler that ran (``"prune"``, ``"lowrank"``, ``"inn"``, ``"slim"``,
            ``"search"``).
        before: `anywidth.measure.Report` of the original model (for an any-width model:
            of its full width); ``accuracy``/``loss`` are set when the data has a test split.
        after: the same for the compressed model.
        widths: the plan of the compressed model: ``{channel group: width}`` for the width
            methods, ``{layer: (slices, rank)}`` of the factored layers for low rank.
        done: the steps taken, in words (``"pruned ..."``, ``"recalibrated BatchNorm ..."``).
        budget: the budget asked for, as a fraction of the original (None: a plan or ratio).
        config: the method's config as a dict.
        latency: the setting both models were timed on, side by side (runtime, batch,
            threads), or None when latency was not asked for: ``before``/``after`` then hold
            a quick torch timing on the example input that is no speed-up to report.
        details: the method's own report (`anywidth.pruning.PruneReport`,
            `anywidth.lowrank.LowRankReport`, ...), or None; not part of `to_dict`.

    Example:
        >>> import torch, anywidth
        >>> from anywidth.pruning import PruneConfig
        >>> model = anywidth.create_model("tiny_resnet", num_classes=10)
        >>> config = PruneConfig(budget=anywidth.Budget(macs=0.5))
        >>> _, report = anywidth.compress(model, torch.randn(1, 3, 8, 8), config)
        >>> print(report)
        prune: ...% of the MACs, ...% of the params (budget macs=0.5: met)
        |        | params | MACs    | acc % |
        |--------|--------|---------|-------|
        | before | ...    | ...     | -     |
        | after  | ...    | ...     | -     |
        done: pruned ... channel groups (l1 importance, global ranking)
    """

    method: str
    before: Report
    after: Report
    widths: dict[str, Any] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    budget: Budget | None = None
    config: dict[str, Any] = field(default_factory=dict)
    latency: LatencyConfig | None = None
    details: Any = field(default=None, repr=False, compare=False)

    @property
    def mac_ratio(self) -> float:
        """MACs after / before."""
        return self.after.macs / self.before.macs

    @property
    def param_ratio(self) -> float:
        """Parameters after / before."""
        return self.after.params / self.before.params

    @property
    def speedup(self) -> float | None:
        """Measured latency before / after on `latency` (None: latency was not asked for)."""
        if self.latency is None:
            return None
        return self.before.latency_ms / self.after.latency_ms

    @property
    def met_budget(self) -> bool | None:
        """Whether the result lies within the budget's tolerance (None: no budget)."""
        if self.budget is None:
            return None
        key = _FIELDS[self.budget.metric]
        return self.budget.met_by(getattr(self.after, key), getattr(self.before, key))

    def slower(self) -> str | None:
        """A warning when the compressed model is not faster than the original on the
        setting it was timed on (None: it is faster, or latency was not asked for)."""
        if self.speedup is None or self.speedup > 1.0:
            return None
        a = self.after
        return (
            f"{self.method}: the compressed model is not faster than the original on "
            f"runtime={a.runtime!r}, batch={a.batch_size}, threads={a.threads}: "
            f"{a.latency_ms:.3g} ms against {self.before.latency_ms:.3g} ms "
            f"(speed-up {self.speedup:.2f}x at {self.mac_ratio:.1%} of the MACs); time it on "
            "the runtime and batch you ship, or give a latency budget"
        )

    def rows(self) -> list[list[str]]:
        """``[name, params, MACs, (ms,) accuracy %]`` for before and after (accuracy "-" if
        unscored; milliseconds only when latency was asked for)."""
        out = []
        for name, r in (("before", self.before), ("after", self.after)):
            acc = "-" if r.accuracy is None else f"{100 * r.accuracy:.2f}"
            ms = [f"{r.latency_ms:.3g}"] if self.latency is not None else []
            out.append([name, _short(r.params), _short(r.macs), *ms, acc])
        return out

    def table(self) -> str:
        """The before/after table (markdown, aligned for a terminal)."""
        ms = ["ms"] if self.latency is not None else []
        cells = [["", "params", "MACs", *ms, "acc %"], *self.rows()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]

        def line(row: list[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])

    def summary(self) -> list[str]:
        """The size reached and the budget's verdict, then the measured speed-up (when
        latency was asked for): the lines every command prints."""
        head = (
            f"{self.method}: {self.mac_ratio:.1%} of the MACs, {self.param_ratio:.1%} of the params"
        )
        if self.budget is not None:
            verdict = "met" if self.met_budget else "missed"
            head += f" (budget {self.budget.metric}={self.budget.value:g}: {verdict})"
        lines = [head]
        if self.speedup is not None:
            lines.append(
                f"speed-up {self.speedup:.2f}x measured ({self.latency.describe()}); "
                f"ideal 1/MAC ratio {1 / self.mac_ratio:.2f}x"
            )
        return lines

    def __str__(self) -> str:
        lines = [*self.summary(), self.table(), "done: " + "; ".join(self.done or ["nothing"])]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (widths of low rank become lists)."""
        return {
            "method": self.method,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "widths": {k: list(v) if isinstance(v, tuple) else v for k, v in self.widths.items()},
            "done": list(self.done),
            "budget": None if self.budget is None else self.budget.to_dict(),
            "config": dict(self.config),
            "latency": None if self.latency is None else self.latency.to_dict(),
        }
