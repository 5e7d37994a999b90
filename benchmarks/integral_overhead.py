"""What an Integral Neural Network costs against the plain model it was converted from.

On digits-trained zoo models (see `_common.trained`), on CPU:

1. Training-epoch wall time: (a) the plain model, ordinary cross-entropy; (b) the INN with
   the same cross-entropy at full width (the like-for-like overhead of sampling weights
   from λ every step); (c) the INN with `width_random_loss` (full + smallest + one random
   width, 3 forward/backward passes a step), also divided by those 3 passes.
2. Eval forward under ``torch.no_grad`` (batch 64 and batch 1): the INN at full width
   against the plain model, and the INN at 50% width against ``inn.resample(0.5)``.
3. ``inn.resample(0.5)`` and ``inn.resample(target_macs=0.5)`` wall time (discretize +
   `anywidth.graph.cut` + export), with the INN's tensor cache cleared before every call.
4. ``to_integral`` wall time, channel ordering included (and without it, for the share).

Every time is the median of interleaved repeats after warm-up, with one torch thread by
default. Channel-ordering time and path quality against LKH-3 are in
benchmarks/results/integral_ordering.md (not repeated here).

Writes benchmarks/results/integral_overhead.{md,csv}.

Run: .venv/bin/python benchmarks/integral_overhead.py
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable

import torch
from _common import trained, write_table

from anywidth.integral import IntegralConfig, IntegralModel, to_integral
from anywidth.integral.training import WidthTrainConfig, width_random_loss
from anywidth.train import TrainConfig, train_

HEADERS = ["model", "measurement", "inn_s", "plain_s", "ratio", "goal", "met"]
BATCH1_CALLS = 20  # batch-1 calls timed in a row per turn (a forward takes < 1 ms)
PASSES = 3  # width_random_loss with the default WidthTrainConfig: full + smallest + 1 random


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, calls: int = 1
) -> dict:
    """Median seconds per call of each callable, the callables taking turns (in rotating
    order) so load noise is shared; each turn times ``calls`` calls in a row, so a model
    runs with its weights in cache, as a deployed model does, not evicted by the others."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:  # rotate: no order bias
            fn = fns[key]
            times[key].append(seconds(lambda fn=fn: [fn() for _ in range(calls)]) / calls)
    return {k: statistics.median(v) for k, v in times.items()}


def row(model: str, what: str, inn: float, plain: float | None, goal: float | None) -> list:
    """A table row; ``goal`` is a ratio bound (or, without a plain time, seconds)."""
    value = inn if plain is None else inn / plain
    ratio = "n/a" if plain is None else f"{value:.2f}"
    met = "n/a" if goal is None else ("yes" if value <= goal else "no")
    bound = "—" if goal is None else (f"≤ {goal} s" if plain is None else f"≤ {goal}×")
    plain_s = "n/a" if plain is None else f"{plain:.4g}"
    return [model, what, f"{inn:.4g}", plain_s, ratio, bound, met]


def training_rows(name: str, model, loaders, example, repeats: int) -> list[list]:
    config = TrainConfig(epochs=1, lr=0.02)
    plain = copy.deepcopy(model).train()
    inn_ce = to_integral(copy.deepcopy(model), example).train()
    inn_wr = to_integral(copy.deepcopy(model), example).train()
    loss = width_random_loss(inn_wr, WidthTrainConfig())
    t = interleaved(
        {
            "plain": lambda: train_(plain, loaders.train, config),
            "ce": lambda: train_(inn_ce, loaders.train, config),
            "wr": lambda: train_(inn_wr, loaders.train, config, loss_fn=loss),
        },
        repeats,
    )
    return [
        row(name, "train epoch, plain CE (a)", t["plain"], t["plain"], None),
        row(name, "train epoch, INN CE full width (b) / (a)", t["ce"], t["plain"], 1.3),
        row(name, "train epoch, INN width-random (c) / (a)", t["wr"], t["plain"], None),
        row(name, f"  (c) per pass (÷{PASSES}) / (a)", t["wr"] / PASSES, t["plain"], None),
    ]


