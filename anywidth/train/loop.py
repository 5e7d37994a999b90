"""The training loop: `run_steps_`, and `train_` a model in place with checkpoints and exact
resuming.

`run_steps_` is the one loop over batches in the package: every method that trains hands
it a step strategy (`anywidth.train.steps`): `train_` (plain, width-random, distillation),
`anywidth.train.tune.tune_` (frozen-subset tuning), TAS's bilevel search and the
sentence encoder's distillation. `train_` adds what longer runs need: epochs, the
learning-rate schedule, validation, DDP, and the one checkpoint/resume path.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anywidth._progress import progress
from anywidth.data import Loaders
from anywidth.metrics import ACCURACY, Metric
from anywidth.record import zoo_origin
from anywidth.train._state import (
    CheckpointError,
    load_model_state,
    restore_optimizer,
    set_rng_state,
)
from anywidth.train.checkpoint import read_checkpoint, save_checkpoint
from anywidth.train.config import TrainConfig
from anywidth.train.distributed import (
    Processes,
    all_sum,
    barrier,
    collective,
    evaluate_sharded,
    init_distributed,
    resolve_device,
    set_epoch,
    shard_train_loader,
    wrap_ddp,
)
from anywidth.train.losses import LossFn, cross_entropy_loss
from anywidth.train.steps import Step, loss_step

__all__ = ["TrainResult", "cycle", "run_steps_", "train_", "LAST_NAME", "BEST_NAME"]

logger = logging.getLogger(__name__)

LAST_NAME = "last.safetensors"
BEST_NAME = "best.safetensors"

EpochHook = Callable[[int, dict[str, Any]], Any]


def run_steps_(
    step: Step, batches: Iterable, *, desc: str, total: int | None = None, start: int = 0
) -> list[Any]:
    """Run ``step(index, batch)`` on every batch, with a progress bar; return the records.

    The one loop over batches: what a step does (and updates in place) is its strategy,
    see `anywidth.train.steps`. ``index`` counts from ``start`` (a run's global step).

    Example:
        >>> from anywidth.train.steps import update_
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = torch.optim.SGD([w], lr=0.1)
        >>> def step(index, batch):
        ...     loss = (w - batch).pow(2).sum()
        ...     update_(opt, loss)
        ...     return index
        >>> run_steps_(step, [torch.ones(1)] * 3, desc="fit", start=5)
        [5, 6, 7]
        >>> round(w.item(), 3)
        0.488
    """
    batches = progress(batches, desc=desc, total=total)
    return [step(index, batch) for index, batch in enumerate(batches, start=start)]


def cycle(data: Iterable, steps: int) -> Iterator:
    """``steps`` batches of ``data``, starting over when it runs out (few-step tuning).

    Example:
        >>> list(cycle([1, 2], 5))
        [1, 2, 1, 2, 1]
    """
    return itertools.islice(itertools.cycle(data), steps)


@dataclass
class TrainResult:
    """What a training run did, epoch by epoch.

    Attributes:
        history: one record per completed epoch: ``epoch``, ``lr`` (at the epoch's first
            step), ``train_loss``, ``train_accuracy``, ``val_loss`` and ``val_accuracy``
            (``train_<name>``/``val_<name>`` of another `Metric`, e.g. ``val_psnr``)
            (with a val loader), ``seconds``.
        best: the record with the highest ``val_accuracy`` (or ``val_<metric>``; the first
            on ties); ``None``
            without a val loader.
        last: the record of the last completed epoch.
        best_path: ``checkpoint_dir/best.safetensors`` when written.
        last_path: ``checkpoint_dir/last.safetensors`` when written.
        stopped_early: ``on_epoch_end`` asked to stop before ``config.epochs``.

    Example:
        >>> result = train_(model, loaders, TrainConfig(epochs=3))
        >>> result.best["val_accuracy"] >= result.history[0]["val_accuracy"]
        True
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    best_path: Path | None = None
    last_path: Path | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy (paths as strings)."""
        data = asdict(self)
        for key in ("best_path", "last_path"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data


@dataclass
class _Run:
    """Everything one epoch needs, so helpers take one argument instead of ten."""

    model: nn.Module
    config: TrainConfig
    train_loader: Iterable
    val_loader: Iterable | None
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    checkpoint_dir: Path | None
    model_name: str | None
    model_kwargs: dict[str, Any]
    checkpoint_extra: dict[str, Any]
    metric: Metric = ACCURACY
    where: Processes = field(default_factory=Processes)
    net: nn.Module | None = None  # what the loss runs: the model, or its DDP wrapper
    history: list[dict[str, Any]] = field(default_factory=list)


def _build_optimizer(
    model: nn.Module, config: TrainConfig, param_groups: list[dict[str, Any]] | None = None
) -> torch.optim.Optimizer:
    """SGD or AdamW over all parameters (or ``param_groups``), as ``config`` says.

    A group's ``lr_scale`` multiplies ``config.lr`` for its parameters.
    """
    groups = [
        {"params": list(g["params"]), "lr": config.lr * g.get("lr_scale", 1.0)}
        for g in (param_groups or [{"params": model.parameters()}])
    ]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        groups,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )


def _build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step linear warm-up, then cosine decay to 0 (or a constant rate)."""
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _reseed_shuffle(loader: Iterable, seed: int) -> None:
    """Re-seed the loader's shuffle so that epoch ``e`` sees the same order on resume."""
    sampler = getattr(loader, "sampler", None)
    generators = {
        id(g): g
        for g in (getattr(loader, "generator", None), getattr(sampler, "generator", None))
        if isinstance(g, torch.Generator)
    }
    for generator in generators.values():
        generator.manual_seed(seed)


def _train_epoch(run: _Run, epoch: int) -> dict[str, Any]:
    model, device = run.model, run.device
    net = run.net or model
    net.train()
    _reseed_shuffle(run.train_loader, run.config.seed + epoch)
    set_epoch(run.train_loader, epoch)
    lr = run.optimizer.param_groups[0]["lr"]
    clip = None if run.config.grad_clip is None else (model.parameters(), run.config.grad_clip)
    step = loss_step(net, run.loss_fn, run.optimizer, run.metric, device=device,
                     scheduler=run.scheduler, clip=clip)  # fmt: skip
    steps = len(run.train_loader)
    desc = f"epoch {epoch}/{run.config.epochs}"
    records = run_steps_(step, run.train_loader, desc=desc, total=steps, start=(epoch - 1) * steps)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    score_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for loss, score, size in records:
        loss_sum += loss
        score_sum += score
        count += size
    seen = torch.tensor(float(count), dtype=torch.float64, device=device)
    totals = all_sum(torch.stack([loss_sum, score_sum, seen]), "adding up the epoch's loss")
    loss_sum, score_sum, count = totals[0], totals[1], int(totals[2])
    train_loss = loss_sum.item() / count
    if not math.isfinite(train_loss):
        raise FloatingPointError(
            f"training loss is {train_loss} in epoch {epoch}; lower config.lr or set "
            f"config.grad_clip"
        )
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train_loss,
        f"train_{run.metric.name}": score_sum.item() / count,
    }


