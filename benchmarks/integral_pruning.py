"""Pruning without fine-tuning: INN variants against pruning baselines, same model, same budgets.

For resnet20 and resnet56 trained on the bundled digits, at 75/50/35/25% of the MACs:

- Torch-Pruning magnitude (L1) pruning, as pruned and with BatchNorm recalibration;
- anywidth L1 pruning + recalibration;
- the equal-budget control: L1 + recalibration + the same number of optimiser steps as
  partition tuning spends, on BatchNorm γ/β only (weights frozen), then recalibration;
- the INN (converted, channels ordered) resampled at the budget;
- the INN resampled after partition tuning (grids + BatchNorm γ/β functions, weights frozen);
- the INN trained once with random widths (sandwich rule + in-place distillation), then
  resampled at each budget, as it is and after partition tuning for that budget.

Every model is measured as it comes out ("as is") and after BatchNorm recalibration on 20
training batches. No row fine-tunes weights for its budget; the trained INN was trained once
for all budgets.

Run: .venv/bin/python benchmarks/integral_pruning.py [--models resnet20 resnet56]
"""

from __future__ import annotations

import argparse

import torch
from _common import trained, write_table
from pruning_vs_torch_pruning import torch_pruning_to_budget
from torch import nn

from anywidth.integral import IntegralConfig, to_integral
from anywidth.integral.training import WidthTrainConfig, train_integral_
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.measure import count_macs, count_params, evaluate
from anywidth.pruning import PruneConfig, prune, recalibrate_bn
from anywidth.train import TrainConfig
from anywidth.train.tune import tune_

BUDGETS = (0.75, 0.5, 0.35, 0.25)


def row(model_name, method, budget, small, x, full_macs, loaders):
    raw = evaluate(small, loaders.test)["accuracy"]
    recal = evaluate(recalibrate_bn(small, loaders.train, batches=20), loaders.test)["accuracy"]
    return [
        model_name,
        method,
        f"{budget:.0%}",
        f"{count_macs(small, x) / full_macs:.1%}",
        count_params(small),
        f"{100 * raw:.1f}",
        f"{100 * recal:.1f}",
    ]


def control(model, small, loaders, steps: int) -> nn.Module:
    """L1-pruned + recalibrated, then `steps` Adam steps on BatchNorm γ/β only."""
    fixed = recalibrate_bn(small, loaders.train, batches=20)
    affine = [
        p for m in fixed.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for p in m.parameters()
    ]  # fmt: skip
    tune_(fixed, affine, loaders.train, steps=steps, lr=1e-2, teacher=model)
    return fixed


def run_model(name: str, epochs: int, steps: int, inn_epochs: int) -> list[list[object]]:
    model, loaders = trained(name, epochs=epochs)
    x = next(iter(loaders.test))[0][:1]
    full_macs = count_macs(model, x)
    rows = [row(name, "unpruned", 1.0, model, x, full_macs, loaders)]
    inn = to_integral(model, x, IntegralConfig())
    for budget in BUDGETS:
        tp_small, _, _ = torch_pruning_to_budget(model, x, budget, global_pruning=False)
        rows.append(row(name, "Torch-Pruning L1", budget, tp_small, x, full_macs, loaders))
        small, _ = prune(model, x, PruneConfig(target_macs=budget))
        rows.append(row(name, "anywidth L1", budget, small, x, full_macs, loaders))
        tuned_bn = control(model, small, loaders, steps)
        rows.append(row(name, f"control: L1 + BN γ/β {steps} steps", budget, tuned_bn, x,
                        full_macs, loaders))  # fmt: skip
        plan = inn.width_plan(target_macs=budget)
        rows.append(row(name, "INN resampled", budget, inn.resample(plan), x, full_macs, loaders))
        tuned = tune_partition(inn, plan, loaders.train, TuneConfig(steps=steps))
        rows.append(row(name, f"INN + partition tuning {steps} steps", budget,
                        tuned.resample(plan), x, full_macs, loaders))  # fmt: skip
    config = TrainConfig(epochs=inn_epochs, lr=0.02, weight_decay=5e-4)
    train_integral_(inn, loaders, config, WidthTrainConfig(min_ratio=0.3))
    for budget in BUDGETS:
        plan = inn.width_plan(target_macs=budget)
        rows.append(row(name, f"INN trained {inn_epochs} ep., random widths", budget,
                        inn.resample(plan), x, full_macs, loaders))  # fmt: skip
        tuned = tune_partition(inn, plan, loaders.train, TuneConfig(steps=steps))
        rows.append(row(name, f"INN trained {inn_epochs} ep. + partition tuning {steps} steps",
                        budget, tuned.resample(plan), x, full_macs, loaders))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100, help="tuning steps (both kinds)")
    parser.add_argument("--inn-epochs", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for name in args.models:
        rows += run_model(name, args.epochs, args.steps, args.inn_epochs)
    headers = ["model", "method", "target MACs", "MACs", "params", "acc % as is"]
    headers.append("acc % + BN recal")
    notes = (
        "Digits test split, no weight fine-tuning for any budget. Goal (issue 4): the best INN "
        "variant beats the control at 35% and 25% MACs, is within one test image of it at 75% "
        "and 50%, and keeps >= 97% at 25% MACs. One run, one seed, 359 test images: one "
        "image is 0.28 points, and runs of the same code differ by a few points (CPU "
        "training is not bit-reproducible), so a gap of one or two images is a tie."
    )
    print(write_table("integral_pruning", headers, rows, notes).read_text())


if __name__ == "__main__":
    main()
