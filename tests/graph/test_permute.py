"""permute_channels: any permutation of resizable groups leaves the function unchanged."""

from __future__ import annotations

import pytest
import torch

import anywidth
from anywidth.graph import PlanError, channel_groups
from anywidth.graph.permute import permute_channels
from tests.graph._helpers import randomize_, rel_err

MODELS = [
    "tiny_convnet",
    "tiny_resnet",
    "tiny_concat",
    "tiny_depthwise_se",
    "tiny_mlp",
    "tiny_rexnet",
    "resnet20",
    "vgg11",
    "mobilenetv2",
    "rexnet_090",
]


def _setup(name: str):
    model = randomize_(anywidth.create_model(name).double())
    size = 8 if name.startswith("tiny_") else 16
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    return model, x, channel_groups(model, x)


@pytest.mark.parametrize("name", MODELS)
def test_random_permutation_keeps_outputs(name):
    model, x, groups = _setup(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    perms = {g.name: torch.randperm(g.size, generator=gen) for g in groups if not g.fixed}
    permuted = permute_channels(model, groups, perms)
    with torch.no_grad():
        assert rel_err(permuted(x), model(x)) <= 1e-10
    changed = [k for k, v in permuted.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "a random permutation should move some weights"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_permutation_moves_producer_rows():
    model, x, groups = _setup("tiny_convnet")
    group = next(g for g in groups if g.name == "conv1:out")
    perm = torch.arange(group.size - 1, -1, -1)
    permuted = permute_channels(model, groups, {group.name: perm})
    assert torch.equal(permuted.conv1.weight, model.conv1.weight[perm])
    assert torch.equal(permuted.bn1.running_var, model.bn1.running_var[perm])
    assert torch.equal(permuted.conv2.weight, model.conv2.weight[:, perm])


def test_block_members_move_whole_blocks():
    model, x, groups = _setup("tiny_mlp")
    fc1 = next(g for g in groups if g.name == "fc1:out")
    perm = torch.randperm(fc1.size)
    permuted = permute_channels(model, groups, {fc1.name: perm})
    assert torch.equal(permuted.fc2.weight, model.fc2.weight[:, perm])
    with torch.no_grad():
        assert rel_err(permuted(x), model(x)) <= 1e-10


def test_bad_permutations_are_rejected():
    model, x, groups = _setup("tiny_convnet")
    with pytest.raises(PlanError, match="did you mean"):
        permute_channels(model, groups, {"conv1:ou": [0]})
    with pytest.raises(PlanError, match="exactly once"):
        permute_channels(model, groups, {"conv1:out": [0] * 8})
    with pytest.raises(PlanError, match="fixed"):
        permute_channels(model, groups, {"input:x": [2, 1, 0]})
