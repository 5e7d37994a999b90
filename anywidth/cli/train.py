"""`anywidth train` (a zoo model on a dataset) and `anywidth eval` (a checkpoint)."""

from __future__ import annotations

import argparse

import torch

from anywidth.cli._options import add_data_options, data_options
from anywidth.cli._table import format_table, human
from anywidth.cli._task import add_task_options, task_for
from anywidth.compression.scoring import scorer_for
from anywidth.measure import evaluate, profile
from anywidth.models import create_model
from anywidth.train import TrainConfig, load_model, train_
from anywidth.train.distributed import processes

__all__ = ["add_eval", "add_train"]


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
    # what the checkpoint records about its data, so that `eval` can find it again
    data = data_options(args).record({}) | {"options": task.data_options}
    result = train_(
        model,
        task.loaders,
        config,
        checkpoint_dir=args.out,
        model_name=args.model,
        model_kwargs=task.kwargs,
        checkpoint_extra={"data": data},
        resume=args.resume,
        loss_fn=task.loss_fn,
        metric=task.task.metric,
    )
    if not processes().is_main:
        return 0  # rank 0 reports; the other ranks trained the same weights
    test = evaluate(model, task.loaders.test, metric=task.task.metric)
    name, show = task.task.metric.name, task.task.show
    rows = [[r["epoch"], f"{r['train_loss']:.4f}", show(r[f"val_{name}"])] for r in result.history]
    print(format_table(["epoch", "train loss", f"val {task.task.label}"], rows))
    print(f"{task.summary(test[name])}  checkpoints: {args.out}/")
    return 0


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy, size and speed of a checkpoint")
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by anywidth")
    add_data_options(p, default=None)
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    model, meta = load_model(args.checkpoint)
    loaders = data_options(args).loaders(meta)
    loader = getattr(loaders, args.split)
    example = next(iter(loader))[0][:1]
    report = profile(model, example, name=meta["model"]["name"])
    score = scorer_for(model, args.split)
    row = [report.name, loaders.name, human(report.params), human(report.macs),
           f"{report.latency_ms:.2f}", score.show(score(model, loader))]  # fmt: skip
    headers = ["model", "data", "params", "MACs", "latency ms", score.label]
    print(format_table(headers, [row]))
    return 0
