"""`anywidth compress`: one command for every method, a front over `anywidth.compress`.

Load a checkpoint, compress it to a budget with the chosen method (scored before and after
on the test split, BatchNorm recalibrated), print the report and save the smaller model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anywidth.compression import Budget, compress
from anywidth.integral import IntegralConfig, IntegralModel, to_integral
from anywidth.lowrank import LowRankConfig
from anywidth.pruning import PruneConfig
from anywidth.search import SearchConfig
from anywidth.slim import ShrinkConfig, to_slimmable
from anywidth.train import load_model, save_checkpoint

__all__ = ["METHODS", "add_compress"]

METHODS = ("prune", "lowrank", "inn", "slim", "search")


def add_compress(sub: argparse._SubParsersAction) -> None:
    from anywidth.cli.commands import add_data_options

    p = sub.add_parser("compress", help="compress a checkpoint to a budget with any method")
    p.add_argument("checkpoint", help="a checkpoint written by anywidth (for --method inn "
                   "also an integral model from `anywidth integrate`)")  # fmt: skip
    p.add_argument("--method", choices=METHODS, required=True,
                   help="prune channels, low-rank factors, INN resampling, slimmable "
                   "(keep the first channels) or TAS search")  # fmt: skip
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-macs", type=float, help="fraction of the MACs to keep (0, 1]")
    target.add_argument("--target-params", type=float, help="fraction of the params (0, 1]")
    p.add_argument("--tolerance", type=float, default=0.02,
                   help="relative to the target (a short search may need 0.1)")  # fmt: skip
    p.add_argument("--tune-steps", type=int, default=100, help="inn: partition tuning steps")
    p.add_argument("--epochs", type=int, default=10, help="search: epochs of the search")
    p.add_argument("--distill-epochs", type=int, default=0, help="search: distillation epochs")
    p.add_argument("--out", required=True, help="the smaller model (.safetensors)")
    add_data_options(p, default=None)
    p.set_defaults(run=run_compress)


def _budget(args: argparse.Namespace) -> Budget:
    if args.target_macs is not None:
        return Budget(macs=args.target_macs, tolerance=args.tolerance)
    return Budget(params=args.target_params, tolerance=args.tolerance)


def _prepare(args: argparse.Namespace, model, meta: dict, example, budget: Budget):
    """The model `compress` takes for ``args.method`` and the method's config."""
    if args.method == "prune":
        return model, PruneConfig(budget=budget)
    if args.method == "lowrank":
        return model, LowRankConfig(budget=budget)
    if args.method == "search":
        config = SearchConfig(budget=budget, epochs=args.epochs,
                              distill_epochs=args.distill_epochs, seed=args.seed)  # fmt: skip
        return model, config
    if args.method == "inn":
        inn = model if isinstance(model, IntegralModel) else to_integral(
            model, example, IntegralConfig(seed=args.seed), model_name=meta["model"]["name"],
            model_kwargs=meta["model"]["kwargs"])  # fmt: skip
        return inn, ShrinkConfig(budget=budget, tune_steps=args.tune_steps)
    # a checkpoint from `anywidth slim` is sorted already; any other is sorted now
    sort = "slimmable" not in (meta.get("extra") or {})
    return to_slimmable(model, example, sort=sort), ShrinkConfig(budget=budget)


def run_compress(args: argparse.Namespace) -> int:
    from anywidth.cli.commands import loaders_for_checkpoint

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: use a .safetensors file name")
    model, meta = load_model(args.checkpoint)
    if isinstance(model, IntegralModel) and args.method != "inn":
        raise ValueError(f"{args.checkpoint} is an integral model: use --method inn")
    # an INN file (`anywidth integrate`) records its data among its metrics
    data = (meta.get("extra") or {}).get("data") or (meta.get("metrics") or {}).get("data")
    loaders = loaders_for_checkpoint(args, {"extra": {"data": data}})
    example = next(iter(loaders.test))[0][:1]
    wide, config = _prepare(args, model, meta, example, _budget(args))
    small, report = compress(wide, example, config, data=loaders)
    print(report)
    metrics = {"test_accuracy": report.after.accuracy, "macs": report.after.macs}
    extra = {"data": data, "compress": report.to_dict()}
    save_checkpoint(out, small, metrics=metrics, extra=extra)
    print(f"wrote {out}")
    return 0
