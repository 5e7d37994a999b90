"""`anywidth integrate` and `anywidth resample`: integral neural networks from the command line.

`integrate` converts a zoo checkpoint into an integral model (INN), optionally trains it with
random widths and tunes its partition, and saves it with `save_integral`. `resample` samples
a saved INN at a MAC budget or a width ratio and writes an ordinary smaller checkpoint (that
`anywidth eval` reads) or an ONNX file.

`save_integral` takes metrics but no ``extra``, so the data record that `eval`-style
commands look for under ``extra["data"]`` is stored as ``metrics["data"]`` in INN files;
`resample` reads it from there.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anywidth.cli._score import Scorer, scorer_for
from anywidth.cli._table import before_after_table, format_table, human
from anywidth.cli.hf import (
    add_hf_option,
    check_source,
    hf_integrate,
    hf_resample,
    hf_source_of,
)
from anywidth.graph import export_onnx
from anywidth.integral import (
    IntegralConfig,
    IntegralModel,
    load_integral,
    save_integral,
    to_integral,
)
from anywidth.integral.training import WidthTrainConfig, train_integral_
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.measure import count_macs, count_params
from anywidth.slim.export import shrink
from anywidth.train import TrainConfig, load_model, recalibrate_bn_, save_checkpoint
from anywidth.train.checkpoint import read_checkpoint
from anywidth.train.distributed import processes

__all__ = ["add_integrate", "add_resample"]

# MAC budgets at which `integrate` reports the resampled accuracy.
_REPORT_MACS = (0.75, 0.5, 0.25)
_RECALIBRATE_BATCHES = 20


def add_integrate(sub: argparse._SubParsersAction) -> None:
    from anywidth.cli.commands import add_data_options

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
    p.add_argument(
        "--train-epochs",
        type=int,
        default=0,
        help="epochs of random-width training of the INN; to train for many widths, "
        "`anywidth slim` (slimmable training) scores higher at equal epochs",
    )
    lr_help = "learning rate for training (default: SGD 0.02; Adam 1e-4 for SR)"
    p.add_argument("--lr", type=float, default=None, help=lr_help)
    p.add_argument("--min-ratio", type=float, default=0.3, help="smallest width in training")
    p.add_argument("--consistency", type=float, default=0.0,
                   help="weight of the |Net(X, P1) - Net(X, P2)| term between two widths in "
                   "training (the INN seed's consistency objective; 0: off)")  # fmt: skip
    p.add_argument("--rule", choices=["trapezoid", "rectangle", "simpson"], default="trapezoid")
    p.add_argument("--no-reorder", action="store_true", help="keep the channel order")
    p.add_argument(
        "--tune-partition",
        action="store_true",
        help="tune the shared grids (and BatchNorm γ/β) for --tune-target-macs; "
        "this changes every width, not only that budget",
    )
    p.add_argument("--tune-steps", type=int, default=100)
    p.add_argument("--tune-target-macs", type=float, default=0.5, help="fraction or absolute")
    add_data_options(p, default=None)
    p.set_defaults(run=run_integrate, distributed=True)


def run_integrate(args: argparse.Namespace) -> int:
    from anywidth.cli.commands import loaders_for_checkpoint

    if check_source(args, "checkpoint"):
        return hf_integrate(args)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: use a .safetensors file name")
    if args.train_epochs < 0:
        raise ValueError(f"--train-epochs {args.train_epochs} must be >= 0")
    model, meta = load_model(args.checkpoint)
    loaders = loaders_for_checkpoint(args, meta)
    example = next(iter(loaders.test))[0][:1]
    config = IntegralConfig(rule=args.rule, reorder=not args.no_reorder, seed=args.seed)
    inn = to_integral(
        model,
        example,
        config,
        model_name=meta["model"]["name"],
        model_kwargs=meta["model"]["kwargs"],
    )
    scorer = scorer_for(model)
    if args.train_epochs:
        train = fine_tune_config(scorer, args, args.train_epochs)
        width = WidthTrainConfig(
            min_ratio=args.min_ratio, consistency=args.consistency, seed=args.seed
        )
        train_integral_(inn, loaders, train, width, scorer.loss, scorer.metric)
        print(_PREFER_SLIM.format(checkpoint=args.checkpoint, epochs=args.train_epochs))
    if args.tune_partition:
        plan = inn.width_plan(target_macs=args.tune_target_macs)
        config = TuneConfig(steps=args.tune_steps)
        inn = tune_partition(inn, plan, loaders.train, config, loss=scorer.loss)
    if not processes().is_main:
        return 0  # rank 0 reports and writes; the other ranks trained the same weights
    inn.eval()
    rows, metrics = _width_table(inn, example, loaders, scorer)
    metrics["data"] = _data_record(args, meta)
    save_integral(inn, out, metrics=metrics)
    print(format_table(["width", "params", "MACs", scorer.label], rows))
    print(f"wrote {out}")
    return 0


# Measured in benchmarks/results/any_width.md (resnet20, digits and Fashion-MNIST, 3 seeds).
_PREFER_SLIM = (
    "note: at equal epochs, slimmable training matched or beat the INN's random-width training "
    "at every budget measured (benchmarks/results/any_width.md); to train one model for many "
    "widths, try: anywidth slim {checkpoint} --train-epochs {epochs} --out wide.safetensors"
)


def fine_tune_config(scorer: Scorer, args: argparse.Namespace, epochs: int) -> TrainConfig:
    """The width-random training run of `integrate` and `slim`: SGD for classifiers, Adam
    (no weight decay) for super-resolution; ``--lr`` when given, else the task's default."""
    lr = scorer.lr if args.lr is None else args.lr
    decay = {} if scorer.optimizer == "sgd" else {"weight_decay": 0.0}
    return TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=lr,
                       optimizer=scorer.optimizer, seed=args.seed, **decay)  # fmt: skip


