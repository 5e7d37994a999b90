"""`compare`: every method at every budget from one trained model, each cached, the best kept.

Each (method, budget) runs `anywidth.compare.methods.run_method` (``compress``, then the
same tuning steps or fine-tune epochs for every method), is scored on the validation split
(the choice) and the test split (the report), and is timed beside the full model on one
runtime (`anywidth.latency.compare_latency`, interleaved, so machine load shifts both
alike). Its row (JSON) and model (safetensors, `anywidth.train.save_checkpoint`) are written
to ``out/cache`` before the next starts: a rerun with the same settings reads them back
instead of running again. A method that cannot meet a budget (a search whose candidates
cannot reach it, a low-rank budget below what dense layers keep) gives a row that says why.

Example:
    >>> from anywidth.compression.pipeline import open_checkpoint
    >>> source = open_checkpoint("runs/train/last.safetensors")
    >>> result = compare(subject_of(source), CompareConfig(macs=(0.5, 0.25)), "runs/compare")
    >>> [row.method for row in result.best_rows()]
    ['inn', 'prune-taylor']
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import nn

from anywidth._config import Config
from anywidth._progress import progress
from anywidth.budget import Budget
from anywidth.compare.methods import (
    METHODS,
    Method,
    Settings,
    Subject,
    check_methods,
    run_method,
    score,
)
from anywidth.compression.pipeline import Source
from anywidth.latency import LatencyConfig, latency
from anywidth.measure import count_macs, count_params
from anywidth.train import save_checkpoint

__all__ = ["CompareConfig", "Comparison", "Row", "compare", "subject_of"]

logger = logging.getLogger(__name__)


def _fractions(name: str, values: tuple[float, ...]) -> tuple[float, ...]:
    values = tuple(values)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
            raise ValueError(
                f"CompareConfig.{name}={list(values)}: each budget is a fraction of the full "
                f"model in (0, 1), e.g. 0.5 for half; got {v!r}"
            )
    if len(set(values)) != len(values):
        raise ValueError(f"CompareConfig.{name}={list(values)} repeats a budget")
    return values


@dataclass
class CompareConfig(Config):
    """Which methods, which budgets, and the equal budget every method gets afterwards.

    Args:
        macs: MAC budgets, fractions of the full model in (0, 1).
        latency: latency budgets, fractions of the full model's measured latency on
            ``runtime``/``batch``/``threads``; methods that cannot meet one say so in their row.
        methods: names from `anywidth.compare.METHODS` (default: all).
        tune_steps: tuning steps every method gets after compression (INN: partition
            tuning; the others: BatchNorm γ/β, distilled from the full model).
        finetune_epochs: fine-tune epochs every method gets after tuning (TAS: distillation).
        slim_epochs: width-random training of the slimmable model (once, for all budgets).
        search_epochs: TAS search epochs at each budget.
        seed: seeds every method's random choices and the fine-tuning.
        runtime: where latency is measured (`anywidth.latency.RUNTIMES`).
        batch: the batch size latency is measured at.
        threads: the intra-op threads latency is measured with.

    Raises:
        ValueError: no budget, a budget outside (0, 1) or repeated, an unknown method
            (with the closest name), a negative step or epoch count.

    Example:
        >>> CompareConfig(macs=(0.5, 0.25), methods=("prune-l1", "inn")).budgets()
        [Budget(macs=0.5, ...), Budget(macs=0.25, ...)]
        >>> CompareConfig(macs=(2.0,))
        Traceback (most recent call last):
        ValueError: CompareConfig.macs=[2.0]: each budget is a fraction of the full model ...
    """

    macs: tuple[float, ...] = (0.5, 0.25, 0.1)
    latency: tuple[float, ...] = ()
    methods: tuple[str, ...] = tuple(METHODS)
    tune_steps: int = 100
    finetune_epochs: int = 0
    slim_epochs: int = 3
    search_epochs: int = 3
    seed: int = 0
    runtime: str = "torch"
    batch: int = 1
    threads: int = 1

    def __post_init__(self) -> None:
        self.macs = _fractions("macs", self.macs)
        self.latency = _fractions("latency", self.latency)
        if not self.macs and not self.latency:
            raise ValueError("CompareConfig needs a budget: macs=(0.5, ...) or latency=(...)")
        self.methods = check_methods(self.methods)
        for name in ("tune_steps", "finetune_epochs", "slim_epochs", "search_epochs", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"CompareConfig.{name}={v!r} must be an int >= 0")
        for name in ("slim_epochs", "search_epochs"):
            if getattr(self, name) < 1 and {"slim", "tas"} & set(self.methods):
                raise ValueError(f"CompareConfig.{name} must be >= 1 for slim and tas")
        self.timing()  # checks runtime, batch and threads

    def budgets(self) -> list[Budget]:
        """Every budget, MACs first."""
        return [Budget(macs=m) for m in self.macs] + [Budget(latency=t) for t in self.latency]

    def settings(self) -> Settings:
        """What every method gets after compression."""
        return Settings(self.tune_steps, self.finetune_epochs, self.slim_epochs,
                        self.search_epochs, self.seed)  # fmt: skip

    def timing(self) -> LatencyConfig:
        """Where every model is timed."""
        return LatencyConfig(runtime=self.runtime, batch=self.batch, threads=self.threads)


@dataclass
class Row:
    """One method at one budget (or the full model, method ``"full"``).

    Attributes:
        method, label: the method's name and its name in tables.
        budget: ``"macs 50%"``, ``"latency 50%"`` or ``"-"`` for the full model.
        status: ``"ok"``, or ``"skipped"`` (``note`` says why).
        val, test: the task metric on the validation and test splits (None: skipped).
        params, macs: of the result (MACs per sample).
        mac_ratio: MACs of the result / the full model's.
        latency_ms: measured median latency of the result.
        full_latency_ms: the full model's, timed side by side with it (the full model's
            own row: its latency timed alone).
        speedup: ``full_latency_ms / latency_ms``.
        seconds: wall time of compression, tuning and fine-tuning at this budget.
        prep_seconds: the method's one-off preparation shared by its budgets (INN
            conversion, slimmable training).
        met_budget: the result lies within the budget's tolerance (a short TAS search
            may land outside it; such a row is never the best).
        note: the steps taken, or why the row was skipped.
    """

    method: str
    label: str
    budget: str
    status: str = "ok"
    val: float | None = None
    test: float | None = None
    params: int = 0
    macs: int = 0
    mac_ratio: float = 1.0
    latency_ms: float = 0.0
    full_latency_ms: float = 0.0
    seconds: float = 0.0
    prep_seconds: float = 0.0
    met_budget: bool = True
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def speedup(self) -> float:
        """The full model's latency over the result's, timed side by side (1 unmeasured)."""
        return self.full_latency_ms / self.latency_ms if self.latency_ms > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass
class Comparison:
    """What `compare` found: the full model's row, one row per method and budget, the
    metric's label, the settings, whether the metric shows as a percentage (accuracy), and
    the best checkpoint per budget."""

    full: Row
    rows: list[Row]
    metric: str
    config: CompareConfig
    percent: bool = True
    best: dict[str, Path] = field(default_factory=dict)

    def budgets(self) -> list[str]:
        """The budgets, in the order they ran."""
        return list(dict.fromkeys(r.budget for r in self.rows))

    def best_rows(self) -> list[Row]:
        """Per budget, the row with the highest validation score among those that met it
        (budgets none met are left out)."""
        best = []
        for budget in self.budgets():
            ok = [r for r in self.rows if r.budget == budget and r.ok and r.met_budget]
            if ok:
                best.append(max(ok, key=lambda r: r.val))
        return best


def subject_of(source: Source) -> Subject:
    """The `Subject` of a loaded checkpoint (`anywidth.compression.pipeline.open_checkpoint`)."""
    return Subject(source.model, source.example, source.loaders, source.scorer.task,
                   dict(source.meta), data=dict(source.data))  # fmt: skip


def _budget_name(budget: Budget) -> str:
    return f"{budget.metric} {budget.value:.0%}"


def _key(method: str, budget: Budget) -> str:
    return f"{method}-{budget.metric}{budget.value:g}"


def _fingerprint(model: nn.Module) -> str:
    """A hash of the model's tensors: a cached row is reused only for the same model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _read(path: Path, stamp: dict[str, Any]) -> Row | None:
    """The cached row at ``path`` if it was made with the same ``stamp``."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if record.get("stamp") != stamp or set(record["row"]) != {f.name for f in fields(Row)}:
        logger.info("%s was made with other settings; running it again", path.name)
        return None
    return Row.from_dict(record["row"])


def _write(path: Path, row: Row, stamp: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"stamp": stamp, "row": row.to_dict()}, indent=1) + "\n")
    temporary.replace(path)


def _full_row(subject: Subject, t: LatencyConfig) -> Row:
    model, x, loaders = subject.model, subject.example, subject.loaders
    timing = latency(model, x, t.warmup, t.repeats, t.threads, runtime=t.runtime, batch=t.batch)
    return Row("full", "full model", "-", val=score(model, subject.task, loaders.val),
               test=score(model, subject.task, loaders.test), params=count_params(model),
               macs=count_macs(model, x) // x.shape[0], latency_ms=timing.median_ms,
               full_latency_ms=timing.median_ms)  # fmt: skip


def _run_one(
    method: Method, budget: Budget, subject: Subject, config: CompareConfig, path: Path
) -> Row:
    """Run ``method`` at ``budget``, save its model beside ``path``; its row."""
    row = Row(method.name, method.label, _budget_name(budget))
    settings = config.settings()
    try:
        _, row.prep_seconds = subject.wide(method, settings)
        start = time.perf_counter()
        small, report, done = run_method(method, subject, budget, settings, config.timing())
    except ValueError as err:  # the method cannot meet this budget: the row says why
        row.status, row.note = "skipped", str(err).splitlines()[0]
        return row
    row.seconds = time.perf_counter() - start
    row.val = score(small, subject.task, subject.loaders.val)
    row.test = score(small, subject.task, subject.loaders.test)
    row.params, row.macs, row.mac_ratio = report.after.params, report.after.macs, report.mac_ratio
    row.latency_ms, row.full_latency_ms = report.after.latency_ms, report.before.latency_ms
    row.met_budget = bool(report.met_budget)
    reached = report.mac_ratio if budget.metric == "macs" else 1 / report.speedup
    missed = [] if row.met_budget else [f"missed the budget: {reached:.1%} of the {budget.metric}"]
    row.note = "; ".join([*missed, *report.done, *done])
    metrics = {f"val_{subject.task.metric.name}": row.val,
               f"test_{subject.task.metric.name}": row.test,
               "macs": row.macs, "params": row.params}  # fmt: skip
    extra = {"data": subject.data, "compress": report.to_dict(), "compare": row.to_dict()}
    save_checkpoint(path.with_suffix(".safetensors"), small, metrics=metrics, extra=extra)
    return row


def compare(subject: Subject, config: CompareConfig, out: str | Path) -> Comparison:
    """Run every method of ``config`` at every budget on ``subject`` and keep the best.

    Args:
        subject: the trained model and its data (`subject_of` a loaded checkpoint).
        config: the methods, budgets and the equal post-compression budget.
        out: the folder of the cache (``cache/<method>-<budget>.json`` and
            ``.safetensors``) and of ``best-<budget>.safetensors``, the best model (by
            validation score) at each budget.

    Returns:
        A `Comparison`; `anywidth.compare.write_report` turns it into a table, a plot and
        an HTML page.
    """
    out = Path(out)
    cache = out / "cache"
    stamp = {"model": _fingerprint(subject.model), "settings": asdict(config.settings()),
             "timing": config.timing().to_dict()}  # fmt: skip
    full = _read(cache / "full.json", stamp)
    if full is None:
        full = _full_row(subject, config.timing())
        _write(cache / "full.json", full, stamp)
    jobs = [(METHODS[m], b) for m in config.methods for b in config.budgets()]
    rows = []
    bar = progress(jobs, desc="compare", total=len(jobs), leave=True)
    for method, budget in bar:
        bar.set_postfix_str(f"{method.name} at {_budget_name(budget)}")
        path = cache / f"{_key(method.name, budget)}.json"
        row = _read(path, stamp)
        if row is None:
            row = _run_one(method, budget, subject, config, path)
            _write(path, row, stamp)
        rows.append(row)
    result = Comparison(full, rows, subject.task.label, config, subject.task.is_accuracy)
    for row in result.best_rows():
        budget = next(b for b in config.budgets() if _budget_name(b) == row.budget)
        best = out / f"best-{budget.metric}{budget.value:g}.safetensors"
        shutil.copyfile(cache / f"{_key(row.method, budget)}.safetensors", best)
        result.best[row.budget] = best
    return result