def _save(run: _Run, path: Path, metrics: dict[str, Any], with_state: bool) -> Path:
    return save_checkpoint(
        path,
        run.model,
        model_name=run.model_name,
        model_kwargs=run.model_kwargs,
        metrics=metrics,
        epoch=metrics["epoch"],
        config=run.config,
        optimizer=run.optimizer if with_state else None,
        scheduler=run.scheduler if with_state else None,
        history=run.history,
        extra=run.checkpoint_extra,
    )


def _best(history: list[dict[str, Any]], metric: Metric) -> dict[str, Any] | None:
    key = f"val_{metric.name}"
    scored = [h for h in history if h.get(key) is not None]
    return max(scored, key=lambda h: h[key]) if scored else None


def _resume(run: _Run) -> int:
    """Restore model, optimizer, scheduler, RNG and history; return completed epochs."""
    path = run.checkpoint_dir / LAST_NAME
    if not path.is_file():
        logger.warning("resume: no %s yet, starting from scratch", path)
        return 0
    checkpoint = read_checkpoint(path)
    meta, tensors = checkpoint.meta, checkpoint.tensors
    if meta["model"].get("name") != run.model_name or not meta.get("optimizer"):
        raise CheckpointError(
            f"{path}: cannot resume a {run.model_name!r} run from it (it holds model "
            f"{meta['model'].get('name')!r}, optimizer state: {bool(meta.get('optimizer'))}); "
            f"use the checkpoint_dir of the run being resumed"
        )
    changed = sorted(
        k for k, v in (meta.get("config") or {}).items() if run.config.to_dict().get(k) != v
    )
    if changed:
        logger.warning("resume: config differs from the checkpoint's in %s", changed)
    load_model_state(run.model, checkpoint.model_state(), path)
    restore_optimizer(run.optimizer, meta["optimizer"], tensors, path)
    run.scheduler.load_state_dict(meta["scheduler"])
    set_rng_state(meta.get("rng") or {}, tensors)
    run.history = list(meta.get("history") or [])
    logger.info("resumed from %s after epoch %d", path, meta["epoch"])
    return int(meta["epoch"])


