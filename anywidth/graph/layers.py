"""Layer specs: what anywidth knows about one layer type, in one place — and `register_layer`.

For every layer type anywidth needs four things, held by one `LayerSpec`:

- **couple**: how the layer's tensors tie to the channels it reads and writes (a conv's
  weight dimension 1 holds its input channels, dimension 0 its output channels);
- **resize**: how `cut` updates the layer's attributes once its tensors are smaller
  (``in_channels``, ``num_features``...);
- **dynamic**: the any-width form `width_agnostic` swaps in when the layer's forward would
  freeze a channel count (a depthwise conv's ``groups``), or None when it reads every count
  from its tensors;
- **cost**: its multiply-accumulates as a product of channel counts, for budgets.

The torch.nn layers are registered in `anywidth.graph._layers_torch`. A user's own layer — a
fused conv, a quantised linear — becomes prunable and integrable with one call; it is then
traced as a leaf (its forward is not traced, so it may hold code torch.fx cannot trace):

Example:
    >>> class QuantLinear(nn.Module):  # int8 weight (out, in), per-output scale (out,)
    ...     def forward(self, x):
    ...         return F.linear(x, self.weight.float() * self.scale[:, None], self.bias)
    >>> register_layer(
    ...     QuantLinear,
    ...     LayerSpec.dense(
    ...         inputs={"weight": 1},
    ...         outputs={"weight": 0, "scale": 0, "bias": 0},
    ...         channel_dim=-1,
    ...     ),
    ... )
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from anywidth.graph._affine import Form
from anywidth.graph._analysis import (
    Analyzer,
    Call,
    Channels,
    LayerCost,
    LayerIO,
    NotUnderstood,
    Tracked,
)
from anywidth.graph._types import GraphError

__all__ = [
    "Channels",
    "LayerCost",
    "LayerIO",
    "LayerSpec",
    "register_layer",
    "spec_for",
]

Couple = Callable[[Analyzer, Call, nn.Module], Any]
Resize = Callable[[nn.Module, LayerIO, Callable[[Channels], int]], None]
Dynamic = Callable[[nn.Module, LayerIO, Callable[[Channels], Form]], nn.Module | None]
Cost = Callable[[nn.Module, Call, LayerIO], LayerCost | None]


@dataclass(frozen=True)
class LayerSpec:
    """Everything anywidth needs to know about one layer type.

    Most users build one with `LayerSpec.dense` or `LayerSpec.per_channel`; the fields are
    the general form used for the torch.nn layers.

    Attributes:
        couple: ``couple(ax, call, module) -> info``: binds the module's tensors to the
            channel slots of its input and output (``ax.consume``, ``ax.output_slot``,
            ``ax.bind``), records a `LayerIO` in ``ax.module_io[name]`` when the layer has
            attributes to resize, and returns the output's info (a ``Tracked``).
        resize: ``resize(module, io, length)``: update the module's attributes after a cut;
            ``length(channels)`` is the new length of a `Channels`. None: nothing to update.
        dynamic: ``dynamic(module, io, form) -> replacement or None``: the module that
            `width_agnostic` uses instead, when the layer's forward holds a channel count
            of a group that may change (``form(channels).coefs`` is non-empty); None when
            the forward reads every count from its tensors.
        cost: ``cost(module, call, io) -> LayerCost or None``: the layer's MACs as a
            product of channel lengths; None for layers whose MACs are not counted.
    """

    couple: Couple
    resize: Resize | None = None
    dynamic: Dynamic | None = None
    cost: Cost | None = None

    @classmethod
    def dense(
        cls,
        inputs: Mapping[str, int],
        outputs: Mapping[str, int],
        resize: Callable[[nn.Module, int, int], None] | None = None,
        channel_dim: int = 1,
    ) -> LayerSpec:
        """A layer that maps input channels to new output channels (a conv, a linear).

        Its MACs are measured once at full width (``torch.utils.flop_counter``) and taken
        to scale with input times output channels, as for a conv or a linear.

        Args:
            inputs: ``{tensor: dimension}`` of the layer's own parameters and buffers that
                hold its input channels, e.g. ``{"weight": 1}``.
            outputs: ``{tensor: dimension}`` that hold its output channels, e.g.
                ``{"weight": 0, "bias": 0}``. Tensors that are None are skipped.
            resize: ``resize(module, in_channels, out_channels)`` updates attributes after
                a cut, if the layer has any; its forward must read counts from tensors.
            channel_dim: the channel dimension of its input and output (1 for ``(B, C,
                ...)``, -1 for channels-last features).
        """
        _check_tensor_dims("inputs", inputs)
        _check_tensor_dims("outputs", outputs)
        if not outputs:
            raise ValueError("LayerSpec.dense needs at least one tensor in outputs=")
        return cls(
            couple=_DenseCouple(dict(inputs), dict(outputs), channel_dim),
            resize=None if resize is None else _dense_resize(resize),
            cost=_MeasuredCost(channel_dim),
        )

    @classmethod
    def per_channel(
        cls,
        tensors: Mapping[str, int],
        resize: Callable[[nn.Module, int], None] | None = None,
        channel_dim: int = 1,
    ) -> LayerSpec:
        """A layer that keeps its channels and holds one value per channel (a norm, a scale).

        Args:
            tensors: ``{tensor: dimension}`` of its per-channel parameters and buffers.
            resize: ``resize(module, channels)`` updates attributes after a cut.
            channel_dim: the channel dimension of its input and output.
        """
        _check_tensor_dims("tensors", tensors)
        return cls(
            couple=_PerChannelCouple(dict(tensors), channel_dim),
            resize=None if resize is None else _per_channel_resize(resize),
        )


_SPECS: dict[type, LayerSpec] = {}
_LEAVES: set[type] = set()


def register_layer(layer_type: type[nn.Module], spec: LayerSpec, *, leaf: bool = True) -> None:
    """Make a layer type prunable and integrable: tell anywidth how its channels work.

    Applies to the type and its subclasses. Registering a type again replaces its spec.

    Args:
        layer_type: the module class.
        spec: its `LayerSpec` (see `LayerSpec.dense` and `LayerSpec.per_channel`).
        leaf: trace calls of the layer as one opaque node instead of tracing its forward
            (needed when the forward holds code torch.fx cannot trace; the torch.nn layers
            are leaves already).

    Raises:
        TypeError: ``layer_type`` is not an ``nn.Module`` class, or ``spec`` not a
            `LayerSpec`.

    Example:
        >>> register_layer(FusedConvBN, LayerSpec.dense(
        ...     inputs={"weight": 1}, outputs={"weight": 0, "bias": 0},
        ...     resize=lambda m, n_in, n_out: setattr(m, "out_channels", n_out)))
        >>> small, report = prune(model_with_fused_layers, x, PruneConfig(target_macs=0.5))
    """
    if not (isinstance(layer_type, type) and issubclass(layer_type, nn.Module)):
        raise TypeError(f"register_layer needs an nn.Module class, got {layer_type!r}")
    if not isinstance(spec, LayerSpec):
        raise TypeError(
            f"register_layer({layer_type.__name__}, ...) needs a LayerSpec, got "
            f"{type(spec).__name__}; build one with LayerSpec.dense or LayerSpec.per_channel"
        )
    _SPECS[layer_type] = spec
    if leaf:
        _LEAVES.add(layer_type)
    else:
        _LEAVES.discard(layer_type)


def spec_for(module: nn.Module) -> LayerSpec | None:
    """The spec of the module's type, or of its nearest registered base class."""
    for cls in type(module).__mro__:
        if cls in _SPECS:
            return _SPECS[cls]
    return None


