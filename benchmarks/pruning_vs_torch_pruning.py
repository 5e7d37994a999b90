"""anywidth's structured pruning against Torch-Pruning, on the same trained model, same budgets.

For resnet20 and resnet56 trained on the bundled digits, and for each MAC budget, both
libraries prune with L1 magnitude importance; accuracy is measured straight after pruning
(no fine-tuning) and after BatchNorm recalibration (20 training batches), with params,
MACs, latency (batch 1, 1 thread, median of 50) and the time to prune.

Torch-Pruning has no "hit this MAC target" call: its pruning ratio is per channel. To give
it the same budget, this script bisects its ratio until the pruned model's MACs are within
2% of the target; the reported time is one prune at the ratio found, and the `tries`
column counts the prunes the search needed. anywidth meets the budget in one call.

Run: .venv/bin/python benchmarks/pruning_vs_torch_pruning.py [--models resnet20 resnet56]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch_pruning as tp
from _common import trained, write_table

from anywidth.measure import count_macs, count_params, evaluate, latency
from anywidth.pruning import PruneConfig, prune, recalibrate_bn

BUDGETS = (0.75, 0.5, 0.35, 0.25)


def torch_pruning_step(model, x, ratio: float, global_pruning: bool):
    """One Torch-Pruning magnitude (L1) prune of a copy of ``model``."""
    work = copy.deepcopy(model)
    pruner = tp.pruner.MagnitudePruner(
        work,
        x,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        global_pruning=global_pruning,
        ignored_layers=[work.fc],
    )
    pruner.step()
    return work


def torch_pruning_to_budget(model, x, target: float, global_pruning: bool):
    """Bisect Torch-Pruning's ratio until MACs are within 2% of ``target`` of the original."""
    full = count_macs(model, x)
    lo, hi, tries, best = 0.0, 0.95, 0, None
    while tries < 20:
        ratio = (lo + hi) / 2
        pruned = torch_pruning_step(model, x, ratio, global_pruning)
        tries += 1
        frac = count_macs(pruned, x) / full
        if best is None or abs(frac - target) < abs(best[1] - target):
            best = (ratio, frac)
        if abs(frac - target) <= 0.02 * target:
            break
        lo, hi = (ratio, hi) if frac > target else (lo, ratio)
    start = time.perf_counter()
    pruned = torch_pruning_step(model, x, best[0], global_pruning)
    return pruned, time.perf_counter() - start, tries


def measure(label, budget, small, seconds, tries, x, full_macs, loaders):
    raw = evaluate(small, loaders.test)["accuracy"]
    fixed = recalibrate_bn(small, loaders.train, batches=20)
    recal = evaluate(fixed, loaders.test)["accuracy"]
    return [
        label,
        f"{budget:.0%}",
        f"{count_macs(small, x) / full_macs:.1%}",
        count_params(small),
        f"{latency(fixed, x, repeats=50, threads=1).median_ms:.2f}",
        f"{100 * raw:.1f}",
        f"{100 * recal:.1f}",
        f"{seconds:.2f}",
        tries,
    ]


def run_model(name: str, epochs: int) -> list[list[object]]:
    model, loaders = trained(name, epochs=epochs)
    x = next(iter(loaders.test))[0][:1]
    full_macs = count_macs(model, x)
    base = evaluate(model, loaders.test)["accuracy"]
    rows = [
        [
            f"{name} unpruned",
            "100%",
            "100.0%",
            count_params(model),
            f"{latency(model, x, repeats=50, threads=1).median_ms:.2f}",
            f"{100 * base:.1f}",
            f"{100 * base:.1f}",
            "-",
            "-",
        ]
    ]
    for budget in BUDGETS:
        for ranking in ("global", "local"):
            start = time.perf_counter()
            small, _ = prune(model, x, PruneConfig(target_macs=budget, ranking=ranking))
            seconds = time.perf_counter() - start
            label = f"{name} anywidth L1 {ranking}"
            rows.append(measure(label, budget, small, seconds, 1, x, full_macs, loaders))
        for global_pruning in (False, True):
            small, seconds, tries = torch_pruning_to_budget(model, x, budget, global_pruning)
            label = f"{name} Torch-Pruning L1 {'global' if global_pruning else 'local'}"
            rows.append(measure(label, budget, small, seconds, tries, x, full_macs, loaders))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for name in args.models:
        rows += run_model(name, args.epochs)
    headers = [
        "method",
        "target MACs",
        "MACs",
        "params",
        "latency ms",
        "acc % as pruned",
        "acc % + BN recal",
        "prune s",
        "tries",
    ]
    notes = (
        f"Torch-Pruning {tp.__version__}. Accuracy: digits test split (360 images), no "
        "fine-tuning. 'latency' is wall clock at batch 1, 1 thread, median of 50, after "
        "recalibration. 'tries' = prunes needed to meet the budget (Torch-Pruning's ratio "
        "search; anywidth: 1 call)."
    )
    print(write_table("pruning_vs_torch_pruning", headers, rows, notes).read_text())


if __name__ == "__main__":
    main()
