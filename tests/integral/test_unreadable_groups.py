"""to_integral and load_integral keep whole the groups the skeleton cannot read."""

from __future__ import annotations

import logging

import pytest
import torch

from anywidth.integral import load_integral, save_integral, to_integral
from tests.graph._helpers import randomize_
from tests.graph._random_nets import RandomNet

pytestmark = pytest.mark.usefixtures("one_thread")

# A grouped conv whose tied channels a chunk re-splits: the split sizes need the size of
# 'blocks.1.a.0:out[0:2]' and '[2:4]', and every shape holds them only together.
BLOCKS = [("concat", 1, 5), ("grouped", 12, 3), ("split", 6, 3, 3, "chunk")]


def test_unreadable_group_stays_discrete_and_the_rest_resamples(tmp_path, caplog):
    model, x = randomize_(RandomNet(2, BLOCKS, "mean")), torch.randn(2, 3, 4, 4)
    with caplog.at_level(logging.WARNING, logger="anywidth.graph"):
        inn = to_integral(model, x[:1]).eval()
    assert [r.message.count("'blocks.1.a.0:out[0:2]'") for r in caplog.records] == [1]
    fixed = [g.name for g in inn.groups if g.fixed]
    assert fixed == ["input:x", "blocks.1.a.0:out[0:2]", "fc:out"]
    assert "blocks.1.a.0:out[2:4]" in [g.name for g in inn.resizable]
    plan = {"blocks.1.a.0:out[2:4]": 1, "blocks.2.a.0:out": 2}
    with torch.no_grad():
        with inn.at(plan):
            y = inn(x)
        small = inn.resample(plan)
        assert torch.equal(small(x), y)
    assert small.blocks[1].a[0].weight.shape == (9, 2, 1, 1)
    fresh = randomize_(RandomNet(2, BLOCKS, "mean"), seed=3)
    loaded = load_integral(save_integral(inn, tmp_path / "inn.safetensors"), model=fresh)
    assert [g.fixed for g in loaded.groups] == [g.fixed for g in inn.groups]
    with torch.no_grad():
        assert torch.equal(loaded(x), inn(x))
