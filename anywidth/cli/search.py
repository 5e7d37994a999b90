"""`anywidth search` (TAS shape search of a checkpoint) and `anywidth distill` (train it)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anywidth.cli._plot import plot_search_log
from anywidth.cli._score import scorer_for
from anywidth.cli._table import before_after_table, format_table
from anywidth.measure import count_macs, count_params, evaluate
from anywidth.search import DistillConfig, SearchConfig, SearchResult, distill_, search_shape
from anywidth.train import TrainConfig, load_model, recalibrate_bn_
from anywidth.train.distributed import processes

__all__ = ["add_search", "add_distill"]


def add_search(sub: argparse._SubParsersAction) -> None:
    from anywidth.cli.commands import add_data_options

    p = sub.add_parser(
        "search",
        help="TAS: search the widths and block depths of a checkpoint under a MAC target",
        description=(
            "Learn a distribution over candidate widths (0.3..1.0 of each channel group) and "
            "over how many blocks of every run of residual blocks to keep, trading accuracy "
            "against the expected MACs; write the most likely shape to a JSON file for "
            "`anywidth distill`."
        ),
    )
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by anywidth")
    p.add_argument("--target-macs", type=float, required=True, help="fraction of MACs, (0, 1)")
    p.add_argument("--tolerance", type=float, default=0.05, help="band half-width (of MACs)")
    p.add_argument("--epochs", type=int, default=10, help="search epochs")
    p.add_argument("--lr", type=float, default=0.01, help="weight-step learning rate")
    p.add_argument("--arch-lr", type=float, default=0.05, help="architecture-step Adam lr")
    p.add_argument("--no-depth", action="store_true", help="search widths only")
    p.add_argument(
        "--fixed", action="append", default=[], help="channel group/glob to keep (repeatable)"
    )
    p.add_argument("--plot", default=None, help="PNG of MACs and accuracy over the search")
    p.add_argument("--out", required=True, help="the shape, a .json file")
    add_data_options(p, default=None)
    p.set_defaults(run=run_search, distributed=True)


def _classifier_only(model, checkpoint: str, command: str) -> None:
    """TAS searches and distils with cross-entropy and KL on logits: classifiers only."""
    if not scorer_for(model).is_accuracy:
        raise ValueError(
            f"anywidth {command}: {checkpoint} holds a super-resolution model; TAS searches "
            "and distils classifiers only. For it, use `anywidth prune`, `anywidth integrate` "
            "or `anywidth slim`, which train and score super-resolution models in PSNR"
        )


def run_search(args: argparse.Namespace) -> int:
    from anywidth.cli.commands import loaders_for_checkpoint

    out = Path(args.out)
    if out.suffix != ".json":
        raise ValueError(f"--out {out}: the shape is written as JSON; use a .json file name")
    config = SearchConfig(
        target_macs=args.target_macs,
        tolerance=args.tolerance,
        epochs=args.epochs,
        lr=args.lr,
        arch_lr=args.arch_lr,
        depth=not args.no_depth,
        fixed=tuple(args.fixed),
        seed=args.seed,
    )
    model, meta = load_model(args.checkpoint)
    _classifier_only(model, args.checkpoint, "search")
    loaders = loaders_for_checkpoint(args, meta)
    example = next(iter(loaders.test))[0][:1]
    result = search_shape(model, example, loaders, config)
    if not processes().is_main:
        return 0  # rank 0 reports and writes; every rank found the same shape
    rows = [
        [e["epoch"], f"{e['tau']:.2f}", f"{100 * e['expected_macs']:.1f}",
         f"{100 * e['argmax_macs']:.1f}", f"{100 * e['val_accuracy']:.2f}"]
        for e in result.log
    ]  # fmt: skip
    print(format_table(["epoch", "tau", "expected MACs %", "argmax MACs %", "val acc %"], rows))
    sizes = result.original_widths
    widths = [[name, sizes[name], size] for name, size in result.plan.items()]
    print(format_table(["channel group", "width before", "width after"], widths))
    if result.runs:
        depth = [[f"{run[0]}..{run[-1]}", len(run), result.depths[run[0]]] for run in result.runs]
        print(format_table(["run of blocks", "blocks", "kept"], depth))
    data = {**result.to_dict(), "checkpoint": str(args.checkpoint)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    if args.plot:
        plot_search_log(result.log, config.target_macs, config.tolerance, args.plot)
    band = "inside" if result.in_band else "OUTSIDE"
    print(
        f"wrote {out}: {result.mac_ratio:.1%} of the MACs ({band} the band "
        f"{config.target_macs:.0%} ± {config.tolerance:.0%}), {result.seconds:.1f} s"
    )
    return 0


def add_distill(sub: argparse._SubParsersAction) -> None:
    from anywidth.cli.commands import add_data_options

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
    from anywidth.cli.commands import loaders_for_checkpoint

    shape = Path(args.shape)
    if not shape.is_file():
        raise ValueError(f"--shape {shape}: no such file; write one with `anywidth search`")
    kd = DistillConfig(temperature=args.temperature, weight=args.weight)
    teacher, meta = load_model(args.checkpoint)
    _classifier_only(teacher, args.checkpoint, "distill")
    loaders = loaders_for_checkpoint(args, meta)
    example = next(iter(loaders.test))[0][:1]
    result = SearchResult.from_dict(json.loads(shape.read_text()), teacher, example)
    student = result.materialize(init=args.init)
    if args.init == "pretrained":
        recalibrate_bn_(student, loaders.train)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=0, seed=args.seed
    )
    data = (meta.get("extra") or {}).get("data")
    distill_(
        student, teacher, loaders, config, kd, checkpoint_dir=args.out, resume=args.resume,
        checkpoint_extra={"data": data, "search": result.to_dict()},
    )  # fmt: skip
    if not processes().is_main:
        return 0  # rank 0 reports; the other ranks trained the same weights
    before = evaluate(teacher, loaders.test)["accuracy"]
    after = evaluate(student, loaders.test)["accuracy"]
    print(
        before_after_table(
            (count_params(teacher), count_macs(teacher, example), before),
            (count_params(student), count_macs(student, example), after),
        )
    )
    print(f"checkpoints: {args.out}/ (teacher {args.checkpoint})")
    return 0