def _width_table(
    inn: IntegralModel, example: torch.Tensor, loaders, scorer: Scorer
) -> tuple[list, dict]:
    """Rows for full width and each `_REPORT_MACS` budget (recalibrated), and the metrics
    (``test_accuracy``, or ``test_psnr`` for super-resolution, per budget)."""
    key = f"test_{scorer.metric.name}"
    full = inn.resample(1.0)
    macs_full = count_macs(full, example)
    score = scorer(full, loaders.test)
    rows = [["full", human(count_params(full)), human(macs_full), scorer.show(score)]]
    metrics: dict[str, Any] = {key: score, "macs": macs_full}
    for target in _REPORT_MACS:
        small = inn.resample(target_macs=target)
        recalibrate_bn_(small, loaders.train, batches=_RECALIBRATE_BATCHES)
        macs = count_macs(small, example)
        score = scorer(small, loaders.test)
        label = f"{target:.0%} MACs"
        rows.append([label, human(count_params(small)), human(macs), scorer.show(score)])
        metrics[f"{key}_{target:.0%}_macs".replace("%", "pct")] = score
    return rows, metrics


def _data_record(args: argparse.Namespace, meta: dict) -> dict:
    """The data the INN was measured on: the options, else what the checkpoint recorded."""
    recorded = (meta.get("extra") or {}).get("data") or {}
    if args.data is not None:
        return {
            "name": args.data,
            "root": args.data_root,
            "image_size": args.image_size,
            "seed": args.seed,
        }
    return {
        "name": recorded.get("name") or "digits",
        "root": args.data_root or recorded.get("root"),
        "image_size": args.image_size or recorded.get("image_size"),
        "seed": recorded.get("seed", args.seed),
    }


