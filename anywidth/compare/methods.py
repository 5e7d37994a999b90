"""The methods `compare` and `Auto` run, each as one `anywidth.compress` config, and the
equal post-compression budget every one of them gets.

A `Method` says how to make the model `compress` takes (the trained model itself, its INN,
or a slimmable model trained with random widths) and which config to give it at a budget.
`run_method` is the one path both `compare` and `Auto` take for one method at one budget:
``compress`` (BatchNorm recalibrated), then the same number of tuning steps for every
method (partition tuning for the INN, BatchNorm γ/β tuning distilled from the original for
the others: the cheap control of equal budget), then the same fine-tune epochs (TAS: the
same epochs as distillation from the original).

Example:
    >>> method_names()
    ['prune-l1', 'prune-taylor', 'inn', 'slim', 'svd', 'alds', 'tas']
    >>> check_methods(["prune-l2"])
    Traceback (most recent call last):
    ValueError: unknown method 'prune-l2' (did you mean 'prune-l1'?); known methods: ...
"""

from __future__ import annotations

import difflib
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from anywidth.budget import Budget
from anywidth.compression import CompressionReport, SlowerWarning, compress
from anywidth.data import Loaders
from anywidth.integral import IntegralConfig, to_integral
from anywidth.latency import LatencyConfig
from anywidth.lowrank import LowRankConfig
from anywidth.measure import evaluate
from anywidth.pruning import PruneConfig
from anywidth.search import SearchConfig
from anywidth.slim import ShrinkConfig, train_any_width
from anywidth.train import recalibrate_bn_, train_
from anywidth.train.task import Task
from anywidth.train.tune import tune_
from anywidth.train.width import WidthTrainConfig

__all__ = [
    "METHODS",
    "ONE_SHOT",
    "Method",
    "Settings",
    "Subject",
    "check_methods",
    "method_names",
    "run_method",
    "score",
    "tune_batchnorm_",
]

SEARCH_TOLERANCE = 0.1
"""TAS's budget tolerance (relative): a short search lands in a band, not on a point."""


@dataclass(frozen=True)
class Settings:
    """What every method gets after compression, and the training of the methods that train.

    Args:
        tune_steps: tuning steps after compression, the same for every method (INN:
            partition tuning; the others: BatchNorm γ/β tuning, weights frozen).
        finetune_epochs: epochs of fine-tuning every compressed model gets (TAS: of
            distillation from the original), after tuning.
        slim_epochs: width-random training of the slimmable model, once for all budgets.
        search_epochs: TAS search epochs at each budget.
        seed: seeds conversion, width draws, the search, the data order and fine-tuning.
    """

    tune_steps: int = 100
    finetune_epochs: int = 0
    slim_epochs: int = 3
    search_epochs: int = 3
    seed: int = 0


@dataclass
class Subject:
    """The trained model being compressed, its data, and what each method made of it.

    Args:
        model: the trained model (never changed).
        example: an example input (batch 1 is enough).
        loaders: its data: ``train`` calibrates and tunes, ``val`` scores, ``test`` reports.
        task: its loss, metric and optimizer defaults.
        meta: its checkpoint's JSON record (the zoo name its INN records), or ``{}``.
        data: the data record a compressed checkpoint keeps (``extra["data"]``), or ``{}``.
    """

    model: nn.Module
    example: torch.Tensor
    loaders: Loaders
    task: Task
    meta: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    prepared: dict[str, tuple[nn.Module, float]] = field(default_factory=dict)

    def wide(self, method: Method, settings: Settings) -> tuple[nn.Module, float]:
        """The model ``method`` compresses and the seconds it took to make (once per run)."""
        if method.prepare is None:
            return self.model, 0.0
        if method.name not in self.prepared:
            start = time.perf_counter()
            wide = method.prepare(self, settings)
            self.prepared[method.name] = (wide, time.perf_counter() - start)
        return self.prepared[method.name]


def _integral(subject: Subject, settings: Settings) -> nn.Module:
    zoo = subject.meta.get("model") or {}
    return to_integral(subject.model, subject.example, IntegralConfig(seed=settings.seed),
                       model_name=zoo.get("name"), model_kwargs=zoo.get("kwargs"))  # fmt: skip


def _slimmable(subject: Subject, settings: Settings) -> nn.Module:
    # down to a quarter of every width: 10% of the MACs is about 0.3 of each width
    width = WidthTrainConfig(method="slice", min_ratio=0.25, seed=settings.seed)
    train = subject.task.train_config(settings.slim_epochs, seed=settings.seed, fine_tune=True)
    wide, _ = train_any_width(subject.model, subject.example, subject.loaders, train, width,
                              task=subject.task)  # fmt: skip
    return wide.eval()


def _search(budget: Budget, settings: Settings) -> SearchConfig:
    band = replace(budget, tolerance=max(budget.tolerance, SEARCH_TOLERANCE))
    return SearchConfig(budget=band, epochs=settings.search_epochs, seed=settings.seed,
                        distill_epochs=settings.finetune_epochs)  # fmt: skip


