"""`anywidth demo`: the main job on the embedded digits data.

Trains a resnet20 on scikit-learn's bundled digits, then shows its size, speed and
accuracy. The compression methods add their rows to the same table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from anywidth.cli._table import format_table, human
from anywidth.data import make_loaders
from anywidth.measure import Report, evaluate, profile
from anywidth.models import create_model
from anywidth.pruning import PruneConfig, prune, recalibrate_bn
from anywidth.train import TrainConfig, train_

__all__ = ["add_demo"]


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train resnet20 on the bundled digits and report it")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
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


def _pruning_rows(model, example, loaders) -> list[list[str]]:
    """L1 pruning at each budget, without fine-tuning: as pruned, then BN recalibrated."""
    rows = []
    for budget in BUDGETS[1:]:
        small, _ = prune(model, example, PruneConfig(target_macs=budget, importance="l1"))
        raw = evaluate(small, loaders.test)["accuracy"]
        fixed = recalibrate_bn(small, loaders.train, batches=20)
        report = profile(fixed, example, loader=loaders.test)
        rows.append(_row(f"L1 pruning to {budget:.0%} MACs", report, raw))
    return rows


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    loaders = make_loaders("digits", batch_size=64, seed=args.seed)
    kwargs = {"num_classes": loaders.num_classes, "in_channels": loaders.in_channels}
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
    rows = [_row("resnet20 (trained)", report)] + _pruning_rows(model, example, loaders)
    table = format_table(HEADERS, rows)
    print(f"\ntest accuracy on {len(loaders.test.dataset)} digits; no fine-tuning\n")
    print(table)
    (out / "demo.md").write_text(table + "\n")
    return 0
