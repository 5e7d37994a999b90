"""Sub-commands of the `anywidth` command line. Each `add_*` registers one."""

from __future__ import annotations

import argparse

import torch

from anywidth.cli._table import format_table, human
from anywidth.measure import profile
from anywidth.models import create_model, list_models

__all__ = ["REGISTERED"]


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="params / MACs / latency of zoo models")
    p.add_argument("model", help="a zoo model name or glob, e.g. 'resnet*'")
    p.add_argument("--input-size", type=int, default=32, help="image side in pixels")
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads for timing")
    p.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
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


REGISTERED = [add_info]
