"""The pretrained all-MiniLM-L6-v2 through transformers: heads, pruning and INN.

Skipped without the ``nlp`` extra; CI installs it (``make test``).
"""

from __future__ import annotations

import pytest
import torch

from anywidth.graph import analyze_channels, cut
from anywidth.models.hf import (
    NLP_EXTRA,
    encode,
    hf_available,
    load_hf_model,
    minilm_path,
    sync_head_counts_,
)

pytestmark = pytest.mark.skipif(not hf_available(), reason=f"needs the nlp extra: {NLP_EXTRA}")

HEADS = "encoder.layer.{}.attention.self.query:out"
MLP = "encoder.layer.{}.intermediate.dense:out"


@pytest.fixture(scope="module")
def minilm():
    model, tokenizer = load_hf_model(minilm_path())
    x = encode(tokenizer, ["Padding is masked.", "A second sentence, with a few more words in it."])
    assert x[1][0].sum() < x[1][1].sum()  # the first sentence is padded
    return model, x, analyze_channels(model, x)


def _hidden(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model(*x)["last_hidden_state"]


def _zeroed(model, layer: int, heads: list[int], units: list[int]):
    """A copy of ``model`` with the output columns of ``heads`` and MLP ``units`` zeroed."""
    import copy

    model = copy.deepcopy(model)
    attn, mlp = model.encoder.layer[layer].attention, model.encoder.layer[layer].output
    d = attn.self.attention_head_size
    with torch.no_grad():
        for h in heads:
            attn.output.dense.weight[:, h * d : (h + 1) * d] = 0
        mlp.dense.weight[:, units] = 0
    return model


def test_minilm_has_12_heads_and_1536_mlp_units_per_layer_and_a_fixed_hidden_size(minilm):
    model, x, analysis = minilm
    groups = {g.name: g for g in analysis}
    for i in range(6):
        assert (groups[HEADS.format(i)].size, groups[MLP.format(i)].size) == (12, 1536)
        assert not groups[HEADS.format(i)].fixed
    assert groups["embeddings.word_embeddings:out"].fixed  # the hidden states are the output


def test_a_head_with_zero_output_columns_is_dropped_exactly(minilm):
    model, x, analysis = minilm
    zeroed = _zeroed(model, 2, heads=[5], units=[])
    small = cut(zeroed, x, {HEADS.format(2): [h for h in range(12) if h != 5]})
    assert torch.allclose(_hidden(small, x), _hidden(zeroed, x), atol=1e-5)


def test_a_cut_minilm_is_a_consistent_bert_equal_to_the_masked_original(minilm):
    model, x, analysis = minilm
    heads, units = [0, 3, 4, 9, 11], list(range(0, 1536, 3))
    keep = {HEADS.format(4): heads, MLP.format(4): units}
    small = cut(model, x, keep, groups=analysis)
    assert type(small) is type(model)
    attn = small.encoder.layer[4].attention
    d = attn.self.attention_head_size
    assert attn.self.query.out_features == attn.self.value.out_features == len(heads) * d
    assert attn.output.dense.in_features == len(heads) * d
    sync_head_counts_(small)
    assert (attn.self.num_attention_heads, attn.self.all_head_size) == (5, 5 * d)
    assert model.encoder.layer[4].attention.self.num_attention_heads == 12  # caller's model
    masked = _zeroed(
        model, 4, [h for h in range(12) if h not in heads], [u for u in range(1536) if u % 3]
    )
    assert torch.allclose(_hidden(small, x), _hidden(masked, x), atol=1e-5)
    other = (x[0][:1, :5], x[1][:1, :5])  # another batch and length: the class's own forward
    assert _hidden(small, other).shape == (1, 5, 384)


def test_a_cut_minilm_saves_as_safetensors_and_loads_back_equal(minilm, tmp_path):
    from anywidth.models.hf import load_hf_checkpoint, save_hf_model

    model, x, analysis = minilm
    keep = {HEADS.format(1): [2, 7], MLP.format(1): list(range(100)), MLP.format(5): [0, 1]}
    small = cut(model, x, keep, groups=analysis)
    path = save_hf_model(small, tmp_path / "small.safetensors", "minilm")
    back = load_hf_checkpoint(path)
    assert back.encoder.layer[1].attention.self.num_attention_heads == 2
    assert back.encoder.layer[5].intermediate.dense.out_features == 2
    torch.testing.assert_close(_hidden(back, x), _hidden(small, x))
    with pytest.raises(ValueError, match="use a .safetensors file name"):
        save_hf_model(small, tmp_path / "small.pt", "minilm")


def test_full_width_inn_equals_the_source(minilm):
    from anywidth.integral import IntegralConfig, to_integral

    model, x, _ = minilm
    inn = to_integral(model, x, IntegralConfig(reorder=False))
    with torch.no_grad():  # (resampling is covered on the tiny BERT: a second export here)
        assert torch.allclose(inn(*x)["last_hidden_state"], _hidden(model, x), atol=1e-5)
