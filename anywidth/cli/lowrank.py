"""`anywidth decompose`: low-rank factorisation (ALDS or uniform SVD) of a checkpoint."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from anywidth.cli._score import scorer_for
from anywidth.cli._table import before_after_table, format_table, human
from anywidth.graph import export_onnx
from anywidth.lowrank import LowRankConfig, LowRankReport, decompose
from anywidth.train import TrainConfig, load_model, recalibrate_bn_, save_checkpoint, train_
from anywidth.train.distributed import processes

__all__ = ["add_decompose"]

# A short fine-tune starts from trained weights: a tenth of the from-scratch rate of `train`.
_FINETUNE_LR = 0.01


def add_decompose(sub: argparse._SubParsersAction) -> None:
    from anywidth.cli.commands import add_data_options

    p = sub.add_parser(
        "decompose",
        help="low-rank factorisation of a checkpoint's layers to a budget (ALDS or SVD)",
        description=(
            "Factor the Conv2d and Linear layers of a checkpoint into two thinner layers each. "
            "ALDS chooses a rank and a number of input-channel slices per layer so that the "
            "largest relative error of any layer is as small as the budget allows; svd gives "
            "every layer the same rank ratio. Errors are of each layer's output on a few "
            "training batches (--calibration-batches), or of its weights with 0. A layer "
            "stays dense where factoring would not make it smaller."
        ),
    )
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by anywidth")
    p.add_argument("--method", choices=["alds", "svd"], default="alds")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-params", type=float, help="fraction of params to keep, (0, 1]")
    target.add_argument("--target-macs", type=float, help="fraction of MACs to keep, (0, 1]")
    p.add_argument(
        "--fixed", action="append", default=[], help="layer name/glob to keep dense (repeatable)"
    )
    p.add_argument(
        "--calibration-batches",
        type=int,
        default=8,
        help="training batches whose inputs make the factorisation data-aware (each layer "
        "keeps what matters for its output on them); 0 factors the weights alone",
    )
    p.add_argument("--no-recalibrate", action="store_true", help="skip BatchNorm recalibration")
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=0,
        help="epochs of fine-tuning after decomposing (SGD with a cosine schedule)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="fine-tuning learning rate; by default the checkpoint's own schedule is "
        "'rewound': its last --finetune-epochs epochs (TrainConfig.rewind), or, without a "
        f"recorded schedule, {_FINETUNE_LR} (a tenth of `train`'s) decayed by cosine",
    )
    p.add_argument("--out", required=True, help="small.safetensors, or small.onnx for ONNX")
    add_data_options(p, default=None)
    p.set_defaults(run=run_decompose, distributed=True)


def _finetune_config(args: argparse.Namespace, meta: dict) -> TrainConfig:
    """--lr as given; else the last epochs of the checkpoint's own schedule, if recorded."""
    recorded = meta.get("config")
    if args.lr is None and recorded and recorded.get("epochs", 0) >= args.finetune_epochs:
        original = TrainConfig.from_dict(recorded)
        return replace(original.rewind(args.finetune_epochs), seed=args.seed)
    lr = _FINETUNE_LR if args.lr is None else args.lr
    return TrainConfig(
        epochs=args.finetune_epochs, batch_size=args.batch_size, lr=lr, seed=args.seed
    )


def run_decompose(args: argparse.Namespace) -> int:
    from anywidth.cli.commands import loaders_for_checkpoint

    out = Path(args.out)
    if out.suffix not in (".safetensors", ".onnx"):
        raise ValueError(f"--out {out}: use a .safetensors or .onnx file name")
    if args.finetune_epochs < 0:
        raise ValueError(f"--finetune-epochs {args.finetune_epochs} must be >= 0")
    if args.calibration_batches < 0:
        raise ValueError(f"--calibration-batches {args.calibration_batches} must be >= 0")
    config = LowRankConfig(
        method=args.method,
        target_params=args.target_params,
        target_macs=args.target_macs,
        fixed=tuple(args.fixed),
        calibration_batches=max(args.calibration_batches, 1),
    )
    model, meta = load_model(args.checkpoint)
    loaders = loaders_for_checkpoint(args, meta)
    example = next(iter(loaders.test))[0][:1]
    score = scorer_for(model)
    before = score(model, loaders.test)
    data = loaders.train if args.calibration_batches else None
    small, report = decompose(model, example, config, data=data)
    if not args.no_recalibrate:
        recalibrate_bn_(small, loaders.train)
    lr = None
    if args.finetune_epochs:
        train = _finetune_config(args, meta)
        lr = train.lr
        loss_fn = score.loss_fn(train.label_smoothing)
        train_(small, loaders, train, loss_fn=loss_fn, metric=score.metric)
    if not processes().is_main:
        return 0  # rank 0 reports and writes; the other ranks trained the same weights
    after = score(small, loaders.test)
    print(_layer_table(report))
    print(
        before_after_table(
            (report.params_before, report.macs_before, before),
            (report.params_after, report.macs_after, after),
            score,
        )
    )
    if out.suffix == ".onnx":
        export_onnx(small.eval(), example, out)
    else:
        save_checkpoint(
            out,
            small,
            metrics={
                f"test_{score.metric.name}": after,
                "macs": report.macs_after,
                "params": report.params_after,
                "max_error": report.max_error,
            },
            extra={
                "data": (meta.get("extra") or {}).get("data"),
                "decompose": {
                    **config.to_dict(),
                    "error_kind": report.error_kind,
                    "recalibrated": not args.no_recalibrate,
                    "finetune_epochs": args.finetune_epochs,
                    "finetune_lr": lr,
                },
            },
        )
    print(
        f"wrote {out} ({report.param_ratio:.1%} of the params, {report.mac_ratio:.1%} of the "
        f"MACs, max layer {report.error_kind} error {report.max_error:.3f}, "
        f"{report.seconds:.2f} s to decompose)"
    )
    return 0


def _layer_table(report: LowRankReport) -> str:
    """One row per factored layer, then how many stayed dense."""
    rows = [
        [r.name, r.k, r.j, f"{r.error:.3f}", human(r.params_before), human(r.params_after)]
        for r in report.layers
        if r.j is not None
    ]
    headers = ["layer", "k", "j", "error", "params before", "params after"]
    dense = len(report.layers) - len(rows)
    return f"{format_table(headers, rows)}\n{len(rows)} layers factored, {dense} kept dense"
