"""Property-based tests over random architectures built from the supported ops."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anywidth.graph import WidthCost, channel_groups, cut
from anywidth.measure import count_macs, count_params
from tests._hypothesis import n_examples
from tests.graph._helpers import masked_forward, randomize_, rel_err
from tests.graph._random_nets import RandomNet, architectures

X = torch.randn(2, 3, 4, 4, dtype=torch.float64)


def _build(arch) -> RandomNet:
    stem, blocks, head = arch
    return randomize_(RandomNet(stem, blocks, head).double())


@settings(max_examples=n_examples(ci=30))
@given(arch=architectures(), data=st.data())
def test_cut_matches_masked_original_and_plan(arch, data):
    model = _build(arch)
    groups = channel_groups(model, X)
    free = [g for g in groups if not g.fixed]
    keep = {}
    for g in free:
        if data.draw(st.booleans(), label=f"cut {g.name}"):
            kept = data.draw(st.sets(st.integers(0, g.size - 1), min_size=1), label=g.name)
            keep[g.name] = sorted(kept)
    small = cut(model, X, keep, groups=groups)
    assert rel_err(small(X), masked_forward(model, X, groups, keep)) <= 1e-5
    sizes = {name: len(kept) for name, kept in keep.items()}
    cost = WidthCost(model, X, groups)
    assert count_params(small) == cost.params(sizes)
    assert count_macs(small, X) == cost.macs(sizes)


@settings(max_examples=n_examples(ci=15))
@given(arch=architectures())
def test_keeping_every_channel_is_the_identity(arch):
    model = _build(arch)
    groups = channel_groups(model, X)
    small = cut(model, X, {g.name: range(g.size) for g in groups if not g.fixed})
    assert torch.equal(small(X), model(X))


@settings(max_examples=n_examples(ci=30))
@given(arch=architectures())
def test_members_tile_every_tensor_dimension_exactly_once(arch):
    model = _build(arch)
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    covered: dict[tuple[str, int], list[int]] = {}
    for g in channel_groups(model, X):
        assert 1 <= g.size and g.members
        for m in g.members:
            covered.setdefault((m.name, m.dim), []).extend(m.indices(list(range(g.size))))
    for (name, dim), indices in covered.items():
        assert sorted(indices) == list(range(tensors[name].shape[dim])), (name, dim)
    assert ("fc.weight", 0) in covered and ("stem.0.weight", 1) in covered