def is_registered_leaf(module: nn.Module) -> bool:
    """Whether the tracer must keep calls of ``module`` as one node."""
    return any(cls in _LEAVES for cls in type(module).__mro__)


def _check_tensor_dims(what: str, tensors: Mapping[str, int]) -> None:
    for name, dim in tensors.items():
        if not isinstance(name, str) or not isinstance(dim, int):
            raise TypeError(
                f"LayerSpec {what}= maps tensor names to dimensions, e.g. {{'weight': 0}}; "
                f"got {name!r}: {dim!r}"
            )


def _tensor(module: nn.Module, path: str) -> torch.Tensor | None:
    owner, _, attr = path.rpartition(".")
    value = getattr(module.get_submodule(owner) if owner else module, attr, None)
    return value if isinstance(value, torch.Tensor) else None


def _bind_all(ax: Analyzer, name: str, m: nn.Module, tensors: dict, slot: int, block=1) -> None:
    for path, dim in tensors.items():
        tensor = _tensor(m, path)
        if tensor is None:
            continue
        if not -tensor.dim() <= dim < tensor.dim():
            raise GraphError(
                f"layer '{name}' ({type(m).__name__}): its LayerSpec names dimension {dim} of "
                f"tensor {path!r}, which has shape {tuple(tensor.shape)}; fix the spec"
            )
        ax.bind(f"{name}.{path}", dim % tensor.dim(), slot, block)


