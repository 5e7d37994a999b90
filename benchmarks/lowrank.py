"""Low-rank decomposition against channel pruning and the INN, same model, same params.

For resnet20, resnet56 and vgg11 trained on the bundled digits, at 70/50/30% of the parameters:

- ALDS (rank and slices per layer, `anywidth.lowrank.decompose`, method "alds"), data-aware
  and from the weights alone;
- uniform SVD (one rank ratio for every layer, method "svd"), the same two ways;
- L1 channel pruning (`anywidth.pruning.prune`, importance "l1");
- the INN (converted, channels ordered) resampled at the budget;
- combined: the INN resampled to ``--inn-share`` of the parameters, then ALDS on that to
  the same total budget.

Every model is measured after BatchNorm recalibration (20 training batches, no weight
change) and after the same short fine-tune for every method (``--ft-epochs`` epochs, SGD,
lr ``--lr``, cosine, no warm-up), over 3 seeds: the fine-tune seed (init of nothing, data
order) and, for ALDS, the seed of its random starts. Latency: one thread, medians of
``--repeats`` timed runs after warm-up, in ``--rounds`` rounds in rotating order, the median
over rounds; the unpruned model is timed in the same rounds.

Run: .venv/bin/python benchmarks/lowrank.py [--models resnet20 resnet56 vgg11]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import statistics
import time
from collections.abc import Callable

import torch
from _common import trained, write_table
from torch import nn

from anywidth.integral import to_integral
from anywidth.lowrank import LowRankConfig, decompose
from anywidth.measure import count_macs, count_params, evaluate, latency
from anywidth.pruning import PruneConfig, prune
from anywidth.train import TrainConfig, recalibrate_bn_, train_

BUDGETS = (0.7, 0.5, 0.3)
SEEDS = (0, 1, 2)
METHODS = (
    "ALDS",
    "uniform SVD",
    "ALDS, weights only",
    "uniform SVD, weights only",
    "L1 channel pruning",
    "INN resampled",
    "INN + ALDS",
)
CALIBRATION_BATCHES = 8

log = logging.getLogger("lowrank-bench")


def mean_std(values: list[float]) -> str:
    """``mean ± std`` in percent (sample std over seeds; 0 when all runs agree); the
    value alone for a single seed."""
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.1f}"
    std = statistics.stdev(pct) if len(pct) > 1 else 0.0
    return f"{statistics.mean(pct):.1f} ± {std:.1f}"


def build(method: str, model, inn, x, budget: float, seed: int, inn_share: float, calib):
    """The compressed model and its max relative error (None where undefined)."""
    if method in ("ALDS", "uniform SVD", "ALDS, weights only", "uniform SVD, weights only"):
        kind = "alds" if method.startswith("ALDS") else "svd"
        data = None if method.endswith("weights only") else calib
        config = LowRankConfig(kind, target_params=budget, seed=seed)
        small, rep = decompose(model, x, config, data=data)
        return small, rep.max_error
    if method == "L1 channel pruning":
        small, _ = prune(model, x, PruneConfig(target_params=budget, importance="l1"))
        return small, None
    if method == "INN resampled":
        return inn.resample(target_params=budget), None
    if method == "INN + ALDS":
        narrow = inn.resample(target_params=inn_share)
        # ALDS gets what is left of the total budget, measured on the narrow model.
        rest = budget * count_params(model) / count_params(narrow)
        config = LowRankConfig("alds", target_params=min(rest, 1.0), seed=seed)
        small, rep = decompose(narrow, x, config, data=calib)
        return small, rep.max_error
    raise ValueError(method)


def seeded(method: str) -> bool:
    """Whether the compression itself depends on the seed (ALDS random starts)."""
    return "ALDS" in method


def timed(models: dict[str, nn.Module], inputs: dict[str, torch.Tensor], rounds: int,
          repeats: int) -> dict[tuple[str, str], float]:  # fmt: skip
    """Median latency (ms) per (model key, input key), one thread, rotating order."""
    keys = list(models)
    samples: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        for key in order:
            for name, inp in inputs.items():
                ms = latency(models[key], inp, warmup=5, repeats=repeats, threads=1).median_ms
                samples.setdefault((key, name), []).append(ms)
    return {k: statistics.median(v) for k, v in samples.items()}


def run_model(name: str, args) -> list[list[object]]:
    model, loaders = trained(name, epochs=args.epochs)
    x = next(iter(loaders.test))[0][:1]
    full_params, full_macs = count_params(model), count_macs(model, x)
    full_acc = evaluate(model, loaders.test)["accuracy"]
    inn = to_integral(model, x)
    # one fixed set of calibration batches for every data-aware decomposition
    calib = list(itertools.islice(loaders.train, CALIBRATION_BATCHES))
    fine_tune: Callable[[nn.Module, int], None] = lambda m, s: train_(  # noqa: E731
        m, loaders, TrainConfig(epochs=args.ft_epochs, lr=args.lr, warmup_epochs=0, seed=s)
    )
    results, to_time = [], {"unpruned": model}
    for budget in BUDGETS:
        for method in METHODS:
            t0 = time.perf_counter()
            recal, tuned, errors, first = [], [], [], None
            for seed in args.seeds:
                if seed == 0 or seeded(method):
                    small, err = build(method, model, inn, x, budget, seed, args.inn_share, calib)
                    recalibrate_bn_(small, loaders.train, batches=20)
                    acc = evaluate(small, loaders.test)["accuracy"]
                    first = first or (small, err)
                    errors.append(err)
                base = copy.deepcopy(small)
                recal.append(acc)
                fine_tune(base, seed)
                tuned.append(evaluate(base, loaders.test)["accuracy"])
            small, err = first
            to_time[f"{method}@{budget}"] = small
            errs = [e for e in errors if e is not None]
            results.append({
                "method": method, "budget": budget,
                "params": count_params(small) / full_params,
                "macs": count_macs(small, x) / full_macs,
                "error": f"{statistics.mean(errs):.3f}" if errs else "—",
                "recal": mean_std(recal), "tuned": mean_std(tuned),
            })  # fmt: skip
            last = results[-1]
            log.info("%s %s %.0f%%: %s / %s (%.0fs)", name, method, 100 * budget,
                     last["recal"], last["tuned"], time.perf_counter() - t0)  # fmt: skip
    inputs = {"b64": torch.randn(64, *x.shape[1:]), "b1": x}
    ms = timed(to_time, inputs, args.rounds, args.repeats)
    full = [f"{100 * full_acc:.1f}"] * 2
    full += [f"{ms['unpruned', 'b64']:.2f}", "1.00x", f"{ms['unpruned', 'b1']:.2f}", "1.00x"]
    rows = [[name, "unpruned", "100%", f"{full_params}", "100.0%", "100.0%", "—", *full]]
    for r in results:
        key = f"{r['method']}@{r['budget']}"
        rows.append([
            name, r["method"], f"{r['budget']:.0%}", f"{round(r['params'] * full_params)}",
            f"{r['params']:.1%}", f"{r['macs']:.1%}", r["error"], r["recal"], r["tuned"],
            f"{ms[key, 'b64']:.2f}", f"{ms['unpruned', 'b64'] / ms[key, 'b64']:.2f}x",
            f"{ms[key, 'b1']:.2f}", f"{ms['unpruned', 'b1'] / ms[key, 'b1']:.2f}x",
        ])  # fmt: skip
    return rows


NOTES = """\
Digits test split ({test} images: one image is {one:.2f} points). "acc + BN recal": BatchNorm
statistics re-estimated on 20 training batches, weights untouched. "acc + FT": the same,
then {ft} epochs of SGD (lr {lr}, cosine, no warm-up, weight decay as `TrainConfig`'s
default) — the same budget for every method. Accuracies are mean ± std over seeds
{seeds}: the fine-tune seed (data order) for every method, and also the seed of ALDS's
random starts for the ALDS rows; rows without a seeded compression have std 0 before
fine-tuning. A difference smaller than the spread (or one test image) is a tie.

