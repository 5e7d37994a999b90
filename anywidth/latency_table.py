"""A per-layer latency lookup table: `LayerTimes`, as NetAdapt and HALP build one.

Each convolution and linear layer is timed alone, on the runtime, batch and threads of a
`LatencyConfig`, once per shape: the key is the layer's type and hyper-parameters (channels
in and out, kernel, stride, padding, dilation, groups, bias) and its input shape, so the
identical blocks of a ResNet share entries and a plan that revisits a width costs nothing.
Channel counts are rounded up to the table's grid (multiples of 8 by default, finer for
layers under 64 channels) before the lookup: the candidate widths of NetAdapt's table, a
few per layer instead of one per channel count a search visits; the rounding
over-estimates slightly, never under.

Tables live in memory per setting (`LayerTimes.shared`) and, given a folder, in a JSON file
per setting and machine, so a second run on the same machine measures nothing.
"""

from __future__ import annotations

import copy
import json
import platform
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from anywidth.latency import LatencyConfig, latency

__all__ = ["LayerTimes", "timed_layers"]

_TIMED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
GRID = 8

Timer = Callable[[nn.Module, torch.Tensor, LatencyConfig], float]


def _measure(module: nn.Module, x: torch.Tensor, setting: LatencyConfig) -> float:
    """Median milliseconds of ``module`` alone on ``x`` (what `LayerTimes` measures with)."""
    t = latency(module, x, setting.warmup, setting.repeats, setting.threads,
                runtime=setting.runtime)  # fmt: skip
    return t.median_ms


@torch.no_grad()
def timed_layers(model: nn.Module, example_input) -> list[tuple[str, nn.Module, tuple]]:
    """``(name, layer, input shape)`` of every conv and linear layer ``model`` calls on
    ``example_input``, in call order (a layer called twice appears twice)."""
    found: list[tuple[str, nn.Module, tuple]] = []

    def hook(name: str):
        def record(module, args):
            found.append((name, module, tuple(args[0].shape)))

        return record

    handles = [
        m.register_forward_pre_hook(hook(name))
        for name, m in model.named_modules()
        if isinstance(m, _TIMED)
    ]
    was = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        inputs = example_input if isinstance(example_input, tuple) else (example_input,)
        model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in was:
            m.training = mode
    return found


def _up(n: int, grid: int) -> int:
    """``n`` rounded up to a multiple of ``grid``, or of ``n // 8`` for a narrow layer (the
    rounding then stays within an eighth)."""
    step = max(1, min(grid, n // 8))
    return -(-n // step) * step


def _on_grid(module: nn.Module, shape: tuple, grid: int) -> tuple[nn.Module, tuple]:
    """The layer with its channels rounded up to ``grid`` (a fresh one; values do not
    matter for time) and its input shape to match."""
    if grid <= 1:
        return module, shape
    if isinstance(module, nn.Linear):
        cin, cout = _up(module.in_features, grid), _up(module.out_features, grid)
        layer = nn.Linear(cin, cout, bias=module.bias is not None)
        return layer, (*shape[:-1], cin)
    m = module
    cin, cout, groups = _up(m.in_channels, grid), _up(m.out_channels, grid), m.groups
    if groups == m.in_channels == m.out_channels:  # depthwise stays depthwise
        groups = cin = cout = _up(m.in_channels, grid)
    elif groups > 1 and (cin % groups or cout % groups):
        return module, shape  # grouped widths that do not round evenly: as they are
    layer = type(m)(cin, cout, m.kernel_size, m.stride, m.padding, m.dilation, groups,
                    m.bias is not None, m.padding_mode)  # fmt: skip
    return layer, (shape[0], cin, *shape[2:])


def _signature(module: nn.Module, shape: tuple) -> str:
    if isinstance(module, nn.Linear):
        layer = f"Linear({module.in_features},{module.out_features},{module.bias is not None})"
    else:
        m = module
        layer = (
            f"{type(m).__name__}({m.in_channels},{m.out_channels},k={m.kernel_size},"
            f"s={m.stride},p={m.padding},d={m.dilation},g={m.groups},{m.bias is not None})"
        )
    return f"{layer}@{list(shape)}"


class LayerTimes:
    """Measured time of single layers, keyed by shape; shared per setting.

    Args:
        setting: runtime, batch, threads and counts every layer is timed with (the batch
            replaces the recorded input's first dimension).
        folder: where to keep the table as JSON (one file per setting and machine); None:
            in memory only.
        timer: ``(layer, input, setting) -> ms``; by default `anywidth.latency.latency`'s
            median. Tests inject a deterministic one.
        grid: channel counts are rounded up to multiples of this before the lookup (1:
            every width is its own entry).

    Attributes:
        hits: lookups answered from the table.
        misses: lookups that measured a layer.

    Example:
        >>> table = LayerTimes.shared(LatencyConfig(runtime="onnxruntime", batch=1))
        >>> table.layers_ms(model, x)      # the conv and linear layers' summed time
    """

    _tables: dict[tuple, LayerTimes] = {}

    def __init__(
        self,
        setting: LatencyConfig,
        folder: str | Path | None = None,
        timer: Timer | None = None,
        grid: int = GRID,
    ) -> None:
        if setting.threads is None:
            raise ValueError(
                "LayerTimes needs a LatencyConfig with threads set: a table is only valid "
                "for one thread count (e.g. LatencyConfig(threads=1))"
            )
        self.setting, self.timer, self.grid = setting, timer or _measure, grid
        self.path = None if folder is None else Path(folder) / self._file_name()
        self.entries: dict[str, float] = {}
        if self.path is not None and self.path.exists():
            self.entries = dict(json.loads(self.path.read_text())["entries"])
        self.hits = self.misses = 0

    @classmethod
    def shared(cls, setting: LatencyConfig, folder: str | Path | None = None) -> LayerTimes:
        """The process-wide table of ``setting`` (and ``folder``), made on first use."""
        key = (setting, None if folder is None else str(folder))
        if key not in cls._tables:
            cls._tables[key] = cls(setting, folder)
        return cls._tables[key]

    def _file_name(self) -> str:
        s = self.setting
        batch = "asgiven" if s.batch is None else s.batch
        host = "".join(c if c.isalnum() else "-" for c in platform.node()) or "host"
        name = f"layers-{s.runtime}-b{batch}-t{s.threads}-g{self.grid}-{host}"
        return f"{name}-torch{torch.__version__}.json"

    def layer_ms(self, module: nn.Module, shape: tuple) -> float:
        """One layer's time on an input of ``shape`` (measured on the first ask)."""
        if self.setting.batch is not None:
            shape = (self.setting.batch, *shape[1:])
        layer, shape = _on_grid(module, shape, self.grid)
        key = _signature(layer, shape)
        if key in self.entries:
            self.hits += 1
            return self.entries[key]
        self.misses += 1
        alone = (copy.deepcopy(layer) if layer is module else layer).float()
        self.entries[key] = float(self.timer(alone, torch.randn(shape), self.setting))
        self._save()
        return self.entries[key]

    def layers_ms(self, model: nn.Module, example_input) -> float:
        """The summed time of every conv and linear call ``model`` makes on the input."""
        return sum(self.layer_ms(m, shape) for _, m, shape in timed_layers(model, example_input))

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"setting": self.setting.to_dict(), "entries": self.entries}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=0, sort_keys=True))
        tmp.replace(self.path)
