"""Property: a random net whose convs, norms and linears call the functional form on their own
tensors groups, costs and cuts exactly like the same net with the torch modules."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from anywidth.graph import WidthCost, channel_groups, cut
from anywidth.measure import count_macs
from tests._hypothesis import n_examples
from tests.graph._helpers import randomize_, rel_err
from tests.graph._random_nets import RandomNet, architectures

X = torch.randn(2, 3, 4, 4, dtype=torch.float64)


class FunctionalConv2d(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class FunctionalBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x):
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


class FunctionalLinear(nn.Linear):
    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


_FUNCTIONAL = {
    nn.Conv2d: FunctionalConv2d,
    nn.BatchNorm2d: FunctionalBatchNorm2d,
    nn.Linear: FunctionalLinear,
}


def _functional_twin(model: nn.Module) -> nn.Module:
    """The same net, tensors and names, with every conv, BN and linear in functional form."""
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if type(module) in _FUNCTIONAL:
            module.__class__ = _FUNCTIONAL[type(module)]
    return twin


def _signature(groups) -> list[tuple]:
    return [(g.name, g.size, g.fixed, frozenset(g.members)) for g in groups]


@settings(max_examples=n_examples(ci=20))
@given(arch=architectures(), data=st.data())
def test_functional_layers_group_cost_and_cut_like_modules(arch, data):
    stem, blocks, head = arch
    model = randomize_(RandomNet(stem, blocks, head).double())
    twin = _functional_twin(model)
    groups = channel_groups(model, X)
    assert _signature(channel_groups(twin, X)) == _signature(groups)
    keep = {}
    for g in groups:
        if not g.fixed and data.draw(st.booleans(), label=f"cut {g.name}"):
            kept = data.draw(st.sets(st.integers(0, g.size - 1), min_size=1), label=g.name)
            keep[g.name] = sorted(kept)
    sizes = {name: len(kept) for name, kept in keep.items()}
    assert WidthCost(twin, X).macs(sizes) == WidthCost(model, X).macs(sizes)
    small, small_twin = cut(model, X, keep), cut(twin, X, keep)
    assert isinstance(small_twin, RandomNet) == isinstance(small, RandomNet)
    assert count_macs(small_twin, X) == count_macs(small, X)
    with torch.no_grad():
        assert rel_err(small_twin(X), small(X)) <= 1e-12
