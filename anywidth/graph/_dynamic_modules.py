"""Any-width forms of layers whose forward would freeze a channel count, for `width_agnostic`.

Most layers need none: ``F.conv2d``, ``F.linear``, ``F.batch_norm``, ``F.group_norm`` and
``F.prelu`` take every channel count from the weight and input shapes, and the attributes
`cut` updates on them (``in_channels``, ``num_features``...) are not read by ``forward``.
Three are replaced, each by a small module holding the very same parameters and buffers
under the same names:

- a depthwise conv: ``groups = weight.shape[0] // multiplier`` (one conv group per input
  channel; the multiplier ``out / in`` never changes, see the conv rule);
- LayerNorm: ``normalized_shape`` is the input's trailing shape;
- InstanceNorm: ``num_features`` is checked against the input by ``forward``.

A grouped conv keeps its ``groups`` (a cut keeps the same channels in every conv group),
GroupNorm its ``num_groups``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

from anywidth.graph._affine import FormOf
from anywidth.graph._analysis import Analyzer
from anywidth.graph._types import GraphError, PlanError

__all__ = [
    "DepthwiseConv",
    "DynamicLayerNorm",
    "DynamicInstanceNorm",
    "OwnForward",
    "make_modules_dynamic",
    "stock_or_error",
]

_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class _Adopting(nn.Module):
    """Takes over another module's parameters and buffers, names and persistence kept."""

    def __init__(self, old: nn.Module) -> None:
        super().__init__()
        self.training = old.training
        for name, param in old._parameters.items():
            self.register_parameter(name, param)
        for name, buf in old._buffers.items():
            self.register_buffer(name, buf, persistent=name not in old._non_persistent_buffers_set)


class DepthwiseConv(_Adopting):
    """A depthwise conv (1-3 d) whose group count follows its weight.

    ``groups = weight.shape[0] // multiplier``, so ``F.conv`` then checks that the input has
    that many channels.
    """

    def __init__(self, conv: nn.Module) -> None:
        super().__init__(conv)
        self.multiplier = conv.out_channels // conv.in_channels
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.padding_mode = conv.padding_mode
        self.pad = conv._reversed_padding_repeated_twice

    def extra_repr(self) -> str:
        return f"multiplier={self.multiplier}, stride={self.stride}, padding={self.padding}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight  # (C * multiplier, 1, *kernel)
        groups, rest = divmod(weight.shape[0], self.multiplier)
        if rest:
            raise PlanError(
                f"a depthwise conv with channel multiplier {self.multiplier} got a weight of "
                f"shape {tuple(weight.shape)}: {weight.shape[0]} outputs is not a multiple"
            )
        padding = self.padding
        if self.padding_mode != "zeros":
            x, padding = F.pad(x, self.pad, mode=self.padding_mode), 0
        conv = _CONV_FN[weight.dim() - 2]
        return conv(x, weight, self.bias, self.stride, padding, self.dilation, groups)


class DynamicLayerNorm(_Adopting):
    """LayerNorm over the input's last ``ndim`` dimensions, whatever their sizes."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__(norm)
        self.ndim, self.eps = len(norm.normalized_shape), norm.eps

    def extra_repr(self) -> str:
        return f"ndim={self.ndim}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[x.dim() - self.ndim :]
        return F.layer_norm(x, shape, self.weight, self.bias, self.eps)


class DynamicInstanceNorm(_Adopting):
    """InstanceNorm without the ``num_features`` check."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__(norm)
        self.spatial = norm._get_no_batch_dim() - 1
        self.momentum, self.eps = norm.momentum, norm.eps
        self.track_running_stats = norm.track_running_stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unbatched = x.dim() == self.spatial + 1
        y = F.instance_norm(
            x.unsqueeze(0) if unbatched else x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            self.momentum if self.momentum is not None else 0.0,
            self.eps,
        )
        return y.squeeze(0) if unbatched else y


class OwnForward(Exception):
    """A layer needs its any-width form, but its class overrides the stock forward."""


def stock_or_error(module: nn.Module, bases: tuple[type, ...]) -> nn.Module:
    """``module`` itself when it runs the forward of a torch.nn class, else `OwnForward`."""
    if not any(type(module).forward is base.forward for base in bases):
        raise OwnForward
    return module


def make_modules_dynamic(gm: fx.GraphModule, ax: Analyzer, form: FormOf) -> list[str]:
    """Swap in its any-width form (`LayerSpec.dynamic`) for every layer that needs one.

    Returns:
        The names of the replaced modules.

    Raises:
        GraphError: such a layer is a subclass with its own ``forward``.
    """
    from anywidth.graph.layers import spec_for  # the layer specs import this module

    called = {node.target for node in gm.graph.nodes if node.op == "call_module"}
    replaced = []
    for name, io in ax.module_io.items():
        if name not in called:  # its tensors are read by a functional call (torch.export)
            continue
        module = gm.get_submodule(name)
        spec = spec_for(module)
        if spec is None or spec.dynamic is None:
            continue
        try:
            new = spec.dynamic(module, io, lambda c: form(c.slot, c.block))
        except OwnForward:
            raise GraphError(
                f"module '{name}' ({type(module).__name__}) has its own forward, so "
                "width_agnostic cannot make its channel count dynamic; keep the channel "
                "group it reads whole (pass channel_groups(..., fixed=[...]) as groups)"
            ) from None
        if new is None:
            continue
        owner, _, attr = name.rpartition(".")
        setattr(gm.get_submodule(owner) if owner else gm, attr, new)
        replaced.append(name)
    return replaced
