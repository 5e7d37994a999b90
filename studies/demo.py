"""The main job (`anywidth demo`): a resnet20 trained on the bundled digits, made smaller
at 75/50/35/25% of its MACs eight ways, without fine-tuning the weights for a budget.

L1 pruning and low-rank decomposition (uniform SVD and ALDS) through `anywidth.compress`;
the INN resampled, and resampled after partition tuning; slimmable training (trained once
with random widths, each width keeps the first channels); the INN trained once with the
same loop and epochs, resampled, and resampled after partition tuning. Every smaller model
is measured as it is and after its BatchNorm statistics are recalibrated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from anywidth import Budget, Config, compress
from anywidth.data import Loaders, make_loaders
from anywidth.integral import IntegralConfig, to_integral
from anywidth.integral.training import WidthTrainConfig, train_integral_
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.lowrank import LowRankConfig
from anywidth.measure import Report, evaluate, profile
from anywidth.models import create_model
from anywidth.pruning import PruneConfig, recalibrate_bn
from anywidth.slim import train_any_width
from anywidth.train import TrainConfig, train_

__all__ = ["BUDGETS", "DemoConfig", "DemoResult", "run_demo"]

logger = logging.getLogger(__name__)

BUDGETS = (0.75, 0.5, 0.35, 0.25)


@dataclass
class DemoConfig(Config):
    """The demo's settings.

    Args:
        epochs: training epochs of the resnet20.
        seed: the one seed (initial weights, data order, width draws).
        inn_epochs: width-random training epochs (slimmable and INN).
        tune_steps: partition-tuning steps per budget.
    """

    epochs: int = 15
    seed: int = 0
    inn_epochs: int = 20
    tune_steps: int = 100


@dataclass
class DemoResult:
    """The trained model's report, one ``(label, report after recalibration, accuracy as
    is)`` row per method and budget, and each method's ``(MAC budget, accuracy)`` curve."""

    trained: Report
    test_size: int = 0
    rows: list[tuple[str, Report, float]] = field(default_factory=list)
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _Run:
    example: torch.Tensor
    loaders: Loaders
    result: DemoResult

    def measure(self, label: str, small: nn.Module, budget: float) -> None:
        """Score as is, recalibrate, profile; add the row and the point on the curve."""
        raw = evaluate(small, self.loaders.test)["accuracy"]
        fixed = recalibrate_bn(small, self.loaders.train, batches=20)
        report = profile(fixed, self.example, loader=self.loaders.test)
        self.result.curves.setdefault(label, []).append((budget, report.accuracy))
        self.result.rows.append((f"{label} {budget:.0%}", report, raw))


def _compressed(run: _Run, model: nn.Module) -> None:
    """L1 pruning, uniform-SVD and ALDS low rank at each budget (low rank: data-aware,
    without BatchNorm recalibration, as the demo's figures were measured)."""
    for budget in BUDGETS:
        config = PruneConfig(budget=Budget(macs=budget), importance="l1")
        run.measure("L1 pruning", compress(model, run.example, config)[0], budget)
    for method, label in (("svd", "low rank, uniform SVD"), ("alds", "low rank, ALDS")):
        for budget in BUDGETS:
            config = LowRankConfig(method=method, budget=Budget(macs=budget))
            data = run.loaders.train
            small, _ = compress(model, run.example, config, data, recalibrate=False)
            run.measure(label, small, budget)


def _width_random(run: _Run, model: nn.Module, config: DemoConfig, say) -> None:
    """Slimmable training, then the INN: resampled, partition-tuned, trained, both again."""
    train = TrainConfig(epochs=config.inn_epochs, lr=0.02, weight_decay=5e-4, seed=config.seed)
    say(f"slimmable training with random widths for {config.inn_epochs} epochs ...")
    width = WidthTrainConfig(method="slice", min_ratio=0.3, seed=config.seed)
    slim, _ = train_any_width(model, run.example, run.loaders, train, width)
    slim.eval()
    for budget in BUDGETS:
        run.measure("slimmable, widths random", slim.resample(target_macs=budget), budget)
    inn = to_integral(model, run.example, IntegralConfig())
    for budget in BUDGETS:
        run.measure("INN", inn.resample(inn.width_plan(target_macs=budget)), budget)
    say("tuning INN partitions ...")
    _tuned(run, inn, "INN + partition tuning", config.tune_steps)
    say(f"training the INN with random widths for {config.inn_epochs} epochs ...")
    width = WidthTrainConfig(method="integral", min_ratio=0.3, seed=config.seed)
    train_integral_(inn, run.loaders, train, width)
    for budget in BUDGETS:
        run.measure("INN trained, widths random", inn.resample(target_macs=budget), budget)
    say("tuning the trained INN's partitions ...")
    _tuned(run, inn, "INN trained + partition tuning", config.tune_steps)


def _tuned(run: _Run, inn, label: str, steps: int) -> None:
    for budget in BUDGETS:
        plan = inn.width_plan(target_macs=budget)
        tuned = tune_partition(inn, plan, run.loaders.train, TuneConfig(steps=steps))
        run.measure(label, tuned.resample(plan), budget)


def run_demo(
    config: DemoConfig, out: str | Path, say: Callable[[str], None] = logger.info
) -> DemoResult:
    """Train the resnet20 (checkpoints in ``out``) and measure every method at every budget.

    Args:
        config: the settings.
        out: the folder for the checkpoints.
        say: told what the demo is doing before each long step.

    Returns:
        A `DemoResult`; each curve ends at the trained model's ``(1.0, accuracy)``.
    """
    loaders = make_loaders("digits", batch_size=64, seed=config.seed)
    kwargs = {"num_classes": loaders.num_classes, "in_channels": loaders.in_channels}
    torch.manual_seed(config.seed)  # the initial weights too: one seed, one run
    model = create_model("resnet20", **kwargs)
    train = TrainConfig(epochs=config.epochs, lr=0.1, weight_decay=5e-4, seed=config.seed)
    say(f"training resnet20 on digits for {config.epochs} epochs ...")
    start = time.perf_counter()
    train_(model, loaders, train, checkpoint_dir=out, model_name="resnet20", model_kwargs=kwargs,
           checkpoint_extra={"data": {"name": "digits", "seed": config.seed}})  # fmt: skip
    seconds = time.perf_counter() - start
    example = next(iter(loaders.test))[0][:1]
    trained = profile(model, example, loader=loaders.test, name="resnet20")
    result = DemoResult(trained, len(loaders.test.dataset), seconds=seconds)
    run = _Run(example, loaders, result)
    say(f"trained in {seconds:.0f} s; pruning and low-rank decomposition without fine-tuning ...")
    _compressed(run, model)
    _width_random(run, model, config, say)
    for points in run.result.curves.values():
        points.append((1.0, trained.accuracy))
    return run.result
