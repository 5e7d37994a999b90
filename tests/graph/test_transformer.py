"""Transformer blocks: heads, MLP width and hidden size, through both front ends.

A tiny BERT-style encoder (`tests.graph._transformer`) covers every rule: Embedding,
LayerNorm, GELU/SiLU, residual streams, the MLP, the head split ``(B, T, H, D)``, q/k/v
coupling through ``scaled_dot_product_attention`` and through explicit ``softmax(QKᵀ)V``.
The ``untraceable`` variant is traced with ``torch.export`` (ATen rules); the others with
torch.fx. Both must give the same groups, cuts and costs.
"""

from __future__ import annotations

import pytest
import torch

from anywidth.graph import (
    PlanError,
    analyze_channels,
    channel_groups,
    cut,
    keep_first,
    plan_macs,
    plan_params,
)
from anywidth.graph._analysis import analyze
from anywidth.graph._trace import export_trace, is_exported
from anywidth.measure import count_macs, count_params
from tests.graph._transformer import TinyBert, tiny_inputs

VARIANTS = {
    "fx-sdpa": {},
    "fx-explicit-silu": {"attention": "explicit", "act": "silu"},
    "export-sdpa": {"untraceable": True},
}
EXPORT_EXPLICIT = {"untraceable": True, "attention": "explicit"}
X = tiny_inputs()
HEADS = "blocks.{}.attn.query:out"
MLP = "blocks.{}.fc1:out"


def _model(**kwargs) -> TinyBert:
    torch.manual_seed(0)
    return TinyBert(**kwargs).eval()


@pytest.fixture(params=list(VARIANTS), ids=list(VARIANTS))
def variant(request) -> TinyBert:
    return _model(**VARIANTS[request.param])


def _zero_out(model: TinyBert, layer: int, heads: list[int], mlp: list[int]) -> None:
    """Zero the output-projection columns of ``heads`` and the fc2 columns of ``mlp``."""
    block = model.blocks[layer]
    d = block.attn.head_dim
    with torch.no_grad():
        for h in heads:
            block.attn.out.weight[:, h * d : (h + 1) * d] = 0
        block.fc2.weight[:, mlp] = 0


@pytest.mark.parametrize("kwargs", [*VARIANTS.values(), EXPORT_EXPLICIT],
                         ids=[*VARIANTS, "export-explicit"])  # fmt: skip
def test_groups_are_heads_mlp_and_one_hidden_stream(kwargs):
    groups = {g.name: g for g in channel_groups(_model(**kwargs), X)}
    assert sorted(groups) == sorted(
        ["words:out", "classifier:out"] + [f.format(i) for i in (0, 1) for f in (HEADS, MLP)]
    )
    hidden = groups["words:out"]
    assert (hidden.size, hidden.fixed) == (16, False)
    hidden_tensors = {m.name for m in hidden.members}
    expected = {"words.weight", "positions.weight", "ln.weight", "blocks.1.ln2.bias",
                "blocks.0.attn.query.weight", "blocks.1.fc2.bias", "classifier.weight"}  # fmt: skip
    assert expected <= hidden_tensors
    heads = groups[HEADS.format(0)]
    assert (heads.size, heads.fixed) == (4, False)
    members = {(m.name.split("attn.")[1], m.dim, m.block) for m in heads.members}
    assert members == {
        ("query.weight", 0, 4), ("query.bias", 0, 4), ("key.weight", 0, 4), ("key.bias", 0, 4),
        ("value.weight", 0, 4), ("value.bias", 0, 4), ("out.weight", 1, 4),
    }  # fmt: skip
    assert groups[MLP.format(1)].size == 24 and groups["classifier:out"].fixed


def test_the_front_end_is_fx_when_it_traces_and_export_otherwise():
    assert is_exported(export_trace(_model(), X))  # export also works where fx does
    assert not is_exported(analyze(_model(), X).gm)
    assert is_exported(analyze(_model(untraceable=True), X).gm)


