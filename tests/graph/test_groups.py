"""channel_groups on hand-written models: the expected names, sizes, fixed flags, members."""

from __future__ import annotations

import logging

import pytest
import torch

from anywidth.graph import (
    ChannelGroup,
    GraphError,
    Member,
    PlanError,
    channel_groups,
    group_sizes,
    keep_first,
)
from tests.graph import _models as M

X = torch.randn(2, 3, 4, 4)


def _summary(groups: list[ChannelGroup]) -> list[tuple[str, int, bool]]:
    return [(g.name, g.size, g.fixed) for g in groups]


def _members(groups: list[ChannelGroup], name: str) -> set[tuple]:
    group = next(g for g in groups if g.name == name)
    return {(m.name, m.dim, m.offset, m.block) for m in group.members}


# (id, model factory, expected (name, size, fixed) in graph order)
SUMMARIES = [
    (
        "concat",
        M.Concat,
        [
            ("input:x", 3, True),
            ("stem:out", 4, False),
            ("a:out", 3, False),
            ("b:out", 5, False),
            ("mix:out", 6, False),
            ("fc:out", 2, True),
        ],
    ),
    (
        "depthwise",
        M.Depthwise,
        [("input:x", 3, True), ("stem:out", 4, False), ("pw:out", 6, False), ("fc:out", 2, True)],
    ),
    (
        "grouped",
        M.Grouped,
        [
            ("input:x", 3, True),
            ("stem:out[0:2]", 2, False),
            ("g:out[0:3]", 3, False),
            ("pw:out", 5, False),
            ("fc:out", 2, True),
        ],
    ),
    (
        "se_gate",
        M.SEGate,
        [
            ("input:x", 3, True),
            ("stem:out", 6, False),
            ("reduce:out", 2, False),
            ("head:out", 4, False),
            ("fc:out", 2, True),
        ],
    ),
    (
        "residual_projection",
        M.Projection,
        [
            ("input:x", 3, True),
            ("stem:out", 4, False),
            ("conv1:out", 5, False),
            ("conv2:out", 6, False),
            ("fc:out", 2, True),
        ],
    ),
    (
        "split_sizes",
        lambda: M.Split("split"),
        [
            ("input:x", 3, True),
            ("stem:out[0:3]", 3, False),
            ("stem:out[3:8]", 5, False),
            ("left:out", 2, False),
            ("right:out", 3, False),
            ("fc:out", 2, True),
        ],
    ),
    (
        "partial_residual",
        M.PartialResidual,
        [
            ("input:x", 3, True),
            ("stem:out", 4, False),
            ("conv:out[4:7]", 3, False),
            ("head:out", 5, False),
            ("fc:out", 2, True),
        ],
    ),
    (
        "norms",
        M.Norms,
        [
            ("input:x", 3, True),
            ("conv:out[0:4]", 4, False),
            ("fc1:out", 6, False),
            ("fc2:out", 2, True),
        ],
    ),
    (
        "functional",
        M.Functional,
        [("input:x", 3, True), ("a:out", 5, False), ("c:out", 4, False), ("fc:out", 2, True)],
    ),
    (
        "channels_last",
        M.ChannelsLast,
        [("input:x", 3, True), ("conv:out", 8, False), ("head:out", 4, True)],
    ),
]


@pytest.mark.parametrize(
    "factory, expected", [c[1:] for c in SUMMARIES], ids=[c[0] for c in SUMMARIES]
)
def test_group_names_sizes_fixed(factory, expected):
    assert _summary(channel_groups(factory(), X)) == expected


def test_concat_segments_get_offsets_in_the_consumer():
    groups = channel_groups(M.Concat(), X)
    assert _members(groups, "a:out") == {
        ("a.weight", 0, 0, 1),
        ("a.bias", 0, 0, 1),
        ("mix.weight", 1, 0, 1),
    }
    assert _members(groups, "b:out") == {
        ("b.weight", 0, 0, 1),
        ("b.bias", 0, 0, 1),
        ("mix.weight", 1, 3, 1),
    }


@pytest.mark.parametrize("mult", [1, 2], ids=["mult1", "mult2"])
def test_depthwise_ties_in_and_out(mult):
    groups = channel_groups(M.Depthwise(mult), X)
    bn = {(f"bn.{t}", 0, 0, 1) for t in ("weight", "bias", "running_mean", "running_var")}
    expected = {("stem.weight", 0, 0, 1), ("stem.bias", 0, 0, 1), ("dw.weight", 0, 0, mult)}
    expected |= {("dw.bias", 0, 0, mult), ("pw.weight", 1, 0, mult)} | bn
    assert _members(groups, "stem:out") == expected


def test_grouped_conv_ties_channel_k_of_every_block():
    groups = channel_groups(M.Grouped(), X)
    stem = _members(groups, "stem:out[0:2]")
    assert {(n, o) for n, d, o, _ in stem if n == "stem.weight"} == {
        ("stem.weight", o) for o in (0, 2, 4, 6)
    }
    assert ("g.weight", 1, 0, 1) in stem
    out = _members(groups, "g:out[0:3]")
    assert {o for n, d, o, _ in out if n == "pw.weight"} == {0, 3, 6, 9}


def test_se_gate_joins_the_gated_channels():
    groups = channel_groups(M.SEGate(), X)
    assert {
        ("expand.weight", 0, 0, 1),
        ("expand.bias", 0, 0, 1),
        ("reduce.weight", 1, 0, 1),
    } <= _members(groups, "stem:out")


