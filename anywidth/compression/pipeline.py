"""A checkpoint in, a smaller checkpoint out: the path every `anywidth` command that makes a
model smaller runs, as three library calls.

`open_checkpoint` loads a model with the data its checkpoint records (unless `DataOptions`
name other data), an example input and how to score it; `compress_source` runs
`anywidth.compress` on it (optionally fine-tuning the result) and scores both models on the
test split (accuracy, or PSNR for the zoo's super-resolution models); `save_compressed`
writes the result as a checkpoint that records its data and the report, or as ONNX.
`compress_checkpoint` is the three in a row.

Example:
    >>> from anywidth import Budget
    >>> from anywidth.compression.pipeline import compress_checkpoint
    >>> from anywidth.pruning import PruneConfig
    >>> config = PruneConfig(budget=Budget(macs=0.5))
    >>> result = compress_checkpoint("runs/train/last.safetensors", config, "small.safetensors")
    >>> result.before, result.after, result.report.mac_ratio
    (0.81, 0.74, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anywidth.compression.api import compress, reference_model
from anywidth.compression.report import CompressionReport
from anywidth.compression.scoring import Scorer, scorer_for
from anywidth.data import Loaders, make_loaders
from anywidth.graph import export_onnx
from anywidth.latency import LatencyConfig
from anywidth.train import TrainConfig, load_model, save_checkpoint, train_

__all__ = [
    "FINETUNE_LR",
    "finetune_config",
    "Compression",
    "DataOptions",
    "Source",
    "compress_checkpoint",
    "compress_source",
    "open_checkpoint",
    "recorded_data",
    "save_compressed",
]


def recorded_data(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The data record of a checkpoint: ``extra["data"]``, or ``metrics["data"]`` where
    `anywidth.integral.save_integral` (which takes no ``extra``) put it; ``{}`` if none."""
    extra, metrics = meta.get("extra") or {}, meta.get("metrics") or {}
    return dict(extra.get("data") or metrics.get("data") or {})


@dataclass(frozen=True)
class DataOptions:
    """Which data a checkpoint is compressed and scored on.

    Fields left None fall back to what the checkpoint records; a ``name`` replaces the
    recorded dataset (and its options, such as a super-resolution scale) altogether.

    Args:
        name: a dataset of `anywidth.data.list_datasets` (None: the recorded one, else
            ``"digits"``).
        root: folder of local files.
        image_size: resize images to this side in pixels.
        batch_size: the batch size of every split.
        seed: seeds the split and the shuffle (a recorded seed wins unless ``name`` is set).
    """

    name: str | None = None
    root: str | None = None
    image_size: int | None = None
    batch_size: int = 64
    seed: int = 0

    def record(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """The data these options pick for a checkpoint with JSON record ``meta``, as a
        checkpoint of the result records it (``extra["data"]``)."""
        if self.name is not None:
            return {"name": self.name, "root": self.root, "image_size": self.image_size,
                    "seed": self.seed, "options": {}}  # fmt: skip
        recorded = recorded_data(meta)
        return {
            "name": recorded.get("name") or "digits",
            "root": self.root or recorded.get("root"),
            "image_size": self.image_size or recorded.get("image_size"),
            "seed": recorded.get("seed", self.seed),
            "options": recorded.get("options") or {},
        }

    def loaders(self, meta: Mapping[str, Any]) -> Loaders:
        """The loaders of `record` ``(meta)``."""
        data = self.record(meta)
        return make_loaders(data["name"], batch_size=self.batch_size, root=data["root"],
                            seed=data["seed"], image_size=data["image_size"],
                            **data["options"])  # fmt: skip


@dataclass
class Source:
    """A loaded checkpoint: its model and JSON record, its data, an example input (one test
    sample), the data record a result saves, and how the model is scored."""

    path: Path
    model: nn.Module
    meta: dict[str, Any]
    loaders: Loaders
    example: torch.Tensor
    data: dict[str, Any]
    scorer: Scorer

    def score(self, model: nn.Module) -> float:
        """``model``'s test score: accuracy, or PSNR for super-resolution."""
        return self.scorer(model, self.loaders.test)


def open_checkpoint(path: str | Path, data: DataOptions | None = None) -> Source:
    """Load a checkpoint (`anywidth.train.load_model`) with the data it was trained on.

    Raises:
        CheckpointError: the file is missing or unreadable (the message names it).
    """
    data = data or DataOptions()
    model, meta = load_model(path)
    loaders = data.loaders(meta)
    example = next(iter(loaders.test))[0][:1]
    return Source(Path(path), model, meta, loaders, example, data.record(meta), scorer_for(model))


FINETUNE_LR = 0.01
"""Fine-tuning's learning rate without a recorded schedule: a tenth of ``anywidth train``'s."""


def finetune_config(
    source: Source, epochs: int, lr: float | None = None, batch_size: int = 128, seed: int = 0
) -> TrainConfig | None:
    """How to fine-tune a compressed checkpoint for ``epochs`` (None for 0).

    With ``lr``: that rate, decayed by cosine. Without: the last ``epochs`` of the
    checkpoint's own recorded schedule (`TrainConfig.rewind`), or `FINETUNE_LR` when none
    (or a shorter one) is recorded.
    """
    if not epochs:
        return None
    recorded = source.meta.get("config")
    if lr is None and recorded and recorded.get("epochs", 0) >= epochs:
        return replace(TrainConfig.from_dict(recorded).rewind(epochs), seed=seed)
    lr = FINETUNE_LR if lr is None else lr
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)