def forward_rows(name: str, model, inn: IntegralModel, batch: torch.Tensor, repeats: int):
    rows, diffs = [], []
    plain, inn = model.eval(), inn.eval()
    half, full = inn.resample(0.5).eval(), inn.resample(None).eval()
    twin = copy.deepcopy(plain)  # the same model in freshly allocated tensors
    for x in (batch, batch[:1]):
        b = x.shape[0]

        def at_half(x: torch.Tensor = x):
            with inn.at(0.5):
                return inn(x)

        with torch.no_grad():
            diffs.append(float((inn(x) - plain(x)).abs().max()))
            diffs.append(float((at_half() - half(x)).abs().max()))
            # Full and 50% timed apart: the INN has one skeleton for every width, so
            # alternating widths call by call would re-install its tensors every call.
            fulls = {"inn": lambda x=x: inn(x), "plain": lambda x=x: plain(x)}
            fulls |= {"full": lambda x=x: full(x), "twin": lambda x=x: twin(x)}
            calls = 1 if b > 1 else BATCH1_CALLS
            turns = max(30, repeats // calls)
            t = interleaved(fulls, turns, warmup=5, calls=calls)
            with inn.at(0.5):  # set once, as a deployed model at one width runs
                halves = {"inn_half": lambda x=x: inn(x), "half": lambda x=x: half(x)}
                t |= interleaved(halves, turns, 5, calls)
            t["inn_half_ctx"] = interleaved({"ctx": at_half}, turns, 5, calls)["ctx"]
        rows.append(row(name, f"eval forward, full width, batch {b}", t["inn"], t["plain"], 1.05))
        rows.append(
            row(name, f"  reference: resample(None) / plain, batch {b}", t["full"], t["plain"],
                None)
        )  # fmt: skip
        rows.append(
            row(name, f"  reference: deepcopy(plain) / plain, batch {b}", t["twin"], t["plain"],
                None)
        )  # fmt: skip
        rows.append(
            row(name, f"eval forward, 50% vs resample(0.5), batch {b}", t["inn_half"], t["half"],
                1.05)
        )  # fmt: skip
        rows.append(
            row(name, f"  the same entering `with inn.at(0.5)` per call, batch {b}",
                t["inn_half_ctx"], t["half"], None)
        )  # fmt: skip
    return rows, max(diffs)


def resample_rows(name: str, inn: IntegralModel, repeats: int) -> list[list]:
    def cold(**kwargs) -> Callable[[], object]:
        def call():
            inn.clear_cache()
            return inn.resample(**kwargs)

        return call

    def first() -> object:
        inn.clear_cache()
        inn._export.cutters.clear()  # as on a freshly converted or loaded INN
        return inn.resample(0.5)

    fns = {"ratio": cold(plan=0.5), "macs": cold(target_macs=0.5), "first": first}
    t = interleaved(fns, repeats)
    return [
        row(name, "resample(0.5) + export (cold cache)", t["ratio"], None, 0.1),
        row(name, "resample(target_macs=0.5) + export (cold cache)", t["macs"], None, 0.1),
        row(name, "  first resample of an INN (traces the source)", t["first"], None, None),
    ]


def conversion_rows(name: str, model, example, repeats: int) -> list[list]:
    t = interleaved(
        {
            "ordered": lambda: to_integral(model, example, IntegralConfig()),
            "unordered": lambda: to_integral(model, example, IntegralConfig(reorder=False)),
        },
        repeats,
        warmup=0,
    )
    return [
        row(name, "to_integral incl. channel ordering", t["ordered"], None, None),
        row(name, "to_integral, reorder=False", t["unordered"], None, None),
    ]


def notes(args: argparse.Namespace, load: str, diff: float, elapsed: float) -> str:
    return f"""
inn_s and plain_s are wall-clock seconds, the median of interleaved repeats after warm-up;
ratio = inn_s / plain_s (wall clock, not MACs). Torch threads: {args.threads}. The machine is
shared (load average before the run, 1/5/15 min: {load}), so single numbers are noisy.

- Training: one epoch over the digits train loader (batch 64), `train_` with
  TrainConfig(epochs=1, lr=0.02) and no validation; {args.train_repeats} repeats after one
  warm-up epoch. (a) plain model, cross-entropy; (b) `to_integral(model)` trained with the
  same cross-entropy at full width, the like-for-like overhead (the authors' INN code:
  2.2–2.4×); (c) `width_random_loss(inn, WidthTrainConfig())`: full + smallest (30%) + one
  random width per step; "per pass" divides (c) by its {PASSES} forward/backward passes, an
  optimistic per-pass figure since the narrower passes are cheaper than the full one.
- Eval forward: `torch.no_grad()`, eval mode (the INN runs its cached discretized tensors
  in a resized copy of the source's own modules and checks the shared version counters
  of its λ on every call), batch 64 and batch 1 digits images, {args.forward_repeats}
  repeats after 5 warm-up calls; at batch 1 each repeat times {BATCH1_CALLS} calls in a row
  (steady state, weights in cache) and the models take turns ({args.forward_repeats} //
  {BATCH1_CALLS} turns, at least 30). The "reference" rows time the exported
  `inn.resample(None)` (whatever `Cutter` returns) and a `copy.deepcopy` of the plain
  source model against the plain source model, which `load_model` read from its checkpoint
  into one contiguous block of memory. Latency is measured before the training rows: run
  after them, every tensor made later (any copy, the INN's) was 1.02-1.04x slower at batch 1
  than the loaded model, the INN included (1.05-1.07x for resnet20), an allocator effect the
  deepcopy row exposes.
  The 50% rows compare `inn(x)` inside one `with inn.at(0.5):` block (a model deployed
  at one width) with `inn.resample(0.5)`, timed apart from the full-width rows (steady
  state at one width: no re-install between calls); the row below it enters
  `with inn.at(0.5):` on every call, which also resolves the ratio to a plan each time.
  Largest |output difference| INN vs plain over these checks: {diff:.2e}.
- Resample: `inn.resample(...)` = discretize + `Cutter`;
  `clear_cache()` before every call, {args.repeats} repeats after one warm-up. The INN
  traces and analyses its source once, on its first resample (the "first resample" row
  repeats that cost); later resamples reuse it.
- Conversion: `to_integral(model, x[:1], IntegralConfig())`, {args.conversion_repeats} repeats.
  Channel-ordering time and open-path length against LKH-3 (elkai) for 64..512 channels:
  see benchmarks/results/integral_ordering.md.
- Goals: training (b) ≤ 1.3×, eval forward ≤ 1.05×, resample ≤ 0.1 s; "—"/n/a: no goal.
- Total run time of this script: {elapsed:.0f} s.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-repeats", type=int, default=3)
    parser.add_argument("--forward-repeats", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--conversion-repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    start = time.perf_counter()

    rows, diff = [], 0.0
    for name in args.models:
        model, loaders = trained(name)
        batch = next(iter(loaders.val))[0]  # (64, 1, 8, 8)
        example = batch[:1]
        # Latency first: the training rows churn the allocator, after which tensors made
        # later (the INN's, any copy's) sit less favourably than the loaded model's.
        inn = to_integral(model, example)
        fwd, d = forward_rows(name, model, inn, batch, args.forward_repeats)
        rows += training_rows(name, model, loaders, example, args.train_repeats)
        rows, diff = rows + fwd, max(diff, d)
        if name == "resnet56":
            rows += resample_rows(name, inn, args.repeats)
        rows += conversion_rows(name, model, example, args.conversion_repeats)
    elapsed = time.perf_counter() - start
    path = write_table("integral_overhead", HEADERS, rows, notes(args, load, diff, elapsed))
    print(path.read_text())


if __name__ == "__main__":
    main()
