"""Wall-clock latency a benchmark can trust: `latency`, `compare_latency`, `LatencyConfig`.

A model is timed on the runtime it will ship on, named by a string: ``"torch"`` (eager,
``no_grad``), ``"compile"`` (``torch.compile``; on CPU it needs a C++ compiler) or
``"onnxruntime"`` (the model exported to a temporary ONNX file and run by an ONNX Runtime
session). Every measurement warms up first, reports the median and the spread (half the
interquartile range) of its repeats, and names its runtime, batch and thread count.
`compare_latency` times several models in interleaved blocks, so that a change of machine
load between them shifts all of them alike instead of one.

Threads. On a machine where other processes hold the cores, more intra-op threads than
free cores is far slower than one thread: torch's OpenMP workers (and ONNX Runtime's) spin
at every barrier waiting for a sibling that has no core. `default_threads` therefore gives
the cores left free by the current load (``/proc/loadavg``), at least one, and the
``anywidth`` command sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy
(`anywidth.cli`; the measurements are in benchmarks/results/latency_threads.md).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from anywidth._config import Config

__all__ = [
    "RUNTIMES",
    "LatencyConfig",
    "Timing",
    "as_latency_config",
    "batched",
    "compare_latency",
    "default_threads",
    "latency",
    "runner",
]

RUNTIMES = ("torch", "compile", "onnxruntime")


def _cores() -> int:
    """The cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def _load() -> float | None:
    """The one-minute load average, or None where ``/proc/loadavg`` is missing."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def default_threads() -> int:
    """Intra-op threads that degrade gracefully: the cores the current load leaves free.

    The one-minute load average counts this process (about 1 while it runs); the rest is
    other work, each unit of which holds a core. Never fewer than 1, never more than the
    cores this process may use.

    Example:
        >>> 1 <= default_threads() <= os.cpu_count()
        True
    """
    cores = _cores()
    load = _load()
    if load is None:
        return cores
    free = cores - max(0.0, load - 1.0)
    return max(1, min(cores, math.floor(free + 0.5)))


@dataclass(frozen=True)
class LatencyConfig(Config):
    """Where and how to time a model.

    Args:
        runtime: ``"torch"``, ``"compile"`` or ``"onnxruntime"``.
        batch: the batch size to time (the example input's first sample repeated); None:
            the example input as given.
        threads: intra-op threads; None: `default_threads` (the cores free right now).
        warmup: untimed runs first (per model).
        repeats: timed runs (per model); the median is reported.

    Raises:
        ValueError: an unknown runtime, or a count below its least value; the message
            names the field.

    Example:
        >>> LatencyConfig(runtime="onnxruntime", batch=1, threads=1)
    """

    runtime: str = "torch"
    batch: int | None = None
    threads: int | None = 1
    warmup: int = 5
    repeats: int = 20

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"LatencyConfig.runtime={self.runtime!r}; use one of {list(RUNTIMES)}")
        for name, least, optional in (("batch", 1, True), ("threads", 1, True),
                                      ("warmup", 0, False), ("repeats", 1, False)):  # fmt: skip
            value = getattr(self, name)
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"LatencyConfig.{name}={value!r} must be an int >= {least}")

    def describe(self) -> str:
        """``"onnxruntime, batch 1, 1 thread"``: how the report names this setting."""
        batch = "the example's batch" if self.batch is None else f"batch {self.batch}"
        threads = "free cores" if self.threads is None else f"{self.threads} thread"
        plural = "s" if self.threads not in (None, 1) else ""
        return f"{self.runtime}, {batch}, {threads}{plural}"


def as_latency_config(where: str, value: object) -> LatencyConfig | None:
    """``value`` as a `LatencyConfig` (a dict is one read back from a saved config), or None.

    Raises:
        TypeError: anything else, naming ``where`` (e.g. ``"PruneConfig.latency"``).
    """
    if isinstance(value, Mapping):
        return LatencyConfig.from_dict(value)
    if value is not None and not isinstance(value, LatencyConfig):
        raise TypeError(
            f"{where}={value!r}; give an anywidth.latency.LatencyConfig such as "
            "LatencyConfig(runtime='onnxruntime', batch=1, threads=1)"
        )
    return value


@dataclass(frozen=True)
class Timing:
    """One model's latency: median and spread of its repeats, and where it was measured.

    Attributes:
        runtime: the runtime that ran it.
        batch: the batch size timed.
        threads: the intra-op threads used.
        median_ms: median time of one forward pass, in milliseconds.
        spread_ms: half the interquartile range of the repeats (0 for fewer than 2).
        min_ms: the fastest repeat.
        repeats: how many runs were timed.
    """

    runtime: str
    batch: int
    threads: int
    median_ms: float
    spread_ms: float
    min_ms: float
    repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


def batched(example_input: torch.Tensor | tuple, batch: int | None) -> tuple:
    """The inputs as a tuple, at ``batch`` (the first sample repeated) unless None."""
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    if batch is None:
        return inputs
    out = []
    for t in inputs:
        if isinstance(t, torch.Tensor) and t.dim() > 0:
            t = t[:1].expand(batch, *t.shape[1:]).contiguous()
        out.append(t)
    return tuple(out)


def _batch_of(inputs: tuple) -> int:
    first = inputs[0]
    return int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() > 0 else 1


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _onnx_session(model: nn.Module, inputs: tuple, threads: int, folder: str):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(
            "latency runtime='onnxruntime' needs the onnxruntime package: "
            "`pip install anywidth[onnx]`, or use runtime='torch'"
        ) from exc
    path = os.path.join(folder, "model.onnx")
    names = [f"input_{i}" for i in range(len(inputs))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, path, dynamo=False, opset_version=17, input_names=names)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs, strict=True)}
    return lambda: session.run(None, feeds)


def _compiled(model: nn.Module, inputs: tuple) -> Callable[[], object]:
    compiled = torch.compile(model, dynamic=False)
    try:
        compiled(*inputs)
    except Exception as exc:  # inductor fails in many ways (no compiler, unsupported op)
        raise RuntimeError(
            f"latency runtime='compile': torch.compile failed on this model "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); on CPU "
            "it needs a working C++ compiler; use runtime='torch' or 'onnxruntime'"
        ) from exc
    return lambda: compiled(*inputs)


@contextmanager
def runner(
    model: nn.Module, example_input: torch.Tensor | tuple, setting: LatencyConfig
) -> Iterator[tuple[Callable[[], object], int, int]]:
    """A no-argument call that runs ``model`` once on ``setting``'s runtime, for a block.

    Inside the block the model is in eval mode, gradients are off and torch uses the
    setting's threads; the model's modes and torch's thread count are restored after.

    Yields:
        ``(run, batch, threads)``.
    """
    inputs = batched(example_input, setting.batch)
    threads = setting.threads or default_threads()
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with _torch_threads(threads), torch.no_grad(), tempfile.TemporaryDirectory() as folder:
            if setting.runtime == "onnxruntime":
                run = _onnx_session(model, inputs, threads, folder)
            elif setting.runtime == "compile":
                run = _compiled(model, inputs)
            else:
                run = lambda: model(*inputs)  # noqa: E731
            yield run, _batch_of(inputs), threads
    finally:
        for module, mode in modes:
            module.training = mode


def _summary(times: list[float], setting: LatencyConfig, batch: int, threads: int) -> Timing:
    if len(times) > 1:
        q1, _, q3 = statistics.quantiles(times, n=4)
        spread = (q3 - q1) / 2
    else:
        spread = 0.0
    return Timing(setting.runtime, batch, threads, statistics.median(times), spread,
                  min(times), len(times))  # fmt: skip


def _timed(run: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def latency(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    warmup: int = 5,
    repeats: int = 20,
    threads: int | None = None,
    *,
    runtime: str = "torch",
    batch: int | None = None,
) -> Timing:
    """Wall-clock time of one forward pass on a runtime, in milliseconds.

    Args:
        model: run in eval mode without gradients (its modes are restored afterwards).
        example_input: the input to time (a tensor or tuple of tensors).
        warmup: untimed runs first.
        repeats: timed runs; the median and spread are reported.
        threads: intra-op threads; None: `default_threads` (the cores free right now).
        runtime: ``"torch"``, ``"compile"`` or ``"onnxruntime"``.
        batch: time at this batch size (the first sample repeated); None: as given.

    Returns:
        A `Timing` naming the runtime, batch and threads.

    Raises:
        ValueError: an unknown runtime or a bad count (the message names the argument).
        RuntimeError: ``runtime="compile"`` where torch.compile fails.

    Example:
        >>> t = latency(model, torch.randn(1, 3, 224, 224), runtime="onnxruntime", threads=1)
        >>> t.runtime, t.median_ms
        ('onnxruntime', 12.3)
    """
    setting = LatencyConfig(runtime, batch, threads, warmup, repeats)
    with runner(model, example_input, setting) as (run, used_batch, used_threads):
        _timed(run, warmup)
        times = _timed(run, repeats)
    return _summary(times, setting, used_batch, used_threads)


def compare_latency(
    models: Mapping[str, nn.Module],
    example_input: torch.Tensor | tuple,
    setting: LatencyConfig | None = None,
    *,
    blocks: int = 5,
) -> dict[str, Timing]:
    """Time several models on one setting in interleaved blocks.

    Every model is prepared (exported or compiled) and warmed up; then ``blocks`` rounds
    each time every model for ``setting.repeats / blocks`` runs, the order rotating from
    round to round, so that a change of load during the comparison reaches every model.

    Args:
        models: ``{name: model}``; each gets the same input.
        example_input: the input (at ``setting.batch`` if set).
        setting: runtime, batch, threads and counts (default: `LatencyConfig()`).
        blocks: the number of interleaved rounds.

    Returns:
        ``{name: Timing}`` in the order of ``models``.

    Example:
        >>> t = compare_latency({"dense": model, "small": small}, x, LatencyConfig(threads=1))
        >>> t["dense"].median_ms / t["small"].median_ms   # the measured speed-up
    """
    setting = setting or LatencyConfig()
    # one thread count for every model, even when the load changes while they are prepared
    setting = replace(setting, threads=setting.threads or default_threads())
    if not models:
        raise ValueError("compare_latency needs at least one model in models=")
    if blocks < 1:
        raise ValueError(f"compare_latency blocks={blocks!r} must be >= 1")
    names = list(models)
    per_block = max(1, math.ceil(setting.repeats / blocks))
    times: dict[str, list[float]] = {n: [] for n in names}
    runs: dict[str, Callable[[], object]] = {}
    with _each_runner(models, example_input, setting) as prepared:
        for name, (run, _, _) in prepared.items():
            runs[name] = run
            _timed(run, setting.warmup)
        for block in range(blocks):
            shift = block % len(names)
            for name in names[shift:] + names[:shift]:
                times[name] += _timed(runs[name], per_block)
        used = {n: prepared[n][1:] for n in names}
    return {n: _summary(times[n], setting, *used[n]) for n in names}


@contextmanager
def _each_runner(models: Mapping[str, nn.Module], example_input, setting: LatencyConfig):
    """`runner` for every model at once (nested blocks)."""
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(runner(model, example_input, setting))
            for name, model in models.items()
        }
