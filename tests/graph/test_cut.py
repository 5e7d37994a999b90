"""cut on hand-written models: smaller layers, outputs equal to the masked original, errors."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import anywidth
from anywidth.graph import PlanError, analyze_channels, channel_groups, cut, keep_first
from anywidth.graph.cut import Cutter
from anywidth.measure import count_params
from anywidth.record import get_record
from tests.graph import _models as M
from tests.graph._helpers import masked_forward, randomize_, rel_err

X = torch.randn(2, 3, 4, 4, dtype=torch.float64)

# (id, model factory, keep-sets)
CASES = [
    ("concat", M.Concat, {"a:out": [2, 0], "b:out": [1, 3, 4], "mix:out": [5]}),
    ("depthwise", M.Depthwise, {"stem:out": [0, 3], "pw:out": [1, 2, 4]}),
    ("depthwise_mult2", lambda: M.Depthwise(2), {"stem:out": [1, 2, 3]}),
    ("grouped", M.Grouped, {"stem:out[0:2]": [1], "g:out[0:3]": [0, 2]}),
    ("se_gate", M.SEGate, {"stem:out": [0, 2, 5], "reduce:out": [1]}),
    ("residual_projection", M.Projection, {"conv1:out": [4], "conv2:out": [0, 1, 5]}),
    ("flatten_method", lambda: M.FlattenHead("method"), {"conv:out": [1, 3]}),
    ("flatten_view_literal", lambda: M.FlattenHead("view_literal"), {"conv:out": [0, 2, 3]}),
    ("flatten_module", lambda: M.FlattenHead("module"), {"conv:out": [2]}),
    ("split_sizes", lambda: M.Split("split"), {"stem:out[0:3]": [1], "stem:out[3:8]": [0, 4]}),
    ("chunk", lambda: M.Split("chunk"), {"stem:out[0:4]": [0, 1, 2], "right:out": [2]}),
    ("slice", lambda: M.Split("slice"), {"stem:out[4:8]": [3], "left:out": [0]}),
    ("partial_residual", M.PartialResidual, {"stem:out": [1, 3], "conv:out[4:7]": [0, 2]}),
    ("functional", M.Functional, {"a:out": [0, 4], "c:out": [1, 2, 3]}),
    ("unknown_op", lambda: M.Unknown("wrapped"), {"stem:out": [0, 2], "b:out": [1, 2]}),
    ("unknown_fft", lambda: M.Unknown("fft"), {"stem:out": [1], "b:out": [0, 4]}),
    ("conv1d_transposed_3d", M.OtherDims, {"c:out": [0, 4, 5], "t:out": [1], "c3:out": [2, 3]}),
]


def _model(factory) -> nn.Module:
    return randomize_(factory().double())


@pytest.mark.parametrize("factory, keep", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cut_equals_masked_original(factory, keep, caplog):
    model = _model(factory)
    with caplog.at_level(logging.ERROR):
        groups = channel_groups(model, X)
        small = cut(model, X, keep, groups=groups)
    assert rel_err(small(X), masked_forward(model, X, groups, keep)) <= 1e-5
    removed = sum((g.size - len(keep[g.name])) for g in groups if g.name in keep)
    assert count_params(small) < count_params(model) or removed == 0


@pytest.mark.parametrize("factory", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_keeping_everything_changes_nothing(factory, caplog):
    model = _model(factory)
    with caplog.at_level(logging.ERROR):
        groups = channel_groups(model, X)
        full = {g.name: list(range(g.size)) for g in groups if not g.fixed}
        small = cut(model, X, full)
    assert torch.equal(small(X), model(X))
    assert count_params(small) == count_params(model)


def test_layers_are_smaller_ordinary_modules():
    model = _model(M.Depthwise)
    small = cut(model, X, {"stem:out": [0, 3], "pw:out": [1, 2, 4]})
    assert type(small.dw) is nn.Conv2d
    assert (small.dw.in_channels, small.dw.out_channels, small.dw.groups) == (2, 2, 2)
    assert small.dw.weight.shape == (2, 1, 3, 3)
    assert small.bn.num_features == 2 and small.bn.running_var.shape == (2,)
    assert (small.pw.in_channels, small.pw.out_channels) == (2, 3)
    assert (small.fc.in_features, small.fc.out_features) == (3, 2)
    assert torch.equal(small.stem.weight, model.stem.weight[[0, 3]])


def test_grouped_conv_keeps_its_group_count():
    small = cut(_model(M.Grouped), X, {"stem:out[0:2]": [1], "g:out[0:3]": [0, 2]})
    assert (small.g.in_channels, small.g.out_channels, small.g.groups) == (4, 8, 4)
    assert small.stem.out_channels == 4


def test_other_conv_dimensions_are_resized():
    small = cut(_model(M.OtherDims), X, {"c:out": [0, 4, 5], "t:out": [1], "c3:out": [2, 3]})
    assert (small.c.out_channels, small.t.in_channels, small.t.out_channels) == (3, 3, 1)
    assert small.t.weight.shape == (3, 1, 2, 2) and small.c3.weight.shape == (2, 1, 1, 1, 1)
    assert "view(size, 3, 4, 4)" in small.code


def test_flatten_linear_keeps_whole_feature_blocks():
    model = _model(lambda: M.FlattenHead("view_literal"))
    small = cut(model, X, {"conv:out": [1, 3]})
    assert small.fc.in_features == 32
    assert torch.equal(
        small.fc.weight, torch.cat([model.fc.weight[:, 16:32], model.fc.weight[:, 48:]], 1)
    )


def test_partial_residual_rewrites_the_slice_bound():
    model = _model(M.PartialResidual)
    small = cut(model, X, {"stem:out": [1, 3], "conv:out[4:7]": [0, 2]})
    assert (small.conv.in_channels, small.conv.out_channels, small.head.in_channels) == (2, 4, 4)
    assert model.c_in == 4  # the caller's model is untouched


def test_keep_order_does_not_matter():
    model = _model(M.Concat)
    a = cut(model, X, {"b:out": [4, 0, 2]})
    b = cut(model, X, {"b:out": [0, 2, 4]})
    assert torch.equal(a(X), b(X))


def test_layernorm_and_groupnorm_normalise_over_kept_channels():
    model = _model(M.Norms)
    keep = {"conv:out[0:4]": [0, 3], "fc1:out": [1, 2, 5]}
    small = cut(model, X, keep)
    assert small.gn.num_groups == 2 and small.gn.num_channels == 4
    assert small.ln.normalized_shape == (3,)
    rows = [0, 3, 4, 7]  # channel k of both GroupNorm groups
    with torch.no_grad():
        h = F.conv2d(X, model.conv.weight[rows], model.conv.bias[rows])
        h = F.group_norm(h, 2, model.gn.weight[rows], model.gn.bias[rows], model.gn.eps)
        h = F.silu(h).mean((2, 3))
        h = F.linear(h, model.fc1.weight[[1, 2, 5]][:, rows], model.fc1.bias[[1, 2, 5]])
        h = F.layer_norm(h, (3,), model.ln.weight[[1, 2, 5]], model.ln.bias[[1, 2, 5]])
        want = F.linear(F.gelu(h), model.fc2.weight[:, [1, 2, 5]], model.fc2.bias)
    assert rel_err(small(X), want) <= 1e-10


def test_channels_last_layernorm_and_parameters_are_cut():
    model = _model(M.ChannelsLast)
    small = cut(model, X, {"conv:out": [0, 5, 7]})
    assert small.ln.normalized_shape == (3,) and small.gamma.shape == (3,)
    assert small.beta.shape == (3, 1, 1) and small.head.in_channels == 3


def test_replacement_tensors_are_used():
    model = _model(M.Concat)
    new_weight = torch.randn(2, 4, 1, 1, dtype=torch.float64)
    small = cut(model, X, {"b:out": [0, 1]}, replace={"b.weight": new_weight})
    assert torch.equal(small.b.weight, new_weight) and small.b.weight.requires_grad


def test_cut_leaves_the_caller_model_alone_and_keeps_its_mode():
    model = _model(M.Projection).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = cut(model, X, {"conv2:out": [0, 1]})
    assert small.training and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.conv2.out_channels == 6


def test_cut_model_shares_no_tensor_with_the_caller():
    model = _model(M.Projection)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = cut(model, X, {"conv2:out": [0, 1]})  # conv1 and the head are not cut
    with torch.no_grad():
        for tensor in list(small.parameters()) + list(small.buffers()):
            tensor.add_(1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    small.conv1.new_attribute = 1
    assert not hasattr(model.conv1, "new_attribute")


def test_tied_weights_stay_tied_in_the_cut_model():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 3, 1)
            self.b = nn.Conv2d(3, 3, 1)
            self.b.weight = self.a.weight
            self.head = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return self.head(self.b(self.a(x)))

    model = _model(Tied)
    small = cut(model, X, {})
    assert small.a.weight is small.b.weight and small.a.weight is not model.a.weight
    assert rel_err(small(X), model(X)) == 0


@pytest.mark.parametrize("factory, keep", [c[1:] for c in CASES[:6]], ids=[c[0] for c in CASES[:6]])
def test_cutter_equals_cut_for_many_plans(factory, keep, caplog):
    model = _model(factory)
    with caplog.at_level(logging.ERROR):
        groups = channel_groups(model, X)
        cutter = Cutter(model, X, groups=groups)
        smalls = [cutter(keep), cutter({}), cutter(keep)]
        expected = model(X)
        with torch.no_grad():  # later calls see the weights as they are then
            for p in model.parameters():
                p.mul_(2)
        later = cutter(keep)
        fresh = cut(model, X, keep, groups=groups)
    assert smalls[0] is not smalls[2] and rel_err(smalls[0](X), smalls[2](X)) == 0
    assert rel_err(smalls[1](X), expected) == 0
    assert rel_err(later(X), fresh(X)) == 0
    assert rel_err(later(X), masked_forward(model, X, groups, keep)) <= 1e-5


@pytest.fixture(scope="module")
def concat():
    model = _model(M.Concat)
    return model, channel_groups(model, X)


BAD_KEEPS = [
    (
        "unknown_group",
        {"mixx:out": [0]},
        r"unknown channel group 'mixx:out'; did you mean 'mix:out'",
    ),
    ("empty", {"a:out": []}, r"keep-set for channel group 'a:out' is empty"),
    ("out_of_range", {"a:out": [0, 3]}, r"'a:out' has index\(es\) \[3\] out of range 0..2"),
    ("negative", {"a:out": [-1]}, r"index\(es\) \[-1\] out of range"),
    ("repeated", {"b:out": [1, 1, 2]}, r"'b:out' repeats index\(es\) \[1\]"),
    ("fixed", {"fc:out": [0]}, r"channel group 'fc:out' is fixed"),
    ("input_fixed", {"input:x": [0, 1]}, r"channel group 'input:x' is fixed"),
]


@pytest.mark.parametrize("keep, message", [c[1:] for c in BAD_KEEPS], ids=[c[0] for c in BAD_KEEPS])
def test_bad_keep_sets(concat, keep, message):
    model, groups = concat
    with pytest.raises(PlanError, match=message) as info:
        cut(model, X, keep, groups=groups)
    assert isinstance(info.value, ValueError)


def test_caller_fixed_group_cannot_be_cut():
    model = _model(M.Concat)
    groups = channel_groups(model, X, fixed=["a:out"])
    with pytest.raises(PlanError, match="'a:out' is fixed"):
        cut(model, X, {"a:out": [0]}, groups=groups)


BAD_REPLACEMENTS = [
    (
        "wrong_shape",
        {"b.weight": torch.zeros(5, 4, 1, 1)},
        r"'b.weight' has shape \(5, 4, 1, 1\), expected \(2, 4, 1, 1\)",
    ),
    (
        "unknown_tensor",
        {"b.wieght": torch.zeros(2)},
        r"unknown tensor 'b.wieght'; did you mean 'b.weight'",
    ),
]


@pytest.mark.parametrize(
    "replace, message", [c[1:] for c in BAD_REPLACEMENTS], ids=[c[0] for c in BAD_REPLACEMENTS]
)
def test_bad_replacements(concat, replace, message):
    model, groups = concat
    with pytest.raises(PlanError, match=message):
        cut(model, X, {"b:out": [0, 1]}, groups=groups, replace=replace)


def test_groups_from_another_model_are_rejected(concat):
    model, _ = concat
    other = channel_groups(M.Projection(), X.float())
    with pytest.raises(PlanError, match="does not belong to this model"):
        cut(model, X, {}, groups=other)


def test_keep_first_then_cut():
    model = _model(M.Projection)
    groups = channel_groups(model, X)
    small = cut(model, X, keep_first(groups, {"conv2:out": 3, "conv1:out": 2}))
    widths = (small.conv1.out_channels, small.conv2.out_channels, small.proj.out_channels)
    assert widths == (2, 3, 3)


def test_cut_model_pickles_indexes_and_trains(tmp_path):
    model = _model(M.PartialResidual)
    small = cut(model, X, {"stem:out": [1, 3]})
    torch.save(small, tmp_path / "small.pt")
    loaded = torch.load(tmp_path / "small.pt", weights_only=False)
    assert torch.equal(loaded(X), small(X))
    assert list(small.state_dict()) == list(model.state_dict())
    small.train()(X).sum().backward()
    assert small.conv.weight.grad.shape == (5, 2, 3, 3)  # 2 tied to the input + 3


def test_unknown_op_warning_is_not_repeated_when_groups_are_passed(caplog):
    model = _model(lambda: M.Unknown("wrapped"))
    with caplog.at_level(logging.WARNING, logger="anywidth.graph"):
        groups = channel_groups(model, X)
        cut(model, X, {"b:out": [0]}, groups=groups)
        assert [r.message.count("'mystery'") for r in caplog.records] == [1]
        cut(model, X, {"b:out": [0]})
    assert len(caplog.records) == 2


def test_cutter_eager_runs_the_models_own_forward():
    model = _model(M.Projection)
    groups = channel_groups(model, X)
    keep = {"conv1:out": [4], "conv2:out": [0, 1, 5]}
    cutter = Cutter(model, X, groups=groups)
    eager = cutter.eager(keep)
    assert type(eager) is M.Projection and not isinstance(eager, torch.fx.GraphModule)
    assert eager.conv2.out_channels == 3
    assert rel_err(eager(X), cutter(keep)(X)) <= 1e-12
    assert rel_err(eager(X), masked_forward(model, X, groups, keep)) <= 1e-5
    assert model.conv2.out_channels == 6 and eager.conv2.weight is not model.conv2.weight


def test_cutter_eager_declines_when_the_forward_holds_channel_counts():
    model = _model(M.PartialResidual)  # out[:, :c] in forward: only the graph is rewritten
    cutter = Cutter(model, X)
    keep = {"stem:out": [1, 3], "conv:out[4:7]": [0, 2]}
    assert cutter.eager(keep) is None
    assert cutter(keep)(X).shape == model(X).shape


def test_cut_returns_the_users_class_with_its_methods_and_training_branches():
    model = _model(M.Projection)
    small = cut(model, X, {"conv1:out": [4], "conv2:out": [0, 1, 5]})
    assert type(small) is M.Projection
    assert small.conv2.out_channels == 3 and model.conv2.out_channels == 6


def test_a_forward_that_writes_channel_counts_falls_back_to_a_graph_module(caplog):
    model = _model(M.PartialResidual)  # out[:, :self.c_in] cannot follow a cut by itself
    with caplog.at_level(logging.WARNING, logger="anywidth.graph"):
        small = cut(model, X, {"stem:out": [1, 3], "conv:out[4:7]": [0, 2]})
    assert isinstance(small, torch.fx.GraphModule)
    assert "PartialResidual" in caplog.text and "GraphModule is returned" in caplog.text
    assert "x.shape[1]" in caplog.text  # says how to get the class back


def test_slice_bounds_read_from_shapes_need_no_rewrite():
    class ShapeResidual(M.PartialResidual):
        def forward(self, x):
            x = self.stem(x)
            out = self.conv(x)
            c = x.shape[1]
            out = torch.cat([out[:, :c] + x, out[:, c:]], dim=1)
            return self.fc(self.head(out).mean((2, 3)))

    model = _model(ShapeResidual)
    keep = {"stem:out": [1, 3], "conv:out[4:7]": [0, 2]}
    small = cut(model, X, keep)
    assert type(small) is ShapeResidual
    assert Cutter(model, X).eager(keep) is not None
    assert rel_err(small(X), masked_forward(model, X, channel_groups(model, X), keep)) <= 1e-5


def test_the_cut_model_records_its_origin_and_steps():
    model = anywidth.create_model("tiny_convnet")
    x = torch.randn(1, 3, 8, 8)
    groups = channel_groups(model, x)
    name = next(g.name for g in groups if not g.fixed)
    small = cut(model, x, {name: [0]})
    twice = Cutter(small, x)({}, method="test")  # a second step, keeping everything
    record = get_record(twice)
    assert (record.model_name, dict(record.model_kwargs)) == ("tiny_convnet", {})
    assert [s["method"] for s in record.steps] == ["cut", "test"]
    assert record.steps[0]["sizes"] == {name: 1}
    assert record.steps[0]["inputs"] == [{"shape": [1, 3, 8, 8], "dtype": "float32"}]
    assert get_record(model).steps == ()  # the caller's model is untouched


def test_an_analysis_of_another_model_is_rejected():
    analysis = analyze_channels(_model(M.Projection), X)
    with pytest.raises(PlanError, match="made for another model or input shape"):
        Cutter(_model(M.Projection), X, groups=analysis)
    with pytest.raises(PlanError, match="made for another model or input shape"):
        Cutter(analysis.model, X[:1], groups=analysis)
