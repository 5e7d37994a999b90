"""Plain-text tables for the command line."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["before_after_table", "compression_table", "format_table", "human"]


def human(n: float) -> str:
    """A count in short form: 1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table whose columns line up in a terminal too."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def before_after_table(
    before: tuple[float, float, float],
    after: tuple[float, float, float],
    scorer=None,
) -> str:
    """The (params, MACs, score) of a model before and after a command shrank it; the score
    is accuracy (a fraction) unless a `Scorer` says otherwise (PSNR for super-resolution)."""
    label = scorer.label if scorer is not None else "test acc %"
    show = scorer.show if scorer is not None else (lambda value: f"{100 * value:.2f}")
    rows = [
        [name, human(params), human(macs), show(score)]
        for name, (params, macs, score) in (("before", before), ("after", after))
    ]
    return format_table(["", "params", "MACs", label], rows)


def compression_table(result, scorer) -> str:
    """Params, MACs and test score before and after a
    `anywidth.compression.pipeline.compress_source` run (a `Compression`); where latency was
    measured, the budget's verdict and the measured speed-up below."""
    before, after = result.report.before, result.report.after
    table = before_after_table(
        (before.params, before.macs, result.before),
        (after.params, after.macs, result.after),
        scorer,
    )
    if result.report.latency is None:
        return table
    return "\n".join([table, *result.report.summary()])  # the budget and measured speed-up
