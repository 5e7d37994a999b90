"""The main job (`anywidth demo`): a resnet20 trained on the bundled digits, then every
method at 50/25/10% of its MACs through `anywidth.compare` — pruning (L1, Taylor), the INN
with partition tuning, a slimmable model, SVD and data-aware ALDS low rank, TAS with
distillation — each with the same 100 tuning steps after compression, scored on the
validation split, timed beside the full model, with the best model per budget saved and a
Pareto plot of accuracy against measured latency and MACs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from anywidth import Config
from anywidth.compare import CompareConfig, Comparison, compare, subject_of
from anywidth.compression.pipeline import open_checkpoint
from anywidth.data import make_loaders
from anywidth.models import create_model
from anywidth.train import TrainConfig, read_checkpoint, train_
from anywidth.train.loop import LAST_NAME

__all__ = ["BUDGETS", "DemoConfig", "DemoResult", "run_demo"]

logger = logging.getLogger(__name__)

BUDGETS = (0.5, 0.25, 0.1)


@dataclass
class DemoConfig(Config):
    """The demo's settings.

    Args:
        epochs: training epochs of the resnet20.
        seed: the one seed (initial weights, data order, every method's draws).
        slim_epochs: width-random training of the slimmable model.
        search_epochs: TAS search epochs per budget.
        tune_steps: tuning steps every method gets after compression.
    """

    epochs: int = 15
    seed: int = 0
    slim_epochs: int = 10
    search_epochs: int = 5
    tune_steps: int = 100

    def compare_config(self) -> CompareConfig:
        return CompareConfig(macs=BUDGETS, tune_steps=self.tune_steps, seed=self.seed,
                             slim_epochs=self.slim_epochs,
                             search_epochs=self.search_epochs)  # fmt: skip


@dataclass
class DemoResult:
    """The comparison, the trained checkpoint and the seconds training took (0: read back)."""

    comparison: Comparison
    checkpoint: Path
    train_seconds: float


def _train(config: DemoConfig, out: Path) -> float:
    """Train the resnet20 into ``out`` (an interrupted run resumes; a finished one is kept)."""
    path = out / LAST_NAME
    if path.exists() and read_checkpoint(path).meta.get("epoch") == config.epochs:
        return 0.0
    loaders = make_loaders("digits", batch_size=64, seed=config.seed)
    kwargs = {"num_classes": loaders.num_classes, "in_channels": loaders.in_channels}
    torch.manual_seed(config.seed)  # the initial weights too: one seed, one run
    model = create_model("resnet20", **kwargs)
    train = TrainConfig(epochs=config.epochs, lr=0.1, weight_decay=5e-4, seed=config.seed)
    start = time.perf_counter()
    train_(model, loaders, train, checkpoint_dir=out, model_name="resnet20", model_kwargs=kwargs,
           checkpoint_extra={"data": {"name": "digits", "seed": config.seed}},
           resume=path.exists())  # fmt: skip
    return time.perf_counter() - start


def run_demo(
    config: DemoConfig, out: str | Path, say: Callable[[str], None] = logger.info
) -> DemoResult:
    """Train the resnet20 (checkpoints in ``out``) and compare every method at every budget
    (results and cache in ``out/compare``; a rerun reads back what is done).

    Args:
        config: the settings.
        out: the folder for the checkpoint and the comparison.
        say: told what the demo is doing before each long step.
    """
    out = Path(out)
    say(f"training resnet20 on digits for {config.epochs} epochs ...")
    seconds = _train(config, out)
    say("every method at 50/25/10% of the MACs, the same tuning steps after each ...")
    source = open_checkpoint(out / LAST_NAME)
    comparison = compare(subject_of(source), config.compare_config(), out / "compare")
    return DemoResult(comparison, out / LAST_NAME, seconds)
