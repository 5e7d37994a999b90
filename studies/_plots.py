"""Figures of the studies (matplotlib without a screen)."""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["plot_rank_study"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rank_study(result, path: str | Path) -> Path:
    """One panel per layer kind: mean rank ratio (± std band) against d_in/d_out."""
    plt = _pyplot()
    kinds = result.config.kinds
    cols = min(2, len(kinds))
    rows = math.ceil(len(kinds) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=80, squeeze=False)
    for ax, kind in zip(axes.flat, kinds, strict=False):
        for act in result.config.activations:
            pts = sorted(
                (p for p in result.points if p.kind == kind and p.activation == act),
                key=lambda p: p.ratio,
            )
            xs = [p.ratio for p in pts]
            means = [p.mean for p in pts]
            ax.plot(xs, means, marker=".", label=act)
            ax.fill_between(
                xs, [p.mean - p.std for p in pts], [p.mean + p.std for p in pts], alpha=0.12
            )
        ax.set_title(kind, fontsize=10)
        ax.set_xlabel("dimension ratio d_in / d_out")
        ax.set_ylabel("rank ratio rank(f(WX)) / d_out")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(kinds) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    cfg = result.config
    tol = "machine eps" if cfg.rtol is None else f"rtol {cfg.rtol:g}"
    fig.suptitle(
        f"Rank study: {cfg.networks} random nets per point, d_out in "
        f"[{cfg.min_out}, {cfg.max_out}], {'BN, ' if cfg.batch_norm else 'no BN, '}"
        f"{cfg.dtype}, {tol}",
        fontsize=9,
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
