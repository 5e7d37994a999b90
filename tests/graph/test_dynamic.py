"""width_agnostic: one skeleton runs every cut of a model; plan_shapes predicts their shapes."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

import anywidth
from anywidth.graph import (
    PlanError,
    channel_groups,
    cut,
    fix_unreadable,
    plan_shapes,
    width_agnostic,
)
from anywidth.graph._dynamic_modules import DepthwiseConv, DynamicInstanceNorm, DynamicLayerNorm
from tests._hypothesis import n_examples
from tests.graph import _models as M
from tests.graph._helpers import randomize_, rel_err
from tests.graph._random_nets import RandomNet, architectures

# (id, factory, input side)
ZOO = [
    ("resnet20", lambda: anywidth.create_model("resnet20"), 16),
    ("mobilenetv2", lambda: anywidth.create_model("mobilenetv2", small_input=True), 16),
    (
        "rexnet_100",
        lambda: anywidth.create_model("rexnet_100", num_classes=10, small_input=True),
        16,
    ),
] + [
    (name, lambda name=name: anywidth.create_model(name), 8)
    for name in anywidth.list_models("tiny_*")
]
TINY = [case for case in ZOO if case[0].startswith("tiny_")]


class InstanceNormNet(nn.Module):
    """Affine InstanceNorm, a reflect-padded depthwise Conv1d with multiplier 2."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 1)
        self.norm = nn.InstanceNorm2d(6, affine=True)
        self.dw = nn.Conv1d(6, 12, 3, padding=1, groups=6, padding_mode="reflect")
        self.fc = nn.Linear(12, 2)

    def forward(self, x):
        x = F.relu(self.norm(self.stem(x))).flatten(2)  # (B, 6, H*W)
        return self.fc(self.dw(x).mean(2))


