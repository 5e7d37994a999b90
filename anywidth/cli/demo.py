"""`anywidth demo`: the main job on the embedded digits data (`studies.demo`).

Trains a resnet20 on scikit-learn's bundled digits, then compares every method at 50/25/10%
of its MACs with the same tuning steps after compression (`anywidth compare`), prints the
table and writes it with a Pareto plot, an HTML report and the best model per budget.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.compare import write_report
from studies.demo import DemoConfig, run_demo

__all__ = ["add_demo"]


def add_demo(sub: argparse._SubParsersAction) -> None:
    default = DemoConfig()
    p = sub.add_parser("demo", help="train resnet20 on the bundled digits, compare every method")
    p.add_argument("--epochs", type=int, default=default.epochs)
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument("--slim-epochs", type=int, default=default.slim_epochs,
                   help="width-random training of the slimmable model")  # fmt: skip
    p.add_argument("--search-epochs", type=int, default=default.search_epochs,
                   help="TAS search epochs per budget")  # fmt: skip
    p.add_argument("--tune-steps", type=int, default=default.tune_steps,
                   help="tuning steps every method gets after compression")  # fmt: skip
    p.add_argument("--out", default="runs/demo", help="folder for the checkpoint and results")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    config = DemoConfig(args.epochs, args.seed, args.slim_epochs, args.search_epochs,
                        args.tune_steps)  # fmt: skip
    result = run_demo(config, out, say=lambda message: print(message, flush=True))
    print(f"checkpoint {result.checkpoint}")
    paths = write_report(result.comparison, out / "compare", "resnet20 on digits")
    print(paths["markdown"].read_text())
    for budget, best in result.comparison.best.items():
        print(f"best at {budget}: {best}")
    print(f"plot {paths['png']}  report {paths['html']}")
    return 0
