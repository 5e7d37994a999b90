"""`anywidth distill`: train the shape `anywidth search` found, from the checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anywidth.cli._options import add_data_options, data_options
from anywidth.cli._table import before_after_table
from anywidth.cli.search import classifier_only
from anywidth.compression.pipeline import open_checkpoint
from anywidth.measure import count_macs, count_params
from anywidth.search import DistillConfig, SearchResult, distill_
from anywidth.train import TrainConfig, recalibrate_bn_
from anywidth.train.distributed import processes

__all__ = ["add_distill"]


def add_distill(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill",
        help="train a searched shape by knowledge distillation from the checkpoint",
        description=(
            "Build the shape `anywidth search` wrote (from the checkpoint's weights, or "
            "freshly initialised) and train it with the checkpoint as the teacher: "
            "(1 - w)·CE + w·T²·KL. Checkpoints go to --out; --resume continues exactly."
        ),
    )
    p.add_argument("checkpoint", help="the teacher: the checkpoint the shape was searched on")
    p.add_argument("--shape", required=True, help="the .json file `anywidth search` wrote")
    p.add_argument("--init", choices=["pretrained", "random"], default="pretrained")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (cosine)")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--weight", type=float, default=0.9, help="share of the distillation term")
    p.add_argument("--out", required=True, help="checkpoint folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    add_data_options(p, default=None)
    p.set_defaults(run=run_distill, distributed=True)


def run_distill(args: argparse.Namespace) -> int:
    shape = Path(args.shape)
    if not shape.is_file():
        raise ValueError(f"--shape {shape}: no such file; write one with `anywidth search`")
    kd = DistillConfig(temperature=args.temperature, weight=args.weight)
    source = open_checkpoint(args.checkpoint, data_options(args))
    classifier_only(source, "distill")
    teacher, example, loaders = source.model, source.example, source.loaders
    result = SearchResult.from_dict(json.loads(shape.read_text()), teacher, example)
    student = result.materialize(init=args.init)
    if args.init == "pretrained":
        recalibrate_bn_(student, loaders.train)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=0, seed=args.seed
    )
    distill_(
        student, teacher, loaders, config, kd, checkpoint_dir=args.out, resume=args.resume,
        checkpoint_extra={"data": source.data, "search": result.to_dict()},
    )  # fmt: skip
    if not processes().is_main:
        return 0  # rank 0 reports; the other ranks trained the same weights
    rows = [
        (count_params(model), count_macs(model, example), source.score(model))
        for model in (teacher, student)
    ]
    print(before_after_table(*rows, source.scorer))
    print(f"checkpoints: {args.out}/ (teacher {args.checkpoint})")
    return 0
