"""INN on a transformer: exact at full width, ordinary smaller modules when resampled."""

from __future__ import annotations

import pytest
import torch

from anywidth.integral import to_integral
from anywidth.measure import count_macs
from tests.graph._transformer import TinyBert, tiny_inputs

X = tiny_inputs()


def test_full_width_inn_equals_the_source_and_resamples_to_a_smaller_bert():
    # symbolic tracing; the torch.export path is covered by the real MiniLM (tests/models)
    torch.manual_seed(0)
    model = TinyBert().eval()
    inn = to_integral(model, X)
    with torch.no_grad():
        assert torch.allclose(inn(*X), model(*X), atol=1e-5)
        plan = inn.width_plan(target_macs=0.5)
        small = inn.resample(plan)
        assert type(small) is TinyBert
        assert abs(count_macs(small, X) / count_macs(model, X) - 0.5) <= 0.02
        with inn.at(plan):
            assert torch.allclose(small(*X), inn(*X), atol=1e-5)
        assert small.blocks[0].attn.out.in_features % small.blocks[0].attn.head_dim == 0
        assert torch.isfinite(small(*X)).all()


def test_an_exported_inn_saves_with_its_token_inputs_and_loads_back_equal(tmp_path):
    # item assignment makes symbolic tracing fail: the INN's skeleton comes from torch.export,
    # which specialises to the example's values (the padded mask), so the record keeps them
    from anywidth.integral import load_integral, save_integral
    from anywidth.train.checkpoint import read_checkpoint

    torch.manual_seed(0)
    model = TinyBert(untraceable=True).eval()
    inn = to_integral(model, X)
    path = save_integral(inn, tmp_path / "bert.inn.safetensors")
    inputs = read_checkpoint(path).meta["extra"]["steps"][-1]["inputs"]
    assert [i["dtype"] for i in inputs] == ["int64", "int64"]
    assert inputs[1]["values"] == X[1].flatten().tolist()
    back = load_integral(path, model=TinyBert(untraceable=True))
    plan = inn.width_plan(0.5)
    with torch.no_grad():
        assert torch.equal(back(*X), inn(*X))
        assert torch.allclose(back.resample(plan)(*X), inn.resample(plan)(*X), atol=1e-6)


def test_tune_hf_partition_moves_only_the_partition_and_lowers_the_distillation_loss():
    from anywidth.models.hf import distill_loss, teacher_targets, tune_hf_partition

    torch.manual_seed(0)
    model = TinyBert(head=False).eval()
    batches = [tiny_inputs(seed=s) for s in range(4)]
    inn = to_integral(model, batches[0])
    plan = inn.width_plan(0.5)
    targets = teacher_targets(model, batches)
    lam_before = [t.clone() for t in inn.weight_parameters()]

    def loss(net) -> float:
        with torch.no_grad():
            return sum(
                distill_loss(net(*b), t, b[1]).item() for b, t in zip(batches, targets, strict=True)
            )

    tuned = tune_hf_partition(inn, plan, batches, steps=30, lr=2e-2)
    assert loss(tuned.resample(plan)) < 0.9 * loss(inn.resample(plan))
    assert list(inn.grid_parameters()) == []  # the caller's INN keeps its uniform grids
    for before, after in zip(lam_before, tuned.weight_parameters(), strict=True):
        assert torch.equal(before, after)  # weights frozen
    with pytest.raises(ValueError, match="steps >= 1"):
        tune_hf_partition(inn, plan, batches, steps=0)
