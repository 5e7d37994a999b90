"""`anywidth slim`: train a checkpoint once to run at any width by keeping the first channels.

Sorts every channel group by L1 importance, trains with random widths (sandwich rule,
in-place distillation; `anywidth.slim.train_any_width`) and writes the full-width model as
an ordinary checkpoint (``anywidth eval`` reads it) that records ``extra["slimmable"]``, so
``anywidth resample`` cuts it to any budget by keeping the first channels.
"""

from __future__ import annotations

import argparse

from anywidth.cli._options import add_data_options, checked_out, data_options
from anywidth.cli._table import format_table
from anywidth.cli._widths import budget_rows
from anywidth.compression.pipeline import open_checkpoint
from anywidth.slim import WidthTrainConfig, train_any_width
from anywidth.train import save_checkpoint
from anywidth.train.distributed import processes

__all__ = ["add_slim"]

_REPORT_MACS = (1.0, 0.75, 0.5, 0.25, 0.1)  # 1.0: the full width, recalibrated too


def add_slim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "slim",
        help="train a checkpoint to run at any width (slimmable: keep the first channels)",
        description=(
            "Sort channels by importance and train with random widths (sandwich rule, "
            "in-place distillation). The result is an ordinary checkpoint; `anywidth "
            "resample` cuts it to any budget."
        ),
    )
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by anywidth")
    p.add_argument("--out", required=True, help="the slimmable checkpoint (.safetensors)")
    p.add_argument("--train-epochs", type=int, default=6, help="epochs of random-width training")
    lr_help = "learning rate (default: SGD 0.02; Adam 1e-4 for super-resolution)"
    p.add_argument("--lr", type=float, default=None, help=lr_help)
    p.add_argument("--min-ratio", type=float, default=0.3, help="smallest width in training")
    add_data_options(p, default=None)
    p.set_defaults(run=run_slim, distributed=True)


def run_slim(args: argparse.Namespace) -> int:
    out = checked_out(args.out, (".safetensors",))
    if args.train_epochs < 1:
        raise ValueError(f"--train-epochs {args.train_epochs} must be >= 1")
    source = open_checkpoint(args.checkpoint, data_options(args))
    scorer = source.scorer
    config = scorer.task.train_config(args.train_epochs, args.batch_size, args.seed, args.lr,
                                      fine_tune=True)  # fmt: skip
    width = WidthTrainConfig(method="slice", min_ratio=args.min_ratio, seed=args.seed)
    slim, _ = train_any_width(source.model.eval(), source.example, source.loaders, config,
                              width, task=scorer.task)  # fmt: skip
    if not processes().is_main:
        return 0  # rank 0 reports and writes; the other ranks trained the same weights
    slim.eval()
    rows, metrics = budget_rows(slim, source, _REPORT_MACS)
    extra = {"data": source.data, "slimmable": {"min_ratio": args.min_ratio}}
    save_checkpoint(out, slim.model, metrics=metrics, extra=extra)
    print(format_table(["width", "params", "MACs", f"{scorer.label} (BN recal)"], rows))
    print(f"wrote {out}")
    return 0
