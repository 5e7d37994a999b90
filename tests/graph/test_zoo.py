"""Every registered zoo model: groups found, a keep-first-half cut matches the masked model.

One model per family gets the full check (masked output, MAC and parameter plans); the
other depths and widths of a family only differ in size, so they get a lighter check
(marked slow: the larger ReXNets have tens of millions of parameters).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import anywidth
from anywidth.graph import WidthCost, channel_groups, cut, keep_first
from anywidth.measure import count_macs, count_params
from anywidth.models import model_kwargs
from tests.graph._helpers import masked_forward, randomize_, rel_err

MODELS = [n for n in anywidth.list_models() if not n.startswith("_")]  # "_": test-only models
FULL_CHECK = {"resnet20", "vgg11", "mobilenetv2", "rexnet_090", "rexnet_100"}


def _params(names: list[str]) -> list:
    full = [n for n in names if n in FULL_CHECK or n.startswith("tiny_")]
    return full + [pytest.param(n, marks=pytest.mark.slow) for n in names if n not in full]


def _input(name: str, dtype: torch.dtype) -> torch.Tensor:
    kwargs = model_kwargs(name)
    size = kwargs.get("image_size", 16)
    return torch.randn(1, kwargs.get("in_channels", 3), size, size, dtype=dtype)


def _half(model: nn.Module, x: torch.Tensor):
    groups = channel_groups(model, x)
    free = [g for g in groups if not g.fixed]
    assert free, "no group can be cut"
    sizes = {g.name: max(1, g.size // 2) for g in free}
    keep = keep_first(groups, sizes)
    small = cut(model, x, keep, groups=groups)
    out = small(x)
    assert out.shape == model(x).shape and torch.isfinite(out).all()
    return groups, sizes, keep, small, out


@pytest.mark.skipif(not MODELS, reason="the model zoo is empty")
@pytest.mark.parametrize("name", _params(MODELS))
def test_zoo_model_cuts_to_half_width(name):
    full = name in FULL_CHECK or name.startswith("tiny_")
    dtype = torch.float64 if full else torch.float32
    model = randomize_(anywidth.create_model(name).to(dtype))
    x = _input(name, dtype)
    groups, sizes, keep, small, out = _half(model, x)
    assert type(small) is type(model)  # the user's own class, not a GraphModule
    assert count_params(small) < count_params(model)
    if not full:
        return
    # Normalising across channels (GroupNorm, LayerNorm) is not a mask; skip that check there.
    if not any(isinstance(m, (nn.GroupNorm, nn.LayerNorm)) for m in model.modules()):
        assert rel_err(out, masked_forward(model, x, groups, keep)) <= 1e-5
    cost = WidthCost(model, x, groups)
    assert cost.params(sizes) == count_params(small)
    assert cost.macs(sizes) == count_macs(small, x)