def test_a_head_whose_output_columns_are_zero_is_dropped_exactly(variant):
    _zero_out(variant, 0, heads=[2], mlp=[])
    _zero_out(variant, 1, heads=[0, 3], mlp=[])
    keep = {HEADS.format(0): [0, 1, 3], HEADS.format(1): [1, 2]}
    small = cut(variant, X, keep)
    with torch.no_grad():
        assert torch.allclose(small(*X), variant(*X), atol=1e-6)


def test_cut_heads_and_mlp_equals_the_masked_original_and_costs_match(variant):
    keep = {HEADS.format(0): [1, 3], MLP.format(0): list(range(0, 24, 2)),
            HEADS.format(1): [0], MLP.format(1): [5, 6, 7]}  # fmt: skip
    analysis = analyze_channels(variant, X)
    small = cut(variant, X, keep, groups=analysis)
    assert type(small) is TinyBert  # the user's class, running its own forward
    for i, n_heads in enumerate((2, 1)):
        attn = small.blocks[i].attn
        assert attn.query.out_features == attn.key.out_features == n_heads * attn.head_dim
        assert attn.out.in_features == n_heads * attn.head_dim
    assert small.blocks[1].fc1.out_features == small.blocks[1].fc2.in_features == 3
    for i in (0, 1):
        dropped_heads = [h for h in range(4) if h not in keep[HEADS.format(i)]]
        dropped_mlp = [u for u in range(24) if u not in keep[MLP.format(i)]]
        _zero_out(variant, i, dropped_heads, dropped_mlp)
    with torch.no_grad():
        assert torch.allclose(small(*X), variant(*X), atol=1e-6)
    sizes = {name: len(kept) for name, kept in keep.items()}
    assert plan_macs(variant, X, analysis, sizes) == count_macs(small, X)
    assert plan_params(variant, X, analysis, sizes) == count_params(small)


def test_padding_still_works_after_a_cut(variant):
    groups = analyze_channels(variant, X)
    keep = keep_first(groups, {HEADS.format(0): 2, MLP.format(1): 10})
    small = cut(variant, X, keep, groups=groups)
    ids, mask = X
    n = int(mask[-1].sum())
    with torch.no_grad():
        padded = small(ids, mask)[-1]
        alone = small(ids[-1:, :n], mask[-1:, :n])[0]
    assert torch.allclose(padded, alone, atol=1e-5)


def test_hidden_size_is_one_group_and_can_be_cut(variant):
    groups = analyze_channels(variant, X)
    small = cut(variant, X, keep_first(groups, {"words:out": 8}), groups=groups)
    assert small.words.embedding_dim == 8 and small.positions.weight.shape == (32, 8)
    assert small.blocks[1].ln2.normalized_shape == (8,) and small.classifier.in_features == 8
    assert small.blocks[0].attn.query.in_features == 8
    with torch.no_grad():
        out = small(*X)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    assert plan_macs(variant, X, groups, {"words:out": 8}) == count_macs(small, X)


def test_hidden_states_as_output_keep_the_hidden_size_fixed():
    groups = {g.name: g for g in channel_groups(_model(head=False), X)}
    assert groups["words:out"].fixed and not groups[HEADS.format(1)].fixed


def test_heads_written_as_constants_are_rewritten_in_the_graph(caplog):
    model = _model(write_heads=True)
    with caplog.at_level("WARNING", logger="anywidth.graph"):
        small = cut(model, X, {HEADS.format(0): [0, 2]})
    assert isinstance(small, torch.fx.GraphModule) and "GraphModule" in caplog.text
    _zero_out(model, 0, heads=[1, 3], mlp=[])
    with torch.no_grad():
        assert torch.allclose(small(*X), model(*X), atol=1e-6)


def test_a_wrong_group_name_is_a_clear_error(variant):
    with pytest.raises(PlanError, match=r"unknown channel group 'blocks.0.attn.querry:out'.*"
                       r"did you mean 'blocks.0.attn.query:out'"):  # fmt: skip
        cut(variant, X, {"blocks.0.attn.querry:out": [0]})