def add_resample(sub: argparse._SubParsersAction) -> None:
    from anywidth.cli.commands import add_data_options

    p = sub.add_parser(
        "resample",
        help="cut an any-width model (integral or slimmable) to a budget or a ratio",
        description=(
            "Sample an integral model (from `anywidth integrate`) or cut a slimmable "
            "checkpoint (from `anywidth slim`) at a budget. By default an INN's partition is "
            "tuned for that plan (--tune-steps, weights frozen) and BatchNorm is recalibrated."
        ),
    )
    p.add_argument("inn", nargs="?", help="a model written by `anywidth integrate` or `slim`")
    add_hf_option(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-macs", type=float, help="fraction (<=1) or absolute MACs")
    target.add_argument("--ratio", type=float, help="the same width ratio for every group")
    p.add_argument("--allocation", choices=["uniform", "global", "rank"], default="uniform")
    p.add_argument("--no-recalibrate", action="store_true", help="skip BatchNorm recalibration")
    p.add_argument("--no-tune", action="store_true", help="skip the INN's partition tuning")
    p.add_argument("--tune-steps", type=int, default=100, help="partition tuning steps")
    p.add_argument("--out", required=True, help="small.safetensors, or small.onnx for ONNX")
    add_data_options(p, default=None)
    p.set_defaults(run=run_resample)


def run_resample(args: argparse.Namespace) -> int:
    recorded = args.inn is not None and Path(args.inn).is_file() and hf_source_of(args.inn)
    if recorded or check_source(args, "inn"):
        # an INN file that `integrate --hf-model` wrote (--hf-model: where its source is
        # now), or an encoder converted now
        return hf_resample(args, recorded or None)
    out = Path(args.out)
    if out.suffix not in (".safetensors", ".onnx"):
        raise ValueError(f"--out {out}: use a .safetensors or .onnx file name")
    wide, data, loaders, example = _load_any_width(args)
    plan_args = {"ratio": args.ratio, "target_macs": args.target_macs}
    plan_args["allocation"] = args.allocation
    full = wide.resample(1.0)
    tune_steps = 0 if args.no_tune else args.tune_steps
    batches = 0 if args.no_recalibrate else _RECALIBRATE_BATCHES
    scorer = scorer_for(full)
    small, report = shrink(wide, loaders.train, **plan_args, tune_steps=tune_steps,
                           recalibrate_batches=batches, loss=scorer.loss)  # fmt: skip
    done = report.done
    before, after = _measure(full, example, loaders), _measure(small, example, loaders)
    print(before_after_table(before, after, scorer))
    kind = "INN resampled" if isinstance(wide, IntegralModel) else "slimmable: first channels kept"
    print(f"{kind}; " + ("; ".join(done) or "no tuning, no recalibration"))
    if out.suffix == ".onnx":
        export_onnx(small.eval(), example, out)
    else:
        record = {"target_macs": args.target_macs, "ratio": args.ratio}
        record.update(allocation=args.allocation, recalibrated=not args.no_recalibrate)
        if isinstance(wide, IntegralModel):
            record["tune_steps"] = report.tune_steps
        metrics = {f"test_{scorer.metric.name}": after[2], "macs": after[1]}
        save_checkpoint(out, small, metrics=metrics, extra={"data": data, "resample": record})
    print(f"wrote {out} ({after[1] / before[1]:.1%} of the MACs)")
    return 0


def _load_any_width(args: argparse.Namespace):
    """The INN or slimmable model of ``args.inn``, its data record, loaders and an input."""
    from anywidth.cli.commands import loaders_for_checkpoint
    from anywidth.cli.slim import load_slimmable

    meta = read_checkpoint(args.inn).meta
    extra = meta.get("extra") or {}
    data = extra.get("data") or (meta.get("metrics") or {}).get("data")
    loaders = loaders_for_checkpoint(args, {"extra": {"data": data}})
    example = next(iter(loaders.test))[0][:1]
    if "slimmable" in extra:
        return load_slimmable(args.inn, example)[0], data, loaders, example
    inn = load_integral(args.inn)
    if inn.model_name is None:
        raise ValueError(f"{args.inn}: the integral model records no zoo model name")
    return inn, data, loaders, example


def _measure(model: nn.Module, example: torch.Tensor, loaders) -> tuple[int, int, float]:
    """``(params, MACs, test score)`` of ``model`` (accuracy; PSNR for super-resolution)."""
    score = scorer_for(model)(model, loaders.test)
    return count_params(model), count_macs(model, example), score
