"""`anywidth demo`: the main job on the embedded digits data.

Trains a resnet20 on scikit-learn's bundled digits, then makes it smaller at 75/50/35/25%
of its MACs without fine-tuning the weights for a budget, eight ways: L1 pruning, low-rank
decomposition (uniform SVD and ALDS), the INN resampled, the INN resampled after partition
tuning, slimmable training (trained once with random widths, each width keeps the first
channels), the INN trained once with the same loop and epochs then resampled, and that
trained INN resampled after partition tuning. Every smaller model gets
its BatchNorm statistics recalibrated. Prints one table and writes it with a plot of
accuracy against MACs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from anywidth.cli._plot import plot_accuracy_vs_macs
from anywidth.cli._table import format_table, human
from anywidth.data import make_loaders
from anywidth.integral import IntegralConfig, to_integral
from anywidth.integral.training import WidthTrainConfig, train_integral_
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.lowrank import LowRankConfig, decompose
from anywidth.measure import Report, evaluate, profile
from anywidth.models import create_model
from anywidth.pruning import PruneConfig, prune, recalibrate_bn
from anywidth.slim import train_any_width
from anywidth.train import TrainConfig, train_

__all__ = ["add_demo"]


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train resnet20 on the bundled digits and report it")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--inn-epochs", type=int, default=20, help="width-random training (slimmable and INN)"
    )
    p.add_argument("--tune-steps", type=int, default=100, help="partition tuning per budget")
    p.add_argument("--out", default="runs/demo", help="folder for the checkpoint and tables")
    p.set_defaults(run=run_demo)


BUDGETS = (1.0, 0.75, 0.5, 0.35, 0.25)
HEADERS = ["model", "params", "MACs", "latency ms (batch 1)", "acc % as is", "acc % + BN recal"]


def _row(label: str, report: Report, raw: float | None = None) -> list[str]:
    return [
        label,
        human(report.params),
        human(report.macs),
        f"{report.latency_ms:.2f}",
        f"{100 * (raw if raw is not None else report.accuracy):.2f}",
        f"{100 * report.accuracy:.2f}",
    ]


def _measured(label, small, example, loaders, curves, budget, raw=None) -> list[str]:
    """Recalibrate, profile, record the point on the method's curve, return the table row."""
    raw = evaluate(small, loaders.test)["accuracy"] if raw is None else raw
    fixed = recalibrate_bn(small, loaders.train, batches=20)
    report = profile(fixed, example, loader=loaders.test)
    curves.setdefault(label, []).append((budget, report.accuracy))
    return _row(f"{label} {budget:.0%}", report, raw)


def _pruning_rows(model, example, loaders, curves) -> list[list[str]]:
    """L1 pruning at each budget: as pruned, then BN recalibrated."""
    rows = []
    for budget in BUDGETS[1:]:
        small, _ = prune(model, example, PruneConfig(target_macs=budget, importance="l1"))
        rows.append(_measured("L1 pruning", small, example, loaders, curves, budget))
    return rows


def _lowrank_rows(model, example, loaders, curves) -> list[list[str]]:
    """Uniform-rank SVD and ALDS low-rank decompositions at each MAC budget (data-aware)."""
    rows = []
    for method, label in (("svd", "low rank, uniform SVD"), ("alds", "low rank, ALDS")):
        for budget in BUDGETS[1:]:
            config = LowRankConfig(method=method, target_macs=budget)
            small, _ = decompose(model, example, config, data=loaders.train)
            rows.append(_measured(label, small, example, loaders, curves, budget))
    return rows


def _slimmable_rows(model, example, loaders, curves, args) -> list[list[str]]:
    """Slimmable training (keep-first widths, same loop and epochs as the INN's)."""
    print(f"slimmable training with random widths for {args.inn_epochs} epochs ...", flush=True)
    config = TrainConfig(epochs=args.inn_epochs, lr=0.02, weight_decay=5e-4, seed=args.seed)
    width = WidthTrainConfig(method="slice", min_ratio=0.3, seed=args.seed)
    slim, _ = train_any_width(model, example, loaders, config, width)
    slim.eval()
    rows = []
    for budget in BUDGETS[1:]:
        small = slim.resample(target_macs=budget)
        rows.append(_measured("slimmable, widths random", small, example, loaders, curves, budget))
    return rows


