"""`anywidth info`: params, MACs and latency of zoo models; the channel groups of your own."""

from __future__ import annotations

import argparse

import torch

from anywidth.cli._table import format_table, human
from anywidth.cli.external import add_model_spec_options, model_spec_of, spec_info
from anywidth.cli.hf import add_hf_option, check_source, hf_info
from anywidth.measure import profile
from anywidth.models import create_model, list_models

__all__ = ["add_info"]


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