@dataclass
class Compression:
    """What `compress_source` made: the smaller model, `anywidth.compress`'s report (its
    ``after`` measured before any fine-tuning) and the test scores before and after."""

    model: nn.Module
    report: CompressionReport
    before: float
    after: float


def compress_source(
    source: Source,
    config: Any,
    *,
    model: nn.Module | None = None,
    recalibrate: bool = True,
    finetune: TrainConfig | None = None,
    latency: LatencyConfig | None = None,
) -> Compression:
    """Compress ``source.model`` (or ``model``, e.g. its INN) with ``config`` and score it.

    Args:
        source: from `open_checkpoint`; its training split calibrates the method and
            BatchNorm, its test split scores both models.
        config: any config `anywidth.compress` takes.
        model: the model to compress instead of ``source.model`` (an any-width model).
        recalibrate: re-estimate BatchNorm statistics of the result.
        finetune: train the result for this run (with the model's loss) before scoring.
        latency: time both models side by side on this setting (`anywidth.compress`'s
            ``latency``): the report then shows the measured speed-up.
    """
    wide = source.model if model is None else model
    small, report = compress(wide, source.example, config, source.loaders,
                             recalibrate=recalibrate, latency=latency)  # fmt: skip
    if finetune is not None:
        loss_fn = source.scorer.task.loss_fn(finetune.label_smoothing)
        train_(small, source.loaders, finetune, loss_fn=loss_fn, metric=source.scorer.metric)
    # compress measured accuracy on classification data already; anything else is scored
    before = report.before.accuracy
    if before is None or not source.scorer.is_accuracy:
        before = source.score(reference_model(wide, config))
    after = report.after.accuracy
    if after is None or not source.scorer.is_accuracy or finetune is not None:
        after = source.score(small)
    return Compression(small, report, before, after)


def save_compressed(
    out: str | Path, result: Compression, source: Source, record: Mapping[str, Any] | None = None
) -> Path:
    """Write ``result.model`` to ``out``: ONNX for a ``.onnx`` name, else a checkpoint.

    The checkpoint's metrics hold the test score (``test_accuracy`` or ``test_psnr``), MACs
    and params; its ``extra`` holds the data record, the report (``"compress"``) and
    ``record`` (what the command did, under its own key). `anywidth.train.load_model`
    rebuilds the model from it.
    """
    out = Path(out)
    if out.suffix == ".onnx":
        return export_onnx(result.model.eval(), source.example, out)
    after = result.report.after
    metrics = {f"test_{source.scorer.metric.name}": result.after, "macs": after.macs,
               "params": after.params}  # fmt: skip
    extra = {"data": source.data, "compress": result.report.to_dict(), **(record or {})}
    return save_checkpoint(out, result.model, metrics=metrics, extra=extra)


def compress_checkpoint(
    path: str | Path, config: Any, out: str | Path, data: DataOptions | None = None
) -> Compression:
    """Load a checkpoint, compress it with ``config``, score it and save it to ``out``.

    Args:
        path: a checkpoint written by anywidth.
        config: any config `anywidth.compress` takes (``PruneConfig``, ``LowRankConfig``,
            ``SearchConfig``).
        out: the smaller model: ``.safetensors`` (reloads with `load_model`) or ``.onnx``.
        data: the data to use; by default what the checkpoint records.
    """
    source = open_checkpoint(path, data)
    result = compress_source(source, config)
    save_compressed(out, result, source)
    return result
