"""`anywidth compress`: one command for every method, a front over `anywidth.compress`.

Load a checkpoint, compress it to a budget with the chosen method (scored before and after
on the test split, BatchNorm recalibrated), print the report and save the smaller model.
"""

from __future__ import annotations

import argparse

from anywidth.cli._options import (
    add_data_options,
    add_latency_target,
    checked_out,
    data_options,
    latency_setting,
)
from anywidth.compare import Auto
from anywidth.compression import Budget
from anywidth.compression.pipeline import Source, compress_source, open_checkpoint, save_compressed
from anywidth.integral import IntegralConfig, IntegralModel, to_integral
from anywidth.lowrank import LowRankConfig
from anywidth.pruning import PruneConfig
from anywidth.search import SearchConfig
from anywidth.slim import ShrinkConfig, to_slimmable

__all__ = ["METHODS", "add_compress"]

METHODS = ("prune", "lowrank", "inn", "slim", "search", "auto")


def add_compress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="compress a checkpoint to a budget with any method")
    p.add_argument("checkpoint", help="a checkpoint written by anywidth (for --method inn "
                   "also an integral model from `anywidth integrate`)")  # fmt: skip
    p.add_argument("--method", choices=METHODS, required=True,
                   help="prune channels, low-rank factors, INN resampling, slimmable "
                   "(keep the first channels), TAS search, or auto: screen the methods "
                   "(those that train first only with --train-epochs), finish the "
                   "best")  # fmt: skip
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-macs", type=float, help="fraction of the MACs to keep (0, 1]")
    target.add_argument("--target-params", type=float, help="fraction of the params (0, 1]")
    add_latency_target(p, target)
    p.add_argument("--tolerance", type=float, default=None,
                   help="relative to the target (default 0.02, latency 0.05; a short "
                   "search may need 0.1)")  # fmt: skip
    p.add_argument("--round-to", type=int, default=1,
                   help="prune, inn, slim: widths are multiples of this (8, 16); lowrank: "
                   "each factored layer's k*rank channels")  # fmt: skip
    p.add_argument("--tune-steps", type=int, default=100, help="inn, auto: tuning steps")
    p.add_argument("--train-epochs", type=int, default=0,
                   help="auto: epochs the methods that train first may spend (slimmable "
                   "training, TAS search); 0 screens only the one-shot methods")  # fmt: skip
    p.add_argument("--epochs", type=int, default=10, help="search: epochs of the search")
    p.add_argument("--distill-epochs", type=int, default=0, help="search: distillation epochs")
    p.add_argument("--out", required=True, help="the smaller model (.safetensors)")
    add_data_options(p, default=None)
    p.set_defaults(run=run_compress)


def _budget(args: argparse.Namespace) -> Budget:
    given = {m: getattr(args, f"target_{m}") for m in ("macs", "latency", "params")}
    return Budget(**{m: v for m, v in given.items() if v is not None}, tolerance=args.tolerance)


def _prepare(args: argparse.Namespace, source: Source, budget: Budget):
    """The model `compress` takes for ``args.method`` and the method's config."""
    model, meta, example = source.model, source.meta, source.example
    if isinstance(model, IntegralModel) and args.method != "inn":
        raise ValueError(f"{args.checkpoint} is an integral model: use --method inn")
    if args.method == "auto":
        return model, Auto(budget, tune_steps=args.tune_steps, seed=args.seed,
                           train_epochs=args.train_epochs)  # fmt: skip
    if args.method == "prune":
        timed = budget.metric == "latency"  # the latency table is built on this setting
        return model, PruneConfig(budget=budget, round_to=args.round_to,
                                  latency=latency_setting(args) if timed else None,
                                  latency_cache=args.latency_cache if timed else None)  # fmt: skip
    if args.method == "lowrank":
        # with --runtime/--batch/--threads a layer stays dense where its factors run slower
        latency, cache = latency_setting(args), args.latency_cache
        return model, LowRankConfig(budget=budget, latency=latency, round_to=args.round_to,
                                    latency_cache=cache)  # fmt: skip
    if args.method == "search":
        config = SearchConfig(budget=budget, epochs=args.epochs,
                              distill_epochs=args.distill_epochs, seed=args.seed)  # fmt: skip
        return model, config
    if args.method == "inn":
        wide = model if isinstance(model, IntegralModel) else to_integral(
            model, example, IntegralConfig(seed=args.seed), model_name=meta["model"]["name"],
            model_kwargs=meta["model"]["kwargs"])  # fmt: skip
    else:  # a checkpoint from `anywidth slim` is sorted already; any other is sorted now
        wide = to_slimmable(model, example, sort="slimmable" not in (meta.get("extra") or {}))
    # tune_steps: an INN's partition tuning (a slimmable model has none)
    return wide, ShrinkConfig(budget=budget, tune_steps=args.tune_steps, round_to=args.round_to,
                              latency_cache=args.latency_cache)  # fmt: skip


def run_compress(args: argparse.Namespace) -> int:
    out, budget = checked_out(args.out, (".safetensors",)), _budget(args)
    source = open_checkpoint(args.checkpoint, data_options(args))
    wide, config = _prepare(args, source, budget)
    result = compress_source(source, config, model=wide, latency=latency_setting(args))
    print(result.report)
    save_compressed(out, result, source)
    print(f"wrote {out}")
    return 0