@dataclass(frozen=True)
class Method:
    """One way to compress, as `compress` runs it.

    Attributes:
        name: the short name users type (``"prune-l1"``).
        label: the name in tables and plots.
        config: the `compress` config at a budget.
        prepare: makes the model `compress` takes from the trained one (None: itself).
        tunes_itself: its config spends the tuning steps (the INN's partition tuning).
        distills: its config spends the fine-tune epochs (TAS's distillation).
        trains: it trains before compressing (slimmable, TAS): in `Auto`'s screen only
            with ``Auto.train_epochs``.
    """

    name: str
    label: str
    config: Callable[[Budget, Settings], Any]
    prepare: Callable[[Subject, Settings], nn.Module] | None = None
    tunes_itself: bool = False
    distills: bool = False
    trains: bool = False


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("prune-l1", "prune, L1",
               lambda b, s: PruneConfig(budget=b, importance="l1", seed=s.seed)),
        Method("prune-taylor", "prune, Taylor",
               lambda b, s: PruneConfig(budget=b, importance="taylor", seed=s.seed)),
        Method("inn", "INN + partition tuning",
               lambda b, s: ShrinkConfig(budget=b, tune_steps=s.tune_steps),
               prepare=_integral, tunes_itself=True),
        Method("slim", "slimmable, trained",
               lambda b, s: ShrinkConfig(budget=b, tune_steps=0), prepare=_slimmable,
               trains=True),
        Method("svd", "low rank, SVD",
               lambda b, s: LowRankConfig(method="svd", budget=b, seed=s.seed)),
        Method("alds", "low rank, ALDS (data-aware)",
               lambda b, s: LowRankConfig(method="alds", budget=b, seed=s.seed)),
        Method("tas", "TAS + distillation", _search, distills=True, trains=True),
    )
}  # fmt: skip
"""Every method `compare` knows, by name, in the order tables list them."""

ONE_SHOT = tuple(name for name, m in METHODS.items() if not m.trains)
"""The methods that need no training before compressing: `Auto`'s default screen."""


def method_names() -> list[str]:
    """The names of `METHODS`, in table order."""
    return list(METHODS)


def check_methods(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, each checked against `METHODS`.

    Raises:
        ValueError: no name, a repeated name, or an unknown one (with the closest name).
    """
    names = tuple(names)
    if not names:
        raise ValueError(f"no method given; choose from {method_names()}")
    for name in names:
        if name not in METHODS:
            close = difflib.get_close_matches(str(name), method_names(), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown method {name!r}{hint}; known methods: {', '.join(method_names())}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"methods {list(names)} name one method twice")
    return names


def tune_batchnorm_(
    model: nn.Module, teacher: nn.Module, data: Iterable, steps: int, task: Task
) -> bool:
    """Tune only ``model``'s BatchNorm γ/β for ``steps`` Adam steps, distilled from
    ``teacher``, then re-estimate its statistics; False when it has no BatchNorm to tune."""
    affine = [p for m in model.modules() if isinstance(m, _BatchNorm) for p in m.parameters()]
    if not affine or steps < 1:
        return False
    tune_(model, affine, data, steps=steps, teacher=teacher, task=task)
    recalibrate_bn_(model, data)
    return True


def _reseed(loaders: Loaders, seed: int) -> None:
    """Seed torch and the train loader's shuffle: a method's result depends on ``seed``
    alone, not on what ran before it (a resumed comparison gives the same rows)."""
    torch.manual_seed(seed)
    generator = getattr(loaders.train, "generator", None)
    if generator is not None:
        generator.manual_seed(seed)


def run_method(
    method: Method,
    subject: Subject,
    budget: Budget,
    settings: Settings,
    latency: LatencyConfig | None = None,
) -> tuple[nn.Module, CompressionReport, list[str]]:
    """``method`` at ``budget`` through `compress`, then the equal post-compression budget.

    Torch's RNG and the train loader's shuffle are seeded with ``settings.seed`` first.

    Returns:
        ``(small model in eval mode, compress's report (measured before tuning, which
        changes no shape), the post-compression steps in words)``.

    Raises:
        ValueError: the method cannot meet this budget (its config or search refuses it).
    """
    wide, _ = subject.wide(method, settings)
    _reseed(subject.loaders, settings.seed)
    config = method.config(budget, settings)
    train = subject.loaders.train
    with warnings.catch_warnings():  # the table's speed-up column says it
        warnings.simplefilter("ignore", SlowerWarning)
        small, report = compress(wide, subject.example, config, train, latency=latency)
    done: list[str] = []
    teacher = subject.model
    if not method.tunes_itself and tune_batchnorm_(
        small, teacher, train, settings.tune_steps, subject.task
    ):
        done.append(f"tuned BatchNorm γ/β for {settings.tune_steps} steps")
    if settings.finetune_epochs and not method.distills:
        config = subject.task.train_config(
            settings.finetune_epochs, seed=settings.seed, fine_tune=True
        )
        train_(small, train, config, loss_fn=subject.task.loss_fn(), metric=subject.task.metric)
        done.append(f"fine-tuned for {settings.finetune_epochs} epochs")
    return small.eval(), report, done


def score(model: nn.Module, task: Task, batches: Iterable) -> float:
    """``model``'s task metric (accuracy, PSNR...) on ``batches``."""
    return evaluate(model, batches, metric=task.metric)[task.metric.name]