def _finish_epoch(run: _Run, metrics: dict[str, Any], result: TrainResult) -> None:
    """Record the epoch, log it and write the checkpoints."""
    run.history.append(metrics)
    if run.where.is_main:
        logger.info(
            "epoch %d/%d %s",
            metrics["epoch"],
            run.config.epochs,
            " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch"),
        )
    if run.checkpoint_dir is None:
        return
    last, best = run.checkpoint_dir / LAST_NAME, run.checkpoint_dir / BEST_NAME
    # Every rank holds the same weights and state; rank 0 writes them, the others wait so
    # that none can read (resume) a checkpoint that is still being written.
    if run.where.is_main:
        _save(run, last, metrics, with_state=True)
        if _best(run.history, run.metric) is metrics:
            _save(run, best, metrics, with_state=False)
    barrier(f"writing the checkpoint of epoch {metrics['epoch']}")
    result.last_path = last
    if _best(run.history, run.metric) is metrics:
        result.best_path = best


def _make_run(
    model: nn.Module,
    data: Loaders | Iterable,
    config: TrainConfig,
    val_loader: Iterable | None,
    checkpoint_dir: str | Path | None,
    model_name: str | None,
    model_kwargs: dict[str, Any] | None,
    checkpoint_extra: dict[str, Any] | None,
    loss_fn: LossFn | None,
    metric: Metric,
    param_groups: list[dict[str, Any]] | None,
) -> _Run:
    train_loader = data.train if isinstance(data, Loaders) else data
    if val_loader is None and isinstance(data, Loaders):
        val_loader = data.val
    where = init_distributed(device=config.device)
    train_loader = shard_train_loader(train_loader, where, config.seed)
    try:
        steps = len(train_loader)
    except TypeError:
        raise ValueError("the train loader must have a length (a DataLoader or a list)") from None
    if steps == 0:
        raise ValueError("the train loader is empty; check the data split and batch size")
    model_name, model_kwargs = zoo_origin(model, model_name, model_kwargs)
    if checkpoint_dir is not None and model_name is None:
        raise ValueError(
            f"checkpoint_dir needs model_name (the zoo name load_model rebuilds): this "
            f"{type(model).__name__} was not built by anywidth.create_model"
        )
    device = resolve_device(config.device, where)
    model.to(device)
    torch.manual_seed(config.seed)
    optimizer = _build_optimizer(model, config, param_groups)
    return _Run(
        model=model,
        config=config,
        train_loader=train_loader,
        val_loader=val_loader,
        loss_fn=loss_fn or cross_entropy_loss(config.label_smoothing),
        optimizer=optimizer,
        scheduler=_build_scheduler(optimizer, config, steps),
        device=device,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
        model_name=model_name,
        model_kwargs=model_kwargs,
        checkpoint_extra=dict(checkpoint_extra or {}),
        metric=metric,
        where=where,
    )


