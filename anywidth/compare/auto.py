"""`Auto(budget)`: `anywidth.compress` picks the method — a cheap screen, then the best finished.

The screen runs each candidate method at the budget with a few tuning steps
(`Auto.screen_steps`) and scores it on the first `Auto.screen_batches` batches of the
validation split; the method with the best screened score is then run again with the full
post-compression budget (`Auto.tune_steps`, `Auto.finetune_epochs`), through the same
`anywidth.compare.methods.run_method` that `anywidth.compare.compare` uses. The methods
that train before compressing (slimmable training, TAS's search) join the screen only when
`Auto.train_epochs` allows them training time; the slimmable model is trained once and
serves screen and finish. Scores within one validation sample of the best are a tie,
settled by the shorter screen. The report's ``done`` lists every method tried (screened
score, seconds, or why it could not run) and why the chosen one was chosen;
``report.details`` is the `AutoReport`.

Example:
    >>> small, report = compress(model, x, Auto(Budget(macs=0.5)), loaders)
    >>> report.method
    'auto: inn'
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from torch import nn

from anywidth._config import Config
from anywidth.budget import Budget, as_budget
from anywidth.compare.methods import (
    METHODS,
    ONE_SHOT,
    Settings,
    Subject,
    check_methods,
    run_method,
    score,
)
from anywidth.compression import Compressed, CompressionReport, register_handler
from anywidth.data import Loaders
from anywidth.latency import LatencyConfig, as_latency_config
from anywidth.train.task import task_of

__all__ = ["Auto", "AutoReport", "Trial"]


@dataclass
class Auto(Config):
    """Let `anywidth.compress` choose the method for a budget.

    Args:
        budget: the target, an `anywidth.Budget` (MACs, params, or latency where a method
            can meet it).
        methods: the candidates (names of `anywidth.compare.METHODS`); default the ones
            that need no training first (`anywidth.compare.methods.ONE_SHOT`), or every
            method when ``train_epochs`` allows training.
        train_epochs: epochs the methods that train before compressing may spend
            (slimmable training, once for screen and finish; TAS's search, at each of the
            two); 0 keeps them out.
        screen_batches: validation batches each candidate is scored on in the screen.
        screen_steps: tuning steps each candidate gets in the screen.
        tune_steps: tuning steps the chosen method gets (as in `anywidth.compare`).
        finetune_epochs: fine-tune epochs the chosen method gets.
        seed: seeds every method's random choices.
        latency: where a latency budget is measured (`anywidth.compress` fills it in).

    Raises:
        ValueError: no budget, an unknown or repeated method, a count out of range, a
            method that trains without ``train_epochs``.

    Example:
        >>> Auto(Budget(macs=0.5)).methods
        ('prune-l1', 'prune-taylor', 'inn', 'svd', 'alds')
        >>> Auto(Budget(macs=0.5), methods=("prune-l3",))
        Traceback (most recent call last):
        ValueError: unknown method 'prune-l3' (did you mean 'prune-l1'?); known methods: ...
    """

    budget: Budget | None = None
    methods: tuple[str, ...] | None = None
    train_epochs: int = 0
    screen_batches: int = 4
    screen_steps: int = 10
    tune_steps: int = 100
    finetune_epochs: int = 0
    seed: int = 0
    latency: LatencyConfig | None = None

    def __post_init__(self) -> None:
        self.budget = as_budget("Auto.budget", self.budget)
        if self.budget is None:
            raise ValueError("Auto needs a budget, e.g. Auto(Budget(macs=0.5))")
        self.latency = as_latency_config("Auto.latency", self.latency)
        for name, least in (("screen_batches", 1), ("screen_steps", 0), ("tune_steps", 0),
                            ("finetune_epochs", 0), ("train_epochs", 0), ("seed", 0)):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise ValueError(f"Auto.{name}={v!r} must be an int >= {least}")
        if self.methods is None:
            self.methods = tuple(METHODS) if self.train_epochs else ONE_SHOT
        self.methods = check_methods(self.methods)
        training = [m for m in self.methods if METHODS[m].trains]
        if training and not self.train_epochs:
            raise ValueError(
                f"Auto.methods {training} train before compressing: give Auto.train_epochs "
                "(their epochs of training), or leave them out"
            )

    def settings(self, tune_steps: int, finetune_epochs: int = 0) -> Settings:
        """The `Settings` of one run: ``tune_steps`` and ``finetune_epochs`` after
        compression, ``train_epochs`` of training for the methods that train."""
        return Settings(tune_steps, finetune_epochs, slim_epochs=self.train_epochs,
                        search_epochs=self.train_epochs, seed=self.seed)  # fmt: skip

    def as_budget(self) -> Budget:
        return self.budget


@dataclass
class Trial:
    """One candidate of the screen: its screened score (None: it could not meet the budget,
    ``note`` says why) and the seconds it took."""

    method: str
    score: float | None
    seconds: float
    note: str = ""


@dataclass
class AutoReport:
    """What `Auto` tried, what it chose and why, and the chosen method's own report."""

    trials: list[Trial]
    chosen: str
    reason: str
    report: CompressionReport | None = field(default=None, repr=False)


