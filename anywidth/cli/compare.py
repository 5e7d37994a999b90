"""`anywidth compare`: every method at every budget from one checkpoint, a front over
`anywidth.compare`.

Load a checkpoint with its data, run each method at each budget with the same tuning steps
(or fine-tune epochs) after compression, print the table and write it (CSV, Markdown), the
Pareto plot, an HTML report and the best model per budget. Rerunning the same command
reads back what is done.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.cli._options import add_data_options, data_options
from anywidth.compare import CompareConfig, compare, method_names, subject_of, write_report
from anywidth.compression.pipeline import open_checkpoint
from anywidth.latency import RUNTIMES

__all__ = ["add_compare"]


def add_compare(sub: argparse._SubParsersAction) -> None:
    default = CompareConfig()
    p = sub.add_parser("compare", help="every method at every budget: table, plot, best model")
    p.add_argument("checkpoint", help="a trained checkpoint written by anywidth")
    p.add_argument("--target-macs", type=float, nargs="*", default=list(default.macs),
                   help="MAC budgets, fractions of the model (default: 0.5 0.25 0.1)")  # fmt: skip
    p.add_argument("--target-latency", type=float, nargs="*", default=[],
                   help="latency budgets, fractions of the measured latency on --runtime, "
                   "--batch, --threads (methods that cannot meet one say so)")  # fmt: skip
    p.add_argument("--methods", nargs="+", default=list(default.methods),
                   help=f"any of {' '.join(method_names())} (default: all)")  # fmt: skip
    after = p.add_mutually_exclusive_group()
    after.add_argument("--tune-steps", type=int, default=None,
                       help=f"tuning steps every method gets after compression (default "
                       f"{default.tune_steps})")  # fmt: skip
    after.add_argument("--finetune-epochs", type=int, default=None,
                       help="instead of tuning, fine-tune every compressed model this long "
                       "(TAS: distils)")  # fmt: skip
    p.add_argument("--slim-epochs", type=int, default=default.slim_epochs,
                   help="width-random training of the slimmable model")  # fmt: skip
    p.add_argument("--search-epochs", type=int, default=default.search_epochs,
                   help="TAS search epochs per budget")  # fmt: skip
    p.add_argument("--runtime", choices=RUNTIMES, default=default.runtime,
                   help="where latency is measured")  # fmt: skip
    p.add_argument("--batch", type=int, default=default.batch, help="latency batch size")
    p.add_argument("--threads", type=int, default=default.threads, help="latency threads")
    p.add_argument("--out", default="runs/compare", help="folder of the results and cache")
    add_data_options(p, default=None)
    p.set_defaults(run=run_compare)


def _config(args: argparse.Namespace) -> CompareConfig:
    tune = args.tune_steps
    if tune is None:
        tune = 0 if args.finetune_epochs else CompareConfig.tune_steps
    return CompareConfig(macs=tuple(args.target_macs), latency=tuple(args.target_latency),
                         methods=tuple(args.methods), tune_steps=tune,
                         finetune_epochs=args.finetune_epochs or 0, slim_epochs=args.slim_epochs,
                         search_epochs=args.search_epochs, seed=args.seed,
                         runtime=args.runtime, batch=args.batch, threads=args.threads)  # fmt: skip


def run_compare(args: argparse.Namespace) -> int:
    config = _config(args)  # checked before the checkpoint is read
    path = Path(args.checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    source = open_checkpoint(path, data_options(args))
    result = compare(subject_of(source), config, args.out)
    name = (source.meta.get("model") or {}).get("name") or path.stem
    paths = write_report(result, args.out, f"{name} on {source.data['name']}")
    print(paths["markdown"].read_text())
    for budget, best in result.best.items():
        print(f"best at {budget}: {best}")
    print(f"plot {paths['png']}  report {paths['html']}")
    return 0