"ALDS", "uniform SVD" and "INN + ALDS" are data-aware (the library's default when data is
given): each layer is factored as the SVD of W·L, LLᵀ its input covariance on {calib} fixed
training batches (64 images each), so it keeps what matters for its output. "weights only":
the plain SVD of W (`decompose` without data), as in the ALDS paper.

"max rel. error": the largest per-layer relative error of the decomposition (mean over the
seeds), for the low-rank methods only: of the layer's output on the calibration data,
‖(W − Ŵ)L‖₂/‖WL‖₂, for the data-aware rows; of its weight, ‖W − Ŵ‖₂/‖W‖₂, for the
"weights only" rows — the two are not comparable with each other. For "INN + ALDS" it is
ALDS's error against the already-resampled INN. "INN + ALDS": the INN resampled to
{share:.0%} of the parameters, then ALDS on it to the same total budget.

"speed-up": wall clock, the unpruned model's median latency over the row's, at 1 CPU thread,
batch 64 (random 8×8 inputs) and batch 1; each figure is the median over {rounds} rounds
(rotating order) of the median of {repeats} timed forwards after 5 warm-ups. The MAC ratio is
the theoretical figure; factored layers run as two or more convolutions, so their wall clock
can trail it, especially at batch 1. Latencies are of the seed-0 model of each row.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "vgg11"])
    parser.add_argument("--epochs", type=int, default=15, help="training of the base model")
    parser.add_argument("--ft-epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--inn-share", type=float, default=0.85)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training")
    parser.add_argument("--name", default="lowrank", help="results file name (no suffix)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    args = parser.parse_args()
    # One thread by default: on a shared 2-core machine two spinning threads slowed the
    # fine-tunes by up to ~40x.
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(0)
    start = time.perf_counter()
    rows = []
    for name in args.models:
        rows += run_model(name, args)
    _, loaders = trained(args.models[0], epochs=args.epochs)
    test = sum(len(y) for _, y in loaders.test)
    headers = ["model", "method", "target params", "params", "params ratio", "MACs ratio",
               "max rel. error", "acc % + BN recal", f"acc % + FT {args.ft_epochs} ep.",
               "ms b64", "speed-up b64", "ms b1", "speed-up b1"]  # fmt: skip
    notes = NOTES.format(test=test, one=100 / test, ft=args.ft_epochs, lr=args.lr,
                         seeds=", ".join(map(str, args.seeds)), share=args.inn_share,
                         rounds=args.rounds, repeats=args.repeats,
                         calib=CALIBRATION_BATCHES)  # fmt: skip
    notes += f"\nWall time of the whole run: {(time.perf_counter() - start) / 60:.1f} min.\n"
    print(write_table(args.name, headers, rows, notes).read_text())


if __name__ == "__main__":
    main()
