"""INN conversion on wide layers: channel ordering with exact and with estimated distances.

Ordering a group of n channels with d features needs all n² L1 distances: O(n² d) work,
minutes on one core for the 4096-wide classifiers of alexnet and VGG. Past n² d = 2e9,
`anywidth.integral.ordering.sketch_columns` estimates the distances from
k = max(256, 2e9 / n²) columns drawn in proportion to their spread (unbiased), so the cost
becomes O(n d + n² k), and the local search stays O(n²).

Part 1 times `channel_order` on structured rows (channels at random points of a smooth curve
in R^d plus noise, d = 3n as for a linear layer's row and column) for n = 512 … 4096, with
exact distances where that takes under a few minutes, and compares the path lengths.
Part 2 times `to_integral` on torchvision models with wide layers (random weights, 224×224),
and once with exact distances on alexnet.

Run alone (timings): .venv/bin/python benchmarks/integral_ordering_wide.py
Writes benchmarks/results/integral_ordering_wide.{md,csv}.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import write_table

from anywidth.integral import ordering, to_integral
from anywidth.models.external import load_model_spec

SIZES = (512, 1024, 2048, 4096)
EXACT_UP_TO = 2048  # exact distances beyond this take minutes
MODELS = ("alexnet", "vgg16", "vit_b_32", "convnext_base")


def curve_rows(n: int, d: int, seed: int = 0, noise: float = 0.3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=gen)
    freqs = torch.rand(8, d, generator=gen) * 6
    phase = torch.rand(8, d, generator=gen) * 6.28
    amp = torch.randn(8, d, generator=gen) / 8
    rows = torch.zeros(n, d)
    for j in range(8):  # (n, d) one frequency at a time: small peak memory
        rows += amp[j] * torch.sin(t[:, None] * freqs[j] * 3.14 + phase[j])
    return rows + noise * rows.std() * torch.randn(n, d, generator=gen)


def timed(fn):
    began = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - began


def order_with(rows: torch.Tensor, exact_work: float) -> tuple[torch.Tensor, float]:
    saved = ordering.EXACT_WORK
    ordering.EXACT_WORK = exact_work
    try:
        return timed(lambda: ordering.channel_order(rows))
    finally:
        ordering.EXACT_WORK = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n in args.sizes:
        feats = curve_rows(n, 3 * n)
        identity = ordering.path_length(feats, torch.arange(n))
        path, seconds = order_with(feats, ordering.EXACT_WORK)
        length = ordering.path_length(feats, path)
        exact_s, vs_exact = "–", "–"
        if n <= EXACT_UP_TO:
            exact, exact_s = order_with(feats, float("inf"))
            vs_exact = f"{length / ordering.path_length(feats, exact):.4f}"
            exact_s = f"{exact_s:.1f}"
        sketched = n * n * 3 * n > ordering.EXACT_WORK
        rows.append(
            [f"channel_order n={n} d={3 * n}", "estimated" if sketched else "exact",
             f"{seconds:.1f}", exact_s, f"{length / identity:.4f}", vs_exact]
        )  # fmt: skip
        print(rows[-1], flush=True)
    for name in args.models:
        model, x = load_model_spec(f"torchvision:{name}")
        widest = max(m.weight.shape[0] for m in model.modules() if hasattr(m, "weight") and
                     m.weight is not None and m.weight.dim() > 1)  # fmt: skip
        _, seconds = timed(lambda m=model, x=x: to_integral(m, x))
        exact_s = "–"
        if name == "alexnet":
            saved = ordering.EXACT_WORK
            ordering.EXACT_WORK = float("inf")
            try:
                _, exact_s = timed(lambda m=model, x=x: to_integral(m, x))
            finally:
                ordering.EXACT_WORK = saved
            exact_s = f"{exact_s:.1f}"
        rows.append([f"to_integral torchvision:{name} (widest {widest})", "default",
                     f"{seconds:.1f}", exact_s, "–", "–"])  # fmt: skip
        print(rows[-1], flush=True)
    headers = ["case", "distances", "seconds", "seconds, exact", "path / identity",
               "path / exact path"]  # fmt: skip
    notes = (
        "One thread. `path / identity`: total variation of the found order over the given "
        "(random) order; `path / exact path`: over the path found with exact distances "
        "(1.0 = as short). Complexity: exact distances O(n² d), estimated O(n d + n² k) with "
        "k = max(256, 2e9 / n²); the path search O(n²) time and memory either way."
    )
    write_table("integral_ordering_wide", headers, rows, notes)


if __name__ == "__main__":
    main()
