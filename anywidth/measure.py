"""Size, cost, speed and quality of a model: params, MACs, latency, accuracy.

Every method's result is summarised by `profile`, which returns one `Report` so that
pruning, INN resampling and the rest land in the same table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from anywidth._config import check_keys
from anywidth.latency import LatencyConfig, Timing, compare_latency, latency
from anywidth.metrics import ACCURACY, Metric

__all__ = [
    "Report",
    "count_params",
    "count_macs",
    "latency",
    "compare_latency",
    "LatencyConfig",
    "Timing",
    "evaluate",
    "eval_mode",
    "forward_hooked",
    "profile",
]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for a block, then restore every submodule's own flag.

    ``model.train(was_training)`` would restore only the root's flag and set every submodule
    to it, flipping a submodule that was deliberately in the other mode (a frozen BatchNorm
    in a training model, say). This saves and restores each module's flag.

    Example:
        >>> with eval_mode(model):
        ...     logits = model(x)
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        model.train(modes[0][1])
        for module, mode in modes:
            module.training = mode


def _model_inputs(batch: object) -> tuple[tuple, dict]:
    """A model's ``(args, kwargs)`` from one batch: a dict of keyword inputs (Hugging Face),
    an ``(inputs, labels, ...)`` tuple as loaders yield (the inputs), or the inputs."""
    if isinstance(batch, Mapping):
        return (), dict(batch)
    if isinstance(batch, (tuple, list)):
        return (batch[0],), {}
    return (batch,), {}


def forward_hooked(
    model: nn.Module,
    data: object,
    hooks: Iterable[tuple[nn.Module, Callable]],
    max_batches: int,
) -> int:
    """Run the first ``max_batches`` batches of ``data`` through ``model`` (eval mode,
    ``no_grad``) with every ``(module, hook)`` of ``hooks`` registered as a forward hook,
    removed afterwards. ``data`` is one tensor or an iterable of batches: tensors, ``(inputs,
    labels, ...)`` tuples as loaders yield (the inputs are used), or dicts of keyword inputs.

    Returns:
        The number of batches run.

    Raises:
        ValueError: ``data`` gave no batch.

    Example:
        >>> forward_hooked(model, loader, [(model.fc, lambda m, args, out: print(out.shape))], 2)
    """
    batches = [data] if isinstance(data, torch.Tensor) else data
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    seen = 0
    try:
        with eval_mode(model), torch.no_grad():
            for batch in itertools.islice(batches, max_batches):
                args, kwargs = _model_inputs(batch)
                model(*args, **kwargs)
                seen += 1
    finally:
        for handle in handles:
            handle.remove()
    if seen == 0:
        raise ValueError("data gave no batches: pass a tensor or an iterable of batches")
    return seen


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor counted once).

    Example:
        >>> count_params(torch.nn.Linear(3, 2))
        8
    """
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def _as_tuple(example_input) -> tuple:
    return example_input if isinstance(example_input, tuple) else (example_input,)


@torch.no_grad()
def count_macs(model: nn.Module, example_input: torch.Tensor | tuple) -> int:
    """Multiply-accumulate operations of one forward pass on ``example_input``.

    Built on `torch.utils.flop_counter.FlopCounterMode`, which counts matrix multiplies and
    convolutions (2 FLOPs per multiply-add); MACs are half its FLOPs. Element-wise ops,
    normalisation and pooling are not counted, matching the usual published figures.
    Attention (``scaled_dot_product_attention``) counts its two products on every device;
    torch's own counter skips the CPU kernel.

    Args:
        model: any module; it is run once in eval mode and its mode is restored.
        example_input: a tensor (or tuple of tensors) with the batch size to count for.

    Returns:
        The MAC count for that whole input batch.
    """
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOPS)
    with eval_mode(model), _no_grad_parameters(model), counter:
        model(*_as_tuple(example_input))
    return int(counter.get_total_flops()) // 2


@contextmanager
def _no_grad_parameters(model: nn.Module) -> Iterator[None]:
    """Parameters without ``requires_grad`` for the block, then as they were.

    The counter's module tracker hooks every module input that requires grad, and fails
    ("Expected gradient function to be set") on a parameter passed to a submodule as an
    input under no_grad (timm's PiT hands its class token to its stages).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_EXTRA_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: str | torch.device = "cpu",
    metric: Metric = ACCURACY,
) -> dict[str, float]:
    """Mean score and loss of ``model`` over ``loader``, per sample.

    Args:
        model: run in eval mode, without gradients.
        loader: ``(inputs, targets)`` batches.
        device: where to run.
        metric: what to score; top-1 accuracy and cross-entropy by default,
            ``anywidth.metrics.psnr_metric(scale)`` for super-resolution.

    Returns:
        ``{metric.name: mean score, "loss": mean loss, "samples": count}``, e.g.
        ``{"accuracy": fraction in [0, 1], "loss": ..., "samples": ...}``.
    """
    score_sum, loss_sum, count = 0.0, 0.0, 0
    with eval_mode(model), torch.no_grad():
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = model(inputs)
            score_sum += metric.score(outputs, targets).sum().item()
            loss_sum += metric.loss(outputs, targets).sum().item()
            count += targets.shape[0]
    if count == 0:
        raise ValueError("evaluate got an empty loader; check the data split")
    return {metric.name: score_sum / count, "loss": loss_sum / count, "samples": count}


@dataclass
class Report:
    """One comparable row: size, cost, speed and (optionally) quality of a model."""

    name: str
    params: int
    macs: int
    latency_ms: float
    threads: int
    batch_size: int
    accuracy: float | None = None
    loss: float | None = None
    runtime: str = "torch"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        """Rebuild from `to_dict` output; an unknown key raises ``ValueError`` naming it."""
        check_keys("Report", data, [f.name for f in fields(cls)])
        return cls(**data)


def profile(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    loader: Iterable | None = None,
    name: str = "model",
    repeats: int = 20,
    threads: int | None = None,
    timing: Timing | None = None,
) -> Report:
    """Measure params, MACs, latency and (with ``loader``) accuracy in one record.

    MACs are per sample (the count for ``example_input`` divided by its batch size).
    Latency is torch eager at ``threads`` (None: `anywidth.latency.default_threads`) on
    ``example_input``, unless ``timing`` gives a measurement already made (e.g. by
    `compare_latency` on another runtime); the report then carries its runtime and batch.

    Example:
        >>> report = profile(model, torch.randn(1, 3, 32, 32), loader=test_loader)
    """
    first = _as_tuple(example_input)[0]
    batch = int(first.shape[0]) if first.dim() > 0 else 1
    timing = timing or latency(model, example_input, repeats=repeats, threads=threads)
    quality = evaluate(model, loader) if loader is not None else {}
    return Report(
        name=name,
        params=count_params(model),
        macs=count_macs(model, example_input) // max(batch, 1),
        latency_ms=timing.median_ms,
        threads=timing.threads,
        batch_size=timing.batch,
        accuracy=quality.get("accuracy"),
        loss=quality.get("loss"),
        runtime=timing.runtime,
    )
