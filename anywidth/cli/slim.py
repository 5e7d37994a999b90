"""`anywidth slim`: train a checkpoint once to run at any width by keeping the first channels.

Sorts every channel group by L1 importance, trains with random widths (sandwich rule,
in-place distillation; `anywidth.slim.train_any_width`) and writes the full-width model as
an ordinary checkpoint (``anywidth eval`` reads it) that records ``extra["slimmable"]``, so
``anywidth resample`` cuts it to any budget by keeping the first channels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.cli._score import Scorer, scorer_for
from anywidth.cli._table import format_table, human
from anywidth.measure import count_macs, count_params
from anywidth.slim import SlimmableModel, WidthTrainConfig, to_slimmable, train_any_width
from anywidth.train import load_model, recalibrate_bn, save_checkpoint
from anywidth.train.distributed import processes

__all__ = ["add_slim", "load_slimmable"]

_REPORT_MACS = (0.75, 0.5, 0.25, 0.1)


def add_slim(sub: argparse._SubParsersAction) -> None:
    from anywidth.cli.commands import add_data_options

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
    from anywidth.cli.commands import loaders_for_checkpoint
    from anywidth.cli.integral import _data_record, fine_tune_config

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: use a .safetensors file name")
    if args.train_epochs < 1:
        raise ValueError(f"--train-epochs {args.train_epochs} must be >= 1")
    model, meta = load_model(args.checkpoint)
    loaders = loaders_for_checkpoint(args, meta)
    example = next(iter(loaders.test))[0][:1]
    scorer = scorer_for(model)
    config = fine_tune_config(scorer, args, args.train_epochs)
    width = WidthTrainConfig(method="slice", min_ratio=args.min_ratio, seed=args.seed)
    slim, _ = train_any_width(model.eval(), example, loaders, config, width,
                              loss=scorer.loss, metric=scorer.metric)  # fmt: skip
    if not processes().is_main:
        return 0  # rank 0 reports and writes; the other ranks trained the same weights
    slim.eval()
    rows, metrics = width_rows(slim, example, loaders, scorer)
    extra = {"data": _data_record(args, meta), "slimmable": {"min_ratio": args.min_ratio}}
    save_checkpoint(out, slim.model, metrics=metrics, extra=extra)
    print(format_table(["width", "params", "MACs", f"{scorer.label} (BN recal)"], rows))
    print(f"wrote {out}")
    return 0


def width_rows(
    slim: SlimmableModel, example, loaders, scorer: Scorer | None = None
) -> tuple[list, dict]:
    """Rows for full width and each `_REPORT_MACS` budget (recalibrated), and the metrics."""
    scorer = scorer or scorer_for(slim.model)
    key = f"test_{scorer.metric.name}"
    rows, metrics = [], {}
    for target in (1.0, *_REPORT_MACS):
        small = recalibrate_bn(slim.resample(target_macs=target), loaders.train, batches=20)
        score = scorer(small, loaders.test)
        label = "full" if target == 1.0 else f"{target:.0%} MACs"
        macs = count_macs(small, example)
        rows.append([label, human(count_params(small)), human(macs), scorer.show(score)])
        metrics[f"{key}_{target:.0%}_macs".replace("%", "pct")] = score
    return rows, metrics


def load_slimmable(path: str | Path, example) -> tuple[SlimmableModel, dict]:
    """A checkpoint written by `anywidth slim` as a `SlimmableModel` (already sorted)."""
    model, meta = load_model(path)
    return to_slimmable(model.eval(), example, sort=False), meta