def train_(
    model: nn.Module,
    data: Loaders | Iterable,
    config: TrainConfig,
    *,
    val_loader: Iterable | None = None,
    checkpoint_dir: str | Path | None = None,
    model_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    checkpoint_extra: dict[str, Any] | None = None,
    resume: bool = False,
    loss_fn: LossFn | None = None,
    metric: Metric = ACCURACY,
    param_groups: list[dict[str, Any]] | None = None,
    on_epoch_end: EpochHook | None = None,
) -> TrainResult:
    """Train ``model`` in place and return its per-epoch record.

    The model's weights are updated in place (hence the trailing ``_``); unlike other
    in-place functions this returns the run's record rather than ``None``, since the
    record is the only other product of training. SGD (or AdamW) with a per-step cosine
    schedule and linear warm-up; ``torch.manual_seed(config.seed)`` at the start and the
    train shuffle re-seeded with ``config.seed + epoch`` every epoch, so runs repeat.

    With ``checkpoint_dir``, ``last.safetensors`` (model, optimizer, scheduler, RNG states,
    epoch, history) is written after every epoch and ``best.safetensors`` (model only)
    whenever val accuracy improves. ``resume=True`` continues from ``last.safetensors`` and
    ends with exactly the weights an uninterrupted run would have (it starts from scratch,
    with a warning, when there is no checkpoint yet).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the same call trains with
    `DistributedDataParallel` (see `anywidth.train.distributed` and docs/distributed.md):
    the train loader's batch size is the global batch, split evenly over the processes by
    a `DistributedSampler` that deals out the order one process would see (the loader's
    own shuffle, seeded ``config.seed + epoch``), so the ranks' parts of batch ``k`` make up
    batch ``k`` of a one-process run; losses and val scores are summed over all ranks; only
    rank 0 logs and writes checkpoints; every rank returns the same record. A checkpoint
    resumes under any number of processes (equal to an uninterrupted run up to the
    rounding of the gradient all-reduce; bit for bit with the same number).

    Args:
        model: trained in place, moved to ``config.device``.
        data: a `Loaders` record (its ``val`` loader is used unless ``val_loader`` is given)
            or a train loader: a sized iterable of ``(images, labels)`` batches.
        config: the run's settings.
        val_loader: evaluated after every epoch.
        checkpoint_dir: where to write checkpoints; needs a zoo name, from the model's
            record (``create_model`` writes it) or ``model_name``.
        model_name: the zoo name recorded in checkpoints, for `load_model`; by default the
            one in the model's record.
        model_kwargs: the ``create_model`` kwargs recorded in checkpoints; by default the
            ones in the model's record.
        checkpoint_extra: the ``extra`` record of every checkpoint (e.g. pruned widths, so
            that `load_model` can rebuild a reshaped model).
        resume: continue from ``checkpoint_dir/last.safetensors``.
        loss_fn: ``loss_fn(model, images, labels) -> (loss, logits)``; default cross-entropy
            with ``config.label_smoothing`` (a custom one handles smoothing itself). The
            "labels" are whatever the loader yields as targets (high-resolution images for
            super-resolution, with ``anywidth.train.image_loss``). A loss with a
            ``begin_step(step)`` method is told the run's global step (from 0) before each
            batch, so that its own randomness (width draws) is seeded per step: the same
            on every rank and after a resume. Under DDP ``model`` is the DDP wrapper.
        metric: scores train and val batches (``train_<name>``, ``val_<name>``) and picks
            the best epoch; top-1 accuracy by default, ``anywidth.metrics.psnr_metric(s)``
            for super-resolution.
        param_groups: optimizer groups, each ``{"params": [...], "lr_scale": float}``
            (``lr_scale`` multiplies ``config.lr``); by default one group of all parameters.
        on_epoch_end: ``on_epoch_end(epoch, metrics)`` after each epoch's checkpoint;
            returning ``True`` stops training (an exception propagates after the checkpoint).
            Under torchrun it runs on every rank (with the same, reduced ``metrics``), so
            it must decide alike everywhere; write files only where
            ``anywidth.train.distributed.processes().is_main``.

    Returns:
        A `TrainResult`.

    Example:
        >>> loaders = make_loaders("digits")
        >>> model = create_model("resnet20", num_classes=10, in_channels=1)
        >>> result = train_(model, loaders, TrainConfig(epochs=5), checkpoint_dir="runs/d")
        >>> result.best["val_accuracy"]
        0.97
    """
    run = _make_run(
        model,
        data,
        config,
        val_loader,
        checkpoint_dir,
        model_name,
        model_kwargs,
        checkpoint_extra,
        loss_fn,
        metric,
        param_groups,
    )
    if resume and run.checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (where last.safetensors is)")
    start = _resume(run) if resume else 0
    run.net = wrap_ddp(model, run.where, run.device)
    result = TrainResult()
    for epoch in range(start + 1, config.epochs + 1):
        began = time.perf_counter()
        with collective(f"training epoch {epoch}"):
            metrics = _train_epoch(run, epoch)
        if run.val_loader is not None:
            scores = evaluate_sharded(model, run.val_loader, run.device, run.metric)
            name = run.metric.name
            metrics.update({"val_loss": scores["loss"], f"val_{name}": scores[name]})
        metrics["seconds"] = time.perf_counter() - began
        _finish_epoch(run, metrics, result)
        if on_epoch_end is not None and on_epoch_end(epoch, metrics) is True:
            result.stopped_early = epoch < config.epochs
            break
    return _result(run, result)


def _result(run: _Run, result: TrainResult) -> TrainResult:
    result.history = run.history
    result.best = _best(run.history, run.metric)
    result.last = run.history[-1] if run.history else None
    if run.checkpoint_dir is not None:
        for attr, name in (("last_path", LAST_NAME), ("best_path", BEST_NAME)):
            if getattr(result, attr) is None and (run.checkpoint_dir / name).is_file():
                setattr(result, attr, run.checkpoint_dir / name)
    return result
