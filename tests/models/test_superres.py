"""SRCNN and EDSR: published sizes, output shapes for every scale, tracing, bad options."""

from __future__ import annotations

import pytest
import torch

from anywidth.measure import count_params
from anywidth.models import create_model, model_kwargs
from anywidth.models.superres import SR_MODELS


def _weights_and_biases(model: torch.nn.Module) -> tuple[int, int]:
    weights = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    return weights, biases


def test_srcnn_955_has_the_published_57184_weights():
    # Dong et al. (TPAMI 2016), 9-5-5 on the Y channel: 9·9·64 + 5·5·64·32 + 5·5·32 weights.
    model = create_model("srcnn", in_channels=1)
    assert _weights_and_biases(model) == (57_184, 97)
    assert count_params(create_model("srcnn")) == 69_251  # the RGB default


@pytest.mark.parametrize("scale, params", [(2, 1_369_859), (3, 1_554_499), (4, 1_517_571)])
def test_edsr_baseline_has_the_published_size(scale, params):
    # Lim et al. (2017): the baseline (16 blocks × 64) has 1.37M parameters at ×2, 1.5M at ×4.
    with torch.device("meta"):
        model = create_model("edsr", scale=scale, channels=64, blocks=16)
    assert count_params(model) == params


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", SR_MODELS)
def test_output_is_the_input_times_the_scale_and_traces(name, scale):
    torch.manual_seed(0)
    model = create_model(name, scale=scale).eval()
    x = torch.rand(2, 3, 7, 9)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 3, 7 * scale, 9 * scale)
        assert torch.isfinite(out).all()
        assert torch.equal(torch.fx.symbolic_trace(model)(x), out)


@pytest.mark.parametrize("name", SR_MODELS)
def test_factory_options(name):
    options = model_kwargs(name)
    assert options["in_channels"] == 3 and options["scale"] in (3, 4)
    assert "num_classes" not in options


@pytest.mark.parametrize("name", SR_MODELS)
@pytest.mark.parametrize("scale", [1, 5, "3"])
def test_bad_scale_is_refused(name, scale):
    with pytest.raises(ValueError, match=r"scale must be one of \(2, 3, 4\)"):
        create_model(name, scale=scale)


def test_edsr_residual_scaling_and_small_default():
    torch.manual_seed(0)
    model = create_model("edsr")
    assert len(model.body) == 4 and model.head.out_channels == 32
    scaled = create_model("edsr", res_scale=0.1)
    assert all(block.res_scale == 0.1 for block in scaled.body)
    with pytest.raises(ValueError, match="channels >= 1"):
        create_model("edsr", channels=0)
