"""Accuracy-against-MACs plots for the command line and benchmarks (matplotlib, no screen)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["plot_accuracy_vs_macs"]


def plot_accuracy_vs_macs(
    curves: Mapping[str, Sequence[tuple[float, float]]], path: str | Path, title: str
) -> Path:
    """One line per method through its ``(MAC fraction, accuracy)`` points; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label, points in curves.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot([100 * x for x in xs], [100 * y for y in ys], marker="o", label=label)
    ax.set_xlabel("MACs kept (% of the trained model)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
