"""Sub-commands of the `anywidth` command line. Each `add_*` registers one."""

from __future__ import annotations

import argparse

import torch

from anywidth.cli._score import scorer_for
from anywidth.cli._table import format_table, human
from anywidth.cli._task import add_task_options, task_for
from anywidth.cli.analysis import add_channel_search, add_rank_study, add_ranks
from anywidth.cli.compress import add_compress
from anywidth.cli.demo import add_demo
from anywidth.cli.external import add_model_spec_options, model_spec_of, spec_info
from anywidth.cli.hf import add_hf_option, check_source, hf_info
from anywidth.cli.integral import add_integrate, add_resample
from anywidth.cli.lowrank import add_decompose
from anywidth.cli.prune import add_prune
from anywidth.cli.search import add_distill, add_search
from anywidth.cli.slim import add_slim
from anywidth.data import Loaders, list_datasets, make_loaders
from anywidth.measure import evaluate, profile
from anywidth.models import create_model, list_models
from anywidth.train import TrainConfig, load_model, train_
from anywidth.train.distributed import processes

__all__ = ["DISTRIBUTED", "REGISTERED"]

DISTRIBUTED = ("train", "slim", "integrate", "decompose", "search", "distill")
"""The commands that train under ``torchrun`` (DDP); the others refuse to start there."""


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info", help="params / MACs / latency of zoo models; channel groups of your own model"
    )
    p.add_argument("model", nargs="?", help="a zoo model name or glob, e.g. 'resnet*'")
    add_hf_option(p)
    add_model_spec_options(p)
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="image side in pixels (zoo: 32; your own model: its own size)",
    )
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads for timing")
    p.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    spec = model_spec_of(args)
    if spec is not None:
        if args.model or args.hf_model:
            raise ValueError(f"name one model: {spec} or {args.model or args.hf_model}")
        return spec_info(args, spec)
    if check_source(args, "model"):
        return hf_info(args)
    args.input_size = args.input_size or 32
    names = list_models(args.model)
    if not names:
        raise ValueError(f"no zoo model matches {args.model!r}; try one of {list_models()}")
    shape = (args.batch_size, args.in_channels, args.input_size, args.input_size)
    rows = []
    for name in names:
        model = create_model(name, num_classes=args.num_classes, in_channels=args.in_channels)
        report = profile(model, torch.randn(shape), name=name, threads=args.threads)
        rows.append(
            [
                name,
                human(report.params),
                human(report.macs),
                f"{report.latency_ms:.2f}",
                report.threads,
            ]
        )
    print(f"input {tuple(shape)}, {args.num_classes} classes; MACs per sample")
    print(format_table(["model", "params", "MACs", "latency ms", "threads"], rows))
    return 0


def add_data_options(p: argparse.ArgumentParser, default: str | None = "digits") -> None:
    p.add_argument("--data", default=default, help=f"dataset: one of {list_datasets()}")
    p.add_argument(
        "--data-root",
        default=None,
        help="folder of local files (cifar10; fashion-mnist defaults to the Debian package)",
    )
    p.add_argument("--image-size", type=int, default=None, help="resize images (pixels)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seeds the split, shuffle and init")


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a zoo model; checkpoints go to --out")
    p.add_argument("--model", default="resnet20", help="zoo model name (see `info '*'`)")
    add_data_options(p)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=None, help="default 0.1 (SR: 1e-3)")
    p.add_argument("--weight-decay", type=float, default=None, help="default 5e-4 (SR: 0)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default=None,
                   help="default sgd (SR: adamw)")  # fmt: skip
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--out", default="runs/train", help="checkpoint folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    add_task_options(p)
    p.set_defaults(run=run_train, distributed=True)


def data_record(args: argparse.Namespace) -> dict:
    """What a checkpoint records about its data, so `eval` can find it again."""
    return {
        "name": args.data,
        "root": args.data_root,
        "image_size": args.image_size,
        "seed": args.seed,
    }


def run_train(args: argparse.Namespace) -> int:
    task = task_for(args)
    torch.manual_seed(args.seed)  # --seed fixes the initial weights too
    model = create_model(args.model, **task.kwargs)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=task.default(args, "lr"),
        weight_decay=task.default(args, "weight_decay"),
        optimizer=task.default(args, "optimizer"),
        label_smoothing=args.label_smoothing,
        seed=args.seed,
    )
    result = train_(
        model,
        task.loaders,
        config,
        checkpoint_dir=args.out,
        model_name=args.model,
        model_kwargs=task.kwargs,
        checkpoint_extra={"data": data_record(args) | {"options": task.data_options}},
        resume=args.resume,
        loss_fn=task.loss_fn,
        metric=task.metric,
    )
    if not processes().is_main:
        return 0  # rank 0 reports; the other ranks trained the same weights
    test = evaluate(model, task.loaders.test, metric=task.metric)
    name = task.metric.name
    rows = [
        [r["epoch"], f"{r['train_loss']:.4f}", task.show(r[f"val_{name}"])] for r in result.history
    ]
    print(format_table(["epoch", "train loss", f"val {task.label}"], rows))
    print(f"{task.summary(test[name])}  checkpoints: {args.out}/")
    return 0


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy, size and speed of a checkpoint")
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by anywidth")
    add_data_options(p, default=None)
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.set_defaults(run=run_eval)


def loaders_for_checkpoint(args: argparse.Namespace, meta: dict) -> Loaders:
    """The data a checkpoint was trained on (as recorded), unless the options say otherwise."""
    recorded = (meta.get("extra") or {}).get("data") or {}
    # the dataset's own options (an SR run's scale, patch size, ...) unless --data overrides it
    options = (recorded.get("options") or {}) if args.data is None else {}
    return make_loaders(
        args.data or recorded.get("name") or "digits",
        batch_size=args.batch_size,
        root=args.data_root or recorded.get("root"),
        seed=recorded.get("seed", args.seed) if args.data is None else args.seed,
        image_size=args.image_size or recorded.get("image_size"),
        **options,
    )


def run_eval(args: argparse.Namespace) -> int:
    model, meta = load_model(args.checkpoint)
    loaders = loaders_for_checkpoint(args, meta)
    loader = getattr(loaders, args.split)
    example = next(iter(loader))[0][:1]
    report = profile(model, example, name=meta["model"]["name"])
    score = scorer_for(model, args.split)
    row = [report.name, loaders.name, human(report.params), human(report.macs),
           f"{report.latency_ms:.2f}", score.show(score(model, loader))]  # fmt: skip
    headers = ["model", "data", "params", "MACs", "latency ms", score.label]
    print(format_table(headers, [row]))
    return 0


REGISTERED = [
    add_demo,
    add_train,
    add_eval,
    add_info,
    add_compress,
    add_prune,
    add_integrate,
    add_slim,
    add_resample,
    add_decompose,
    add_search,
    add_distill,
    add_rank_study,
    add_ranks,
    add_channel_search,
]