class Ambiguous(nn.Module):
    """Two slices of one conv that only ever appear together: no shape tells them apart."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.cat([x[:, 3:], x[:, :3]], dim=1)).mean((2, 3))


HANDWRITTEN = [
    ("depthwise_mult2", lambda: M.Depthwise(2)),
    ("grouped", M.Grouped),
    ("split_sizes", lambda: M.Split("split")),
    ("chunk", lambda: M.Split("chunk")),
    ("slice", lambda: M.Split("slice")),
    ("partial_residual", M.PartialResidual),
    ("group_and_layer_norm", M.Norms),
    ("channels_last_layer_norm", M.ChannelsLast),
    ("view_literal", lambda: M.FlattenHead("view_literal")),
    ("conv1d_transposed_3d_view", M.OtherDims),
    ("instance_norm_reflect_depthwise", InstanceNormNet),
]


def _random_keep(groups, gen: torch.Generator) -> dict[str, list[int]]:
    """Cut most free groups to a random non-empty subset."""
    keep = {}
    for g in groups:
        if g.fixed or torch.rand((), generator=gen) < 0.2:
            continue
        size = int(torch.randint(1, g.size + 1, (), generator=gen))
        keep[g.name] = sorted(torch.randperm(g.size, generator=gen)[:size].tolist())
    return keep


def _assert_runs_every_cut(model, x, plans: int = 3, seed: int = 0) -> None:
    """One skeleton, several random plans: same outputs as the cut models, same shapes."""
    groups = fix_unreadable(model, x, channel_groups(model, x))
    skeleton = width_agnostic(model, x, groups)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(plans):
        keep = _random_keep(groups, gen)
        small = cut(model, x, keep, groups=groups)
        tensors = dict(small.state_dict())
        assert rel_err(functional_call(skeleton, tensors, (x,)), small(x)) <= 1e-6
        shapes = plan_shapes(model, x, groups, {n: len(k) for n, k in keep.items()})
        assert {n: tuple(s) for n, s in shapes.items()} == {
            n: tuple(t.shape) for n, t in tensors.items()
        }


@pytest.mark.parametrize("factory, side", [c[1:] for c in ZOO], ids=[c[0] for c in ZOO])
def test_zoo_skeleton_matches_cut_models(factory, side):
    model = randomize_(factory())
    _assert_runs_every_cut(model, torch.randn(2, 3, side, side))


@pytest.mark.parametrize("factory", [c[1] for c in HANDWRITTEN], ids=[c[0] for c in HANDWRITTEN])
def test_handwritten_skeleton_matches_cut_models(factory, caplog):
    model = randomize_(factory().double())
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    with caplog.at_level(logging.ERROR):
        _assert_runs_every_cut(model, x, plans=4)


# Groups no shape reads alone, whose size a split or a slice needs: a grouped conv's two
# tied channels re-split by chunk; a partial residual's slice of a grouped conv's input.
@example(
    arch=(
        2,
        [("concat", 1, 5), ("grouped", 6, 3), ("split", 3, 1, 1, "chunk")],
        "pool_flatten_method",
    ),
    seed=0,
)
@example(arch=(5, [("partial", 1), ("grouped", 2, 2), ("partial", 1)], "nn_flatten"), seed=0)
@settings(max_examples=n_examples(ci=12))
@given(arch=architectures(), seed=st.integers(0, 2**16))
def test_random_architectures(arch, seed):
    stem, blocks, head = arch
    model = randomize_(RandomNet(stem, blocks, head).double())
    _assert_runs_every_cut(model, torch.randn(2, 3, 4, 4, dtype=torch.float64), seed=seed)


@pytest.mark.parametrize("factory, side", [c[1:] for c in TINY], ids=[c[0] for c in TINY])
def test_train_mode_gradients_and_running_stats(factory, side):
    model = randomize_(factory().double()).train()
    x = torch.randn(4, 3, side, side, dtype=torch.float64)
    groups = channel_groups(model, x)
    skeleton = width_agnostic(model, x, groups)
    assert skeleton.training
    for seed in range(3):
        small = cut(model, x, _random_keep(groups, torch.Generator().manual_seed(seed)))
        tensors = {n: t.clone() for n, t in small.state_dict().items()}
        params = {n for n, _ in small.named_parameters()}
        for name in params:
            tensors[name].requires_grad_(True)
        torch.manual_seed(seed)  # the same dropout masks
        want = small(x)
        torch.manual_seed(seed)
        got = functional_call(skeleton, tensors, (x,))
        assert rel_err(got, want) <= 1e-6
        want.square().sum().backward()
        got.square().sum().backward()
        for name, param in small.named_parameters():
            assert rel_err(tensors[name].grad, param.grad) <= 1e-6, name
        for name, buf in small.named_buffers():  # BN statistics updated the same way
            assert torch.allclose(tensors[name], buf), name


def test_layers_that_read_channel_counts_are_replaced():
    model = anywidth.create_model("rexnet_100", num_classes=10, small_input=True)
    skeleton = width_agnostic(model, torch.randn(1, 3, 16, 16))
    assert isinstance(skeleton.blocks[0].dw, DepthwiseConv)
    assert isinstance(skeleton.blocks[1].project, nn.Conv2d)
    assert "width_plan" in dict(skeleton.named_children())
    assert list(skeleton.state_dict()) == list(model.state_dict())
    skeleton = width_agnostic(anywidth.create_model("tiny_mlp"), torch.randn(1, 3, 8, 8))
    assert isinstance(skeleton.norm, DynamicLayerNorm)
    skeleton = width_agnostic(InstanceNormNet(), torch.randn(1, 3, 4, 4))
    assert isinstance(skeleton.norm, DynamicInstanceNorm)


def test_plain_model_without_check_is_the_traced_copy():
    model = randomize_(anywidth.create_model("resnet20"))
    x = torch.randn(2, 3, 8, 8)
    skeleton = width_agnostic(model, x, check=False)
    assert [type(m) for _, m in skeleton.named_modules()][1:] == [
        type(m) for _, m in model.named_modules()
    ][1:]
    assert skeleton.conv1.weight is not model.conv1.weight
    assert torch.equal(skeleton(x), model(x))


@pytest.fixture(scope="module")
def tiny_rexnet():
    model = randomize_(anywidth.create_model("tiny_rexnet"))
    x = torch.randn(2, 3, 8, 8)
    groups = channel_groups(model, x)
    keep = {"stem.0:out[0:4]": [0, 2, 3], "blocks.1.se.reduce:out": [1, 4], "head.0:out": [3, 9]}
    return model, x, groups, dict(cut(model, x, keep, groups=groups).state_dict())


def test_a_smaller_classifier_output_is_caught(tiny_rexnet):
    model, x, _, tensors = tiny_rexnet
    bad = tensors | {"fc.weight": tensors["fc.weight"][:5], "fc.bias": tensors["fc.bias"][:5]}
    with pytest.raises(PlanError, match=r"'fc\.(weight|bias)' has shape \(5"):
        functional_call(width_agnostic(model, x), bad, (x,))
    # without the check, shapes that fit together are not noticed: a 5-class output
    out = functional_call(width_agnostic(model, x, check=False), bad, (x,))
    assert out.shape == (2, 5)


def test_tensors_of_two_plans_are_caught(tiny_rexnet):
    model, x, groups, tensors = tiny_rexnet
    skeleton = width_agnostic(model, x, groups)
    other = dict(cut(model, x, {"stem.0:out[0:4]": [1]}, groups=groups).state_dict())
    mixed = tensors | {"stem.1.weight": other["stem.1.weight"]}  # (2,) instead of (6,)
    with pytest.raises(PlanError, match=r"'stem\.[01]\.weight' has shape \([26],.*plan_shapes"):
        functional_call(skeleton, mixed, (x,))
    with pytest.raises(PlanError, match="expected|gives it shape"):
        functional_call(skeleton, tensors | {"fc.weight": tensors["fc.weight"][None]}, (x,))


def test_a_group_read_bigger_than_traced_is_caught(tiny_rexnet):
    model, x, _, tensors = tiny_rexnet
    skeleton = width_agnostic(model, x, check=True)
    reader = skeleton.width_plan
    index, dim, _, _ = reader.steps[0]
    name = reader.names[index]
    shape = list(tensors[name].shape)
    shape[dim] += 100
    with pytest.raises(PlanError, match=rf"'{name}'.*not a whole number in 1\.\."):
        functional_call(skeleton, tensors | {name: torch.zeros(shape)}, (x,))


def test_wrong_shapes_without_the_check_fail_in_the_layer(tiny_rexnet):
    model, x, _, tensors = tiny_rexnet
    weight = tensors["head.0.weight"]
    bad = tensors | {
        "head.0.weight": weight[:, :-1] if weight.shape[1] > 1 else weight.repeat(1, 2, 1, 1)
    }
    with pytest.raises(RuntimeError, match="channels"):
        functional_call(width_agnostic(model, x, check=False), bad, (x,))


def test_groups_no_shape_determines_are_fixed_with_a_warning(caplog):
    model, x = randomize_(Ambiguous()), torch.randn(2, 3, 4, 4)
    groups = channel_groups(model, x)
    with caplog.at_level(logging.WARNING, logger="anywidth.graph"):
        checked = fix_unreadable(model, x, groups)
        skeleton = width_agnostic(model, x, checked)  # nothing left to fix: no second warning
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "'stem:out[0:3]'" in caplog.records[0].message
    assert "'stem:out[3:8]'" not in caplog.records[0].message
    assert [(g.name, g.fixed) for g in groups] == [
        ("input:x", True),
        ("stem:out[0:3]", False),
        ("stem:out[3:8]", False),
        ("head:out", True),
    ]
    assert [g.fixed for g in checked] == [True, True, False, True]
    assert [(g.name, g.members) for g in checked] == [(g.name, g.members) for g in groups]
    small = cut(model, x, {"stem:out[3:8]": [1, 4]}, groups=checked)
    assert rel_err(functional_call(skeleton, dict(small.state_dict()), (x,)), small(x)) <= 1e-6
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="anywidth.graph"):
        skeleton = width_agnostic(model, x, groups)  # fixes the same group itself
    assert len(caplog.records) == 1 and "'stem:out[0:3]'" in caplog.records[0].message
    assert rel_err(functional_call(skeleton, dict(small.state_dict()), (x,)), small(x)) <= 1e-6


def test_tied_channels_read_only_in_sums_are_fixed(caplog):
    """A grouped conv's tied channels, re-split by chunk (as in the @example above)."""
    blocks = [("concat", 1, 5), ("grouped", 12, 3), ("split", 6, 3, 3, "chunk")]
    model = randomize_(RandomNet(2, blocks, "pool_flatten_method").double())
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    with caplog.at_level(logging.WARNING, logger="anywidth.graph"):
        groups = fix_unreadable(model, x, channel_groups(model, x))
    assert len(caplog.records) == 1
    assert "'blocks.1.a.0:out[0:2]'" in caplog.records[0].message
    assert "'blocks.1.a.0:out[2:4]'" not in caplog.records[0].message
    assert [g.name for g in groups if g.fixed] == ["input:x", "blocks.1.a.0:out[0:2]", "fc:out"]
    skeleton = width_agnostic(model, x, groups)
    keep = {"stem.0:out": [1], "blocks.1.a.0:out[2:4]": [1], "blocks.2.a.0:out": [0, 2]}
    small = cut(model, x, keep, groups=groups)
    assert small.blocks[1].a[0].weight.shape == (9, 2, 1, 1)  # 3 conv groups of 2 + 1
    assert rel_err(functional_call(skeleton, dict(small.state_dict()), (x,)), small(x)) <= 1e-6


def test_plan_shapes_validates_the_plan(tiny_rexnet):
    model, x, groups, _ = tiny_rexnet
    shapes = plan_shapes(model, x, None, {"stem.0:out[0:4]": 3, "head.0:out": 5})
    assert shapes["stem.0.weight"] == (6, 3, 3, 3) and shapes["fc.weight"] == (10, 5)
    with pytest.raises(PlanError, match="fixed"):
        plan_shapes(model, x, groups, {"fc:out": 3})
    with pytest.raises(PlanError, match=r"outside 1\.\.4"):
        plan_shapes(model, x, groups, {"stem.0:out[0:4]": 5})
    other = anywidth.create_model("tiny_convnet")
    with pytest.raises(PlanError, match="does not have"):
        plan_shapes(other, x, groups, {"stem.0:out[0:4]": 3})
