"""INN on a transformer: exact at full width, ordinary smaller modules when resampled."""

from __future__ import annotations

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