def _screen(subject: Subject, config: Auto) -> list[Trial]:
    val = list(itertools.islice(subject.loaders.val, config.screen_batches))
    settings = config.settings(config.screen_steps)
    trials = []
    for name in config.methods:
        start = time.perf_counter()
        try:
            small, report, _ = run_method(METHODS[name], subject, config.budget, settings,
                                          config.latency)  # fmt: skip
        except ValueError as err:  # this method cannot meet the budget: say so, go on
            trials.append(Trial(name, None, time.perf_counter() - start, str(err)))
            continue
        if not report.met_budget:  # a short search can land outside the band
            note = f"missed the budget: {report.mac_ratio:.1%} of the MACs"
            trials.append(Trial(name, None, time.perf_counter() - start, note))
            continue
        trials.append(Trial(name, score(small, subject.task, val), time.perf_counter() - start))
    return trials


def _choose(trials: list[Trial], samples: int) -> tuple[Trial, str]:
    ran = [t for t in trials if t.score is not None]
    if not ran:
        why = "; ".join(f"{t.method}: {t.note}" for t in trials)
        raise ValueError(f"Auto: no method could meet the budget ({why})")
    top = max(t.score for t in ran)
    tied = [t for t in ran if top - t.score < 1 / samples]  # within one validation sample
    chosen = min(tied, key=lambda t: t.seconds)
    others = sorted((t for t in ran if t is not chosen), key=lambda t: -t.score)
    reason = f"best screened score {chosen.score:.4g} on {samples} validation samples"
    if others:
        reason += f" (next: {others[0].method} {others[0].score:.4g})"
    if len(tied) > 1:
        reason += f"; tied within one sample with {len(tied) - 1} other(s), the fastest kept"
    return chosen, reason


@register_handler(Auto, "auto", latency_budget=True)
def _compress(model: nn.Module, example_input, config: Auto, data) -> Compressed:
    if not isinstance(data, Loaders):
        raise ValueError(
            "data: Auto screens the methods on a validation split; pass a Loaders record "
            "(anywidth.data.make_loaders(...))"
        )
    subject = Subject(model, example_input, data, task_of(model))
    trials = _screen(subject, config)
    samples = sum(len(b[1]) for b in itertools.islice(data.val, config.screen_batches))
    chosen, reason = _choose(trials, samples)
    final = config.settings(config.tune_steps, config.finetune_epochs)
    small, report, steps = run_method(METHODS[chosen.method], subject, config.budget, final,
                                      config.latency)  # fmt: skip
    tried = ", ".join(
        f"{t.method} {t.score:.4g} ({t.seconds:.1f} s)"
        if t.score is not None
        else f"{t.method} could not meet the budget ({t.note.splitlines()[0]})"
        for t in trials
    )
    done = [
        f"screened {len(trials)} methods with {config.screen_steps} tuning steps each: {tried}",
        f"chose {chosen.method}: {reason}",
        *report.done,
        *steps,
    ]
    details = AutoReport(trials, chosen.method, reason, report)
    return Compressed(small, report.widths, done, method=f"auto: {chosen.method}", details=details)
