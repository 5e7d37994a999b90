"""`anywidth integrate`: convert a checkpoint into an integral neural network (INN).

The INN is optionally trained with random widths and its partition tuned, then saved with
`save_integral`; `anywidth resample` cuts it to a budget later. `save_integral` takes
metrics but no ``extra``, so the data record is stored as ``metrics["data"]``
(`anywidth.compression.pipeline.recorded_data` reads it from there).
"""

from __future__ import annotations

import argparse

from anywidth.cli._options import add_data_options, checked_out, data_options
from anywidth.cli._table import format_table, human
from anywidth.cli._widths import budget_rows
from anywidth.cli.hf import add_hf_option, check_source
from anywidth.cli.hf_inn import hf_integrate
from anywidth.compression.pipeline import open_checkpoint
from anywidth.integral import IntegralConfig, save_integral, to_integral
from anywidth.integral.training import WidthTrainConfig, train_integral_
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.measure import count_macs, count_params
from anywidth.train.distributed import processes

__all__ = ["add_integrate"]

# MAC budgets at which `integrate` reports the resampled accuracy.
_REPORT_MACS = (0.75, 0.5, 0.25)


def add_integrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "integrate",
        help="convert a checkpoint into an integral model (any width, resample later)",
        description=(
            "Convert a checkpoint into an integral neural network. --tune-partition moves "
            "the partitions (grids) and BatchNorm scale/shift functions that every width "
            "shares, full width included: it favours the --tune-target-macs budget."
        ),
    )
    p.add_argument("checkpoint", nargs="?", help="a .safetensors checkpoint written by anywidth")
    add_hf_option(p)
    p.add_argument("--out", required=True, help="the integral model, e.g. model.inn.safetensors")
    p.add_argument("--train-epochs", type=int, default=0,
                   help="epochs of random-width training of the INN; to train for many "
                   "widths, `anywidth slim` scores higher at equal epochs")  # fmt: skip
    lr_help = "learning rate for training (default: SGD 0.02; Adam 1e-4 for SR)"
    p.add_argument("--lr", type=float, default=None, help=lr_help)
    p.add_argument("--min-ratio", type=float, default=0.3, help="smallest width in training")
    p.add_argument("--consistency", type=float, default=0.0,
                   help="weight of the |Net(X, P1) - Net(X, P2)| term between two widths in "
                   "training (the INN seed's consistency objective; 0: off)")  # fmt: skip
    p.add_argument("--rule", choices=["trapezoid", "rectangle", "simpson"], default="trapezoid")
    p.add_argument("--no-reorder", action="store_true", help="keep the channel order")
    p.add_argument("--tune-partition", action="store_true",
                   help="tune the shared grids (and BatchNorm γ/β) for --tune-target-macs; "
                   "this changes every width, not only that budget")  # fmt: skip
    p.add_argument("--tune-steps", type=int, default=100)
    p.add_argument("--tune-target-macs", type=float, default=0.5, help="fraction or absolute")
    add_data_options(p, default=None)
    p.set_defaults(run=run_integrate, distributed=True)


def run_integrate(args: argparse.Namespace) -> int:
    if check_source(args, "checkpoint"):
        return hf_integrate(args)
    out = checked_out(args.out, (".safetensors",))
    if args.train_epochs < 0:
        raise ValueError(f"--train-epochs {args.train_epochs} must be >= 0")
    source = open_checkpoint(args.checkpoint, data_options(args))
    config = IntegralConfig(rule=args.rule, reorder=not args.no_reorder, seed=args.seed)
    recorded = source.meta["model"]
    inn = to_integral(source.model, source.example, config, model_name=recorded["name"],
                      model_kwargs=recorded["kwargs"])  # fmt: skip
    scorer = source.scorer
    if args.train_epochs:
        train = scorer.task.train_config(args.train_epochs, args.batch_size, args.seed, args.lr,
                                         fine_tune=True)  # fmt: skip
        width = WidthTrainConfig(min_ratio=args.min_ratio, consistency=args.consistency,
                                 seed=args.seed)  # fmt: skip
        train_integral_(inn, source.loaders, train, width, scorer.task)
        print(_PREFER_SLIM.format(checkpoint=args.checkpoint, epochs=args.train_epochs))
    if args.tune_partition:
        plan = inn.width_plan(target_macs=args.tune_target_macs)
        tune = TuneConfig(steps=args.tune_steps)
        inn = tune_partition(inn, plan, source.loaders.train, tune, task=scorer.task)
    if not processes().is_main:
        return 0  # rank 0 reports and writes; the other ranks trained the same weights
    inn.eval()
    full = inn.resample(1.0)  # exactly the converted model: no recalibration
    score, macs = source.score(full), count_macs(full, source.example)
    rows = [["full", human(count_params(full)), human(macs), scorer.show(score)]]
    budgets, metrics = budget_rows(inn, source, _REPORT_MACS)
    metrics |= {f"test_{scorer.metric.name}": score, "macs": macs, "data": source.data}
    save_integral(inn, out, metrics=metrics)
    print(format_table(["width", "params", "MACs", scorer.label], rows + budgets))
    print(f"wrote {out}")
    return 0


# Measured in benchmarks/results/any_width.md (resnet20, digits and Fashion-MNIST, 3 seeds).
_PREFER_SLIM = (
    "note: at equal epochs, slimmable training matched or beat the INN's random-width training "
    "at every budget measured (benchmarks/results/any_width.md); to train one model for many "
    "widths, try: anywidth slim {checkpoint} --train-epochs {epochs} --out wide.safetensors"
)
