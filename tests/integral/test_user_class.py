"""INN resampling hands back the user's own class on every zoo model, and it reloads by path."""

from __future__ import annotations

import pytest
import torch

import anywidth
from anywidth.integral import IntegralConfig, to_integral
from anywidth.models import model_kwargs
from anywidth.train import load_model, save_checkpoint

# One model per family runs in the quick tier; the larger depths and widths only differ in
# size (the largest ReXNets have tens of millions of parameters).
QUICK = {"resnet20", "vgg11", "mobilenetv2", "rexnet_100"}
NAMES = [n for n in anywidth.list_models() if not n.startswith("_")]
PARAMS = [
    n if n in QUICK or n.startswith("tiny_") else pytest.param(n, marks=pytest.mark.slow)
    for n in NAMES
]


def _input(name: str) -> torch.Tensor:
    kwargs = model_kwargs(name)
    size = 8 if name.startswith("tiny_") else 16
    return torch.randn(1, kwargs.get("in_channels", 3), size, size)


@pytest.mark.parametrize("name", PARAMS)
def test_resample_returns_the_zoo_class_and_reloads_from_the_path_alone(name, tmp_path):
    torch.manual_seed(0)
    model = anywidth.create_model(name).eval()
    x = _input(name)
    inn = to_integral(model, x, IntegralConfig(reorder=False)).eval()
    small = inn.resample(0.5).eval()
    assert type(small) is type(model)
    path = save_checkpoint(tmp_path / "small.safetensors", small)
    loaded, meta = load_model(path)
    assert type(loaded) is type(model)
    assert meta["extra"]["steps"][-1]["method"] == "resample"
    state = small.state_dict()
    assert all(torch.equal(t, state[k]) for k, t in loaded.state_dict().items())
    with torch.no_grad():  # same weights; conv kernels may pick other summation orders
        torch.testing.assert_close(loaded(x), small(x), rtol=1e-4, atol=1e-5)