def _integral_rows(model, example, loaders, curves, args) -> list[list[str]]:
    """INN resampled; after partition tuning; trained with random widths, then resampled."""
    inn = to_integral(model, example, IntegralConfig())
    rows = []
    for budget in BUDGETS[1:]:
        plan = inn.width_plan(target_macs=budget)
        rows.append(_measured("INN", inn.resample(plan), example, loaders, curves, budget))
    print("tuning INN partitions ...", flush=True)
    for budget in BUDGETS[1:]:
        plan = inn.width_plan(target_macs=budget)
        tuned = tune_partition(inn, plan, loaders.train, TuneConfig(steps=args.tune_steps))
        small = tuned.resample(plan)
        rows.append(_measured("INN + partition tuning", small, example, loaders, curves, budget))
    print(f"training the INN with random widths for {args.inn_epochs} epochs ...", flush=True)
    config = TrainConfig(epochs=args.inn_epochs, lr=0.02, weight_decay=5e-4, seed=args.seed)
    width = WidthTrainConfig(method="integral", min_ratio=0.3, seed=args.seed)
    train_integral_(inn, loaders, config, width)
    for budget in BUDGETS[1:]:
        small = inn.resample(target_macs=budget)
        rows.append(
            _measured("INN trained, widths random", small, example, loaders, curves, budget)
        )
    print("tuning the trained INN's partitions ...", flush=True)
    for budget in BUDGETS[1:]:
        plan = inn.width_plan(target_macs=budget)
        tuned = tune_partition(inn, plan, loaders.train, TuneConfig(steps=args.tune_steps))
        small = tuned.resample(plan)
        label = "INN trained + partition tuning"
        rows.append(_measured(label, small, example, loaders, curves, budget))
    return rows


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    loaders = make_loaders("digits", batch_size=64, seed=args.seed)
    kwargs = {"num_classes": loaders.num_classes, "in_channels": loaders.in_channels}
    torch.manual_seed(args.seed)  # the initial weights too: one --seed, one run
    model = create_model("resnet20", **kwargs)
    config = TrainConfig(epochs=args.epochs, lr=0.1, weight_decay=5e-4, seed=args.seed)
    print(f"training resnet20 on digits for {args.epochs} epochs ...", flush=True)
    start = time.perf_counter()
    train_(
        model,
        loaders,
        config,
        checkpoint_dir=out,
        model_name="resnet20",
        model_kwargs=kwargs,
        checkpoint_extra={"data": {"name": "digits", "seed": args.seed}},
    )
    seconds = time.perf_counter() - start
    example = next(iter(loaders.test))[0][:1]
    report = profile(model, example, loader=loaders.test, name="resnet20")
    print(f"trained in {seconds:.0f} s; checkpoint {out / 'last.safetensors'}", flush=True)
    print("pruning without fine-tuning ...", flush=True)
    curves: dict[str, list[tuple[float, float]]] = {}
    rows = [_row("resnet20 (trained)", report)]
    rows += _pruning_rows(model, example, loaders, curves)
    print("low-rank decomposition without fine-tuning ...", flush=True)
    rows += _lowrank_rows(model, example, loaders, curves)
    rows += _slimmable_rows(model, example, loaders, curves, args)
    rows += _integral_rows(model, example, loaders, curves, args)
    for points in curves.values():
        points.append((1.0, report.accuracy))
    table = format_table(HEADERS, rows)
    print(f"\ntest accuracy on {len(loaders.test.dataset)} digits; weights not fine-tuned\n")
    print(table)
    (out / "demo.md").write_text(table + "\n")
    plot = plot_accuracy_vs_macs(curves, out / "accuracy_vs_macs.png", "resnet20 on digits")
    print(f"\ntable: {out / 'demo.md'}  plot: {plot}")
    return 0