@dataclass(frozen=True)
class _DenseCouple:
    inputs: dict[str, int]
    outputs: dict[str, int]
    channel_dim: int

    def __call__(self, ax: Analyzer, call: Call, m: nn.Module) -> Any:
        arg, x = call.node.args[0], call.args[0]
        name, y = call.node.target, call.result
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise NotUnderstood("a dense layer spec needs one tensor input and output")
        in_slot, in_block = ax.consume(call, arg, x, self.channel_dim % x.dim())
        first = next(p for p in self.outputs if _tensor(m, p) is not None)
        out_dim = self.channel_dim % y.dim()
        size = int(y.shape[out_dim])
        out = ax.output_slot(f"{name}.{first}", self.outputs[first] % _tensor(m, first).dim(),
                             size, f"{name}:out")  # fmt: skip
        _bind_all(ax, name, m, self.inputs, in_slot, in_block)
        _bind_all(ax, name, m, self.outputs, out)
        ax.module_io[name] = LayerIO(Channels(in_slot, in_block), Channels(out))
        return Tracked(out_dim, out)


@dataclass(frozen=True)
class _PerChannelCouple:
    tensors: dict[str, int]
    channel_dim: int

    def __call__(self, ax: Analyzer, call: Call, m: nn.Module) -> Any:
        arg, x = call.node.args[0], call.args[0]
        if not isinstance(x, torch.Tensor):
            raise NotUnderstood("a per-channel layer spec needs a tensor input")
        dim = self.channel_dim % x.dim()
        slot, block = ax.consume(call, arg, x, dim)
        _bind_all(ax, call.node.target, m, self.tensors, slot, block)
        channels = Channels(slot, block)
        ax.module_io[call.node.target] = LayerIO(channels, channels)
        return Tracked(dim, slot, block)


def _dense_resize(fn: Callable[[nn.Module, int, int], None]) -> Resize:
    def resize(m: nn.Module, io: LayerIO, length: Callable[[Channels], int]) -> None:
        fn(m, length(io.inputs), length(io.outputs))

    return resize


def _per_channel_resize(fn: Callable[[nn.Module, int], None]) -> Resize:
    def resize(m: nn.Module, io: LayerIO, length: Callable[[Channels], int]) -> None:
        fn(m, length(io.inputs))

    return resize


@dataclass(frozen=True)
class _MeasuredCost:
    """MACs measured at full width, taken to scale with input times output channels."""

    channel_dim: int

    @torch.no_grad()
    def __call__(self, m: nn.Module, call: Call, io: LayerIO) -> LayerCost | None:
        counter = FlopCounterMode(display=False)
        with counter:
            m(*call.args, **call.kwargs)
        macs = int(counter.get_total_flops()) // 2
        if not macs:
            return None
        x, y = call.args[0], call.result
        n_in = int(x.shape[self.channel_dim % x.dim()])
        n_out = int(y.shape[self.channel_dim % y.dim()])
        return LayerCost(macs, (io.outputs, io.inputs), n_in * n_out)
