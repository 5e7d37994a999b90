"""`anywidth demo`: the main job on the embedded digits data (`studies.demo`).

Trains a resnet20 on scikit-learn's bundled digits, makes it smaller at 75/50/35/25% of its
MACs eight ways without fine-tuning, prints one table and writes it with a plot of
accuracy against MACs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.cli._plot import plot_accuracy_vs_macs
from anywidth.cli._table import format_table, human
from anywidth.measure import Report
from studies.demo import DemoConfig, run_demo

__all__ = ["add_demo"]

HEADERS = ["model", "params", "MACs", "latency ms (batch 1)", "acc % as is", "acc % + BN recal"]


def add_demo(sub: argparse._SubParsersAction) -> None:
    default = DemoConfig()
    p = sub.add_parser("demo", help="train resnet20 on the bundled digits and report it")
    p.add_argument("--epochs", type=int, default=default.epochs)
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument("--inn-epochs", type=int, default=default.inn_epochs,
                   help="width-random training (slimmable and INN)")  # fmt: skip
    p.add_argument("--tune-steps", type=int, default=default.tune_steps,
                   help="partition tuning per budget")  # fmt: skip
    p.add_argument("--out", default="runs/demo", help="folder for the checkpoint and tables")
    p.set_defaults(run=run)


def _row(label: str, report: Report, raw: float) -> list[str]:
    return [label, human(report.params), human(report.macs), f"{report.latency_ms:.2f}",
            f"{100 * raw:.2f}", f"{100 * report.accuracy:.2f}"]  # fmt: skip


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    config = DemoConfig(args.epochs, args.seed, args.inn_epochs, args.tune_steps)
    result = run_demo(config, out, say=lambda message: print(message, flush=True))
    print(f"checkpoint {out / 'last.safetensors'}")
    rows = [_row("resnet20 (trained)", result.trained, result.trained.accuracy)]
    rows += [_row(label, report, raw) for label, report, raw in result.rows]
    table = format_table(HEADERS, rows)
    print(f"\ntest accuracy on {result.test_size} digits; weights not fine-tuned\n")
    print(table)
    (out / "demo.md").write_text(table + "\n")
    plot = plot_accuracy_vs_macs(result.curves, out / "accuracy_vs_macs.png", "resnet20 on digits")
    print(f"\ntable: {out / 'demo.md'}  plot: {plot}")
    return 0