@pytest.mark.parametrize("how", ["method", "function", "view", "reshape", "view_literal", "module"])
def test_flatten_into_linear_owns_blocks_of_features(how):
    groups = channel_groups(M.FlattenHead(how), X)
    assert _summary(groups) == [("input:x", 3, True), ("conv:out", 4, False), ("fc:out", 3, True)]
    assert ("fc.weight", 1, 0, 16) in _members(groups, "conv:out")


@pytest.mark.parametrize("how", ["chunk", "slice"])
def test_chunk_and_slice_split_the_producer(how):
    groups = channel_groups(M.Split(how), X)
    assert _members(groups, "stem:out[4:8]") == {
        ("stem.weight", 0, 4, 1),
        ("stem.bias", 0, 4, 1),
        ("right.weight", 1, 0, 1),
    }
    assert ("fc.weight", 1, 2, 1) in _members(groups, "right:out")


def test_partial_residual_splits_the_wider_output():
    groups = channel_groups(M.PartialResidual(), X)
    assert {("conv.weight", 0, 0, 1), ("head.weight", 1, 0, 1)} <= _members(groups, "stem:out")
    assert _members(groups, "conv:out[4:7]") == {
        ("conv.weight", 0, 4, 1),
        ("conv.bias", 0, 4, 1),
        ("head.weight", 1, 4, 1),
    }


def test_norm_members():
    groups = channel_groups(M.Norms(), X)
    # GroupNorm(2, 8): channel k of both normalisation groups is one channel.
    assert {("gn.weight", 0, 0, 1), ("gn.weight", 0, 4, 1), ("fc1.weight", 1, 4, 1)} <= _members(
        groups, "conv:out[0:4]"
    )
    assert {("ln.weight", 0, 0, 1), ("ln.bias", 0, 0, 1)} <= _members(groups, "fc1:out")


def test_channels_last_layernorm_and_scale_parameters():
    members = _members(channel_groups(M.ChannelsLast(), X), "conv:out")
    assert {("ln.weight", 0, 0, 1), ("gamma", 0, 0, 1), ("beta", 0, 0, 1)} <= members


def test_residual_add_reaches_every_branch():
    members = _members(channel_groups(M.Projection(), X), "conv2:out")
    assert {n for n, d, *_ in members if d == 0} == {
        "conv2.weight", "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var",
        "proj.weight", "proj_bn.weight", "proj_bn.bias", "proj_bn.running_mean",
        "proj_bn.running_var", "conv3.weight", "conv3.bias",
    }  # fmt: skip
    assert {("conv3.weight", 1, 0, 1), ("fc.weight", 1, 0, 1)} <= members


@pytest.mark.parametrize("how", ["wrapped", "fft"])
def test_unknown_op_fixes_touching_groups_with_a_warning(how, caplog):
    with caplog.at_level(logging.WARNING, logger="anywidth.graph"):
        groups = channel_groups(M.Unknown(how), X)
    fixed = {g.name for g in groups if g.fixed}
    assert "a:out" in fixed and "stem:out" not in fixed and "b:out" not in fixed
    node = "mystery" if how == "wrapped" else "fft_fft2"
    assert any(f"node '{node}'" in r.message and "a:out" in r.message for r in caplog.records)


def test_caller_can_fix_groups_by_name_and_glob():
    groups = channel_groups(M.Concat(), X, fixed=["a:*", "mix:out"])
    fixed = {g.name for g in groups if g.fixed}
    assert fixed == {"input:x", "a:out", "mix:out", "fc:out"}


def test_fixed_pattern_matching_nothing_is_an_error():
    with pytest.raises(
        PlanError, match=r"'mixx:out' matches no channel group; did you mean 'mix:out'"
    ):
        channel_groups(M.Concat(), X, fixed=["mixx:out"])


def test_untraceable_model_names_the_module_and_the_fix():
    with pytest.raises(GraphError) as info:
        channel_groups(M.DataDependent(), X)
    message = str(info.value)
    assert "module 'body' (Body)" in message
    assert "control flow" in message and "torch.fx.wrap" in message
    assert isinstance(info.value, ValueError)


def test_wrong_input_shape_is_a_graph_error():
    with pytest.raises(GraphError, match="failed at node"):
        channel_groups(M.Concat(), torch.randn(2, 5, 4, 4))


def test_caller_model_is_untouched():
    model = M.Projection().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    channel_groups(model, X)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_group_sizes_and_keep_first():
    groups = channel_groups(M.Concat(), X)
    assert group_sizes(groups) == {
        "input:x": 3, "stem:out": 4, "a:out": 3, "b:out": 5, "mix:out": 6, "fc:out": 2
    }  # fmt: skip
    assert keep_first(groups, {"b:out": 2, "a:out": 3}) == {"b:out": [0, 1]}
    with pytest.raises(PlanError, match=r"size 9 for channel group 'b:out' is outside 1..5"):
        keep_first(groups, {"b:out": 9})
    with pytest.raises(PlanError, match="'fc:out' is fixed"):
        keep_first(groups, {"fc:out": 1})


def test_member_indices():
    member = Member("fc.weight", 1, offset=32, block=4)
    assert member.indices([0, 2]) == [32, 33, 34, 35, 40, 41, 42, 43]
