"""What a `train` run optimises and reports: its data and its `anywidth.train.task.Task`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from anywidth.data import Loaders, make_loaders
from anywidth.models import model_kwargs
from anywidth.models.superres import SR_MODELS
from anywidth.train import LossFn
from anywidth.train.task import CLASSIFICATION, Task, super_resolution

__all__ = ["SR_DATA", "TrainTask", "add_task_options", "task_for"]

SR_DATA = ("sr-skimage",)


@dataclass
class TrainTask:
    """Loaders, the model's options, the task and its loss (with ``--label-smoothing``)."""

    loaders: Loaders
    kwargs: dict[str, Any]
    task: Task
    loss_fn: LossFn
    data_options: dict[str, Any]

    def default(self, args: argparse.Namespace, key: str) -> Any:
        """``args.<key>`` when given, else the task's default (``lr``, ``optimizer``...)."""
        value = getattr(args, key)
        return getattr(self.task, key) if value is None else value

    def summary(self, value: float) -> str:
        """The test figure as the run's last line says it."""
        if self.task.is_accuracy:
            return f"test accuracy {100 * value:.2f}%"
        return f"test PSNR {value:.2f} dB (Y channel)"


def add_task_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=int, default=None,
                   help="super-resolution factor, 2/3/4 (default: the model's)")  # fmt: skip
    p.add_argument("--loss", choices=["l1", "l2"], default="l1", help="super-resolution loss")
    p.add_argument("--patch", type=int, default=None, help="SR training patch side (LR pixels)")
    p.add_argument("--patches", type=int, default=None, help="SR training patches per epoch")
    p.add_argument("--max-size", type=int, default=None,
                   help="crop SR photographs to their centre (quick runs)")  # fmt: skip


def task_for(args: argparse.Namespace) -> TrainTask:
    """The task ``args`` describe; a super-resolution model needs super-resolution data."""
    common = {"batch_size": args.batch_size, "root": args.data_root, "seed": args.seed,
              "image_size": args.image_size}  # fmt: skip
    is_sr_model, is_sr_data = args.model in SR_MODELS, args.data in SR_DATA
    if is_sr_model != is_sr_data:
        raise ValueError(
            f"model {args.model!r} and data {args.data!r} do not fit: super-resolution models "
            f"{list(SR_MODELS)} train on {list(SR_DATA)}, classifiers on the other datasets"
        )
    if not is_sr_model:
        if args.scale is not None:
            raise ValueError(f"--scale is for super-resolution models {list(SR_MODELS)}")
        loaders = make_loaders(args.data, **common)
        kwargs = {"num_classes": loaders.num_classes, "in_channels": loaders.in_channels}
        loss_fn = CLASSIFICATION.loss_fn(args.label_smoothing)
        return TrainTask(loaders, kwargs, CLASSIFICATION, loss_fn, {})
    scale = args.scale if args.scale is not None else model_kwargs(args.model)["scale"]
    options = {"scale": scale}
    options |= {
        k: getattr(args, k)
        for k in ("patch", "patches", "max_size")
        if getattr(args, k) is not None
    }
    loaders = make_loaders(args.data, **common, **options)
    kwargs = {"scale": scale, "in_channels": loaders.in_channels}
    task = super_resolution(scale, args.loss)
    return TrainTask(loaders, kwargs, task, task.loss_fn(), options)
