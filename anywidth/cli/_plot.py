"""Accuracy-against-MACs plots for the command line and benchmarks (matplotlib, no screen)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["plot_accuracy_vs_macs", "plot_search_log"]


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


def plot_search_log(
    log: Sequence[Mapping[str, float]], target: float, tolerance: float, path: str | Path
) -> Path:
    """Expected and argmax MACs (with the target band) and val accuracy per search epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in log]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot(epochs, [100 * e["expected_macs"] for e in log], marker="o", label="expected MACs")
    ax.plot(epochs, [100 * e["argmax_macs"] for e in log], marker="s", label="argmax MACs")
    ax.axhline(100 * target, color="grey", linestyle="--", label="target")
    low, high = 100 * (target - tolerance), 100 * (target + tolerance)
    ax.axhspan(low, high, color="grey", alpha=0.15, label="band")
    ax.set_xlabel("search epoch")
    ax.set_ylabel("MACs (% of the trained model)")
    acc = ax.twinx()
    acc.plot(epochs, [100 * e["val_accuracy"] for e in log], color="tab:green", marker="^")
    acc.set_ylabel("val accuracy of the argmax shape (%)", color="tab:green")
    ax.set_title("TAS search")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
