"""`CompressionReport`: what `anywidth.compress` did, the same for every method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anywidth.budget import Budget
from anywidth.measure import Report

__all__ = ["CompressionReport"]


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
    def met_budget(self) -> bool | None:
        """Whether the result lies within the budget's tolerance (None: no budget)."""
        if self.budget is None:
            return None
        key = self.budget.metric
        return self.budget.met_by(getattr(self.after, key), getattr(self.before, key))

    def rows(self) -> list[list[str]]:
        """``[name, params, MACs, accuracy %]`` for before and after (accuracy "-" if unscored)."""
        out = []
        for name, r in (("before", self.before), ("after", self.after)):
            acc = "-" if r.accuracy is None else f"{100 * r.accuracy:.2f}"
            out.append([name, _short(r.params), _short(r.macs), acc])
        return out

    def table(self) -> str:
        """The before/after table (markdown, aligned for a terminal)."""
        cells = [["", "params", "MACs", "acc %"], *self.rows()]
        widths = [max(len(row[i]) for row in cells) for i in range(4)]

        def line(row: list[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])

    def __str__(self) -> str:
        head = (
            f"{self.method}: {self.mac_ratio:.1%} of the MACs, {self.param_ratio:.1%} of the params"
        )
        if self.budget is not None:
            verdict = "met" if self.met_budget else "missed"
            head += f" (budget {self.budget.metric}={self.budget.value:g}: {verdict})"
        return "\n".join([head, self.table(), "done: " + "; ".join(self.done or ["nothing"])])

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
        }
