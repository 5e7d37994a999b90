"""Plots of the command line: accuracy against MACs, a search log, layer ranks (matplotlib,
no screen)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["plot_accuracy_vs_macs", "plot_layer_ranks", "plot_search_log"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_accuracy_vs_macs(
    curves: Mapping[str, Sequence[tuple[float, float]]], path: str | Path, title: str
) -> Path:
    """One line per method through its ``(MAC fraction, accuracy)`` points; writes a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label, points in curves.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot([100 * x for x in xs], [100 * y for y in ys], marker="o", label=label)
    ax.set_xlabel("MACs kept (% of the trained model)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(plt, fig, path)


def plot_search_log(
    log: Sequence[Mapping[str, float]], target: float, tolerance: float, path: str | Path
) -> Path:
    """Expected and argmax MACs (with the target band) and val accuracy per search epoch."""
    plt = _pyplot()
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
    return _save(plt, fig, path)


def plot_layer_ranks(ranks: Mapping[str, object], path: str | Path, title: str) -> Path:
    """Bars of each layer's rank ratio, in network order."""
    plt = _pyplot()
    names = list(ranks)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.14 * len(names) + 2), 3.8), dpi=80)
    ax.bar(range(len(names)), [ranks[n].ratio for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_ylabel("rank ratio (rank / channels)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)
