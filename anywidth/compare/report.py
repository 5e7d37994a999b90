"""A `Comparison` as files: a table (CSV and Markdown), a Pareto plot (PNG) and one
self-contained HTML page with both (the plot embedded as base64, no other file needed).

Example:
    >>> paths = write_report(result, "runs/compare", title="resnet20 on digits")
    >>> sorted(paths)
    ['csv', 'html', 'markdown', 'png']
"""

from __future__ import annotations

import base64
import csv
import html
from pathlib import Path

from anywidth.compare.run import Comparison, Row

__all__ = ["HEADERS", "plot_pareto", "table_rows", "write_report"]

HEADERS = ["method", "budget", "val", "test", "params", "MACs %", "ms (full ms)", "speed-up",
           "seconds", "prep s", "note"]  # fmt: skip
"""The table's columns; val and test are the task metric (accuracy in %); "ms (full ms)" the
result's measured latency and, beside it, the full model's timed side by side with it (the
speed-up is their quotient: the full model's time varies from row to row with the load)."""


def _metric(row: Row, value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if percent else f"{value:.2f}"


def table_rows(result: Comparison) -> list[list[str]]:
    """One list of cells per row, the full model first (the cells of `HEADERS`)."""
    best = {id(r) for r in result.best_rows()}
    out = []
    for row in [result.full, *result.rows]:
        if not row.ok:
            out.append([row.method, row.budget, "-", "-", "-", "-", "-", "-", "-", "-",
                        f"skipped: {row.note}"])  # fmt: skip
            continue
        name = f"**{row.method}**" if id(row) in best else row.method
        out.append([name, row.budget, _metric(row, row.val, result.percent),
                    _metric(row, row.test, result.percent), str(row.params),
                    f"{100 * row.mac_ratio:.1f}", _latency(row),
                    f"{row.speedup:.2f}", f"{row.seconds:.1f}", f"{row.prep_seconds:.1f}",
                    row.note])  # fmt: skip
    return out


def _latency(row: Row) -> str:
    return f"{row.latency_ms:.3g} ({row.full_latency_ms:.3g})"


def _markdown(result: Comparison) -> str:
    rows = table_rows(result)
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _legend(result: Comparison) -> str:
    c = result.config
    after = f"{c.tune_steps} tuning steps" + (
        f" and {c.finetune_epochs} fine-tune epochs" if c.finetune_epochs else ""
    )
    return (
        f"val / test: {result.metric} on the validation split (the choice; best in bold) and "
        f"the test split. Every method got {after} after compression (INN: partition "
        "tuning; the others: BatchNorm γ/β distilled from the full model; TAS: distillation "
        "for the fine-tune epochs). speed-up: the full model's measured latency over the "
        f"result's, timed side by side ({c.timing().describe()}); the ideal is 1 / MACs. "
        "seconds: this budget's compression and tuning; prep s: the method's one-off "
        "preparation for all budgets (INN conversion, slimmable training)."
    )


def plot_pareto(result: Comparison, path: str | Path, title: str) -> Path:
    """Test metric against measured latency and against MACs (both as fractions of the full
    model), one line per method, the full model marked; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = 100 if result.percent else 1
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), dpi=110, sharey=True)
    latency = "measured latency (fraction of the full model, log)"
    panels = ((axes[0], lambda r: 1 / r.speedup, latency),
              (axes[1], lambda r: r.mac_ratio, "MACs (fraction of the full model)"))  # fmt: skip
    for ax, x_of, xlabel in panels:
        for method in result.config.methods:
            points = sorted((x_of(r), scale * r.test) for r in result.rows
                            if r.method == method and r.ok)  # fmt: skip
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=method)
        ax.plot([1.0], [scale * result.full.test], marker="*", markersize=14, color="black",
                linestyle="none", label="full model")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_xscale("log")  # a slower result (grouped low-rank factors) can be 10x off
    axes[0].set_ylabel(f"test {result.metric}")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _html(result: Comparison, png: Path, title: str) -> str:
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.strip('*'))}</td>" for c in row) + "</tr>"
        for row in table_rows(result)
    )
    best = "".join(
        f"<li>{html.escape(r.budget)}: <b>{html.escape(r.label)}</b> ({html.escape(r.method)}), "
        f"val {_metric(r, r.val, result.percent)}, test {_metric(r, r.test, result.percent)}"
        "</li>"
        for r in result.best_rows()
    )
    style = ("body{font-family:sans-serif;max-width:75em;margin:auto}table{border-collapse:"
             "collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}")  # fmt: skip
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{style}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"<img alt='Pareto plot' src='data:image/png;base64,{image}'>\n"
        f"<h2>Best per budget</h2><ul>{best}</ul>\n<h2>Every method</h2>\n"
        f"<table><tr>{head}</tr>{body}</table>\n<p>{html.escape(_legend(result))}</p>\n"
        "</body></html>\n"
    )


def write_report(result: Comparison, out: str | Path, title: str = "compare") -> dict[str, Path]:
    """Write ``compare.csv``, ``compare.md``, ``pareto.png`` and ``report.html`` to ``out``.

    Returns:
        Their paths under ``"csv"``, ``"markdown"``, ``"png"`` and ``"html"``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "compare.csv", "markdown": out / "compare.md",
             "png": out / "pareto.png", "html": out / "report.html"}  # fmt: skip
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS)
        writer.writerows([[c.strip("*") for c in r] for r in table_rows(result)])
    paths["markdown"].write_text(f"# {title}\n\n{_markdown(result)}\n\n{_legend(result)}\n")
    plot_pareto(result, paths["png"], title)
    paths["html"].write_text(_html(result, paths["png"], title))
    return paths
