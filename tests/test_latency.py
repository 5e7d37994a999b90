import importlib.util

import pytest
import torch
from torch import nn

from anywidth import latency as latency_module
from anywidth.latency import LatencyConfig, Timing, compare_latency, default_threads, latency

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(128, 4)
    )


X = torch.randn(2, 3, 4, 4)


def test_latency_names_runtime_batch_and_threads():
    t = latency(_net(), X, warmup=1, repeats=3, threads=1)
    assert isinstance(t, Timing)
    assert (t.runtime, t.batch, t.threads, t.repeats) == ("torch", 2, 1, 3)
    assert 0 < t.min_ms <= t.median_ms
    assert t.spread_ms >= 0


def test_latency_batch_repeats_the_first_sample():
    assert latency(_net(), X, warmup=0, repeats=1, threads=1, batch=5).batch == 5


def test_latency_restores_modes_and_threads():
    model, before = _net().train(), torch.get_num_threads()
    model[1].eval()  # a submodule in the other mode stays so
    latency(model, X, warmup=0, repeats=1, threads=1)
    assert model.training and not model[1].training
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed")
def test_latency_on_onnxruntime_names_it():
    t = latency(_net(), X, warmup=1, repeats=2, threads=1, runtime="onnxruntime", batch=1)
    assert (t.runtime, t.batch, t.threads) == ("onnxruntime", 1, 1)


def test_compare_latency_times_every_model_in_blocks():
    models = {"dense": _net(), "small": nn.Sequential(nn.Flatten(), nn.Linear(48, 4))}
    setting = LatencyConfig(warmup=1, repeats=6, threads=1)
    out = compare_latency(models, X, setting, blocks=3)
    assert list(out) == ["dense", "small"]
    assert all(t.repeats == 6 and t.runtime == "torch" for t in out.values())


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"runtime": "tensorrt"}, "runtime"),
        ({"threads": 0}, "threads"),
        ({"batch": 0}, "batch"),
        ({"repeats": 0}, "repeats"),
        ({"warmup": -1}, "warmup"),
    ],
    ids=["runtime", "threads", "batch", "repeats", "warmup"],
)
def test_latency_config_names_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=f"LatencyConfig.{field}"):
        LatencyConfig(**kwargs)


def test_latency_config_round_trips_and_describes():
    setting = LatencyConfig(runtime="onnxruntime", batch=1, threads=2)
    assert LatencyConfig.from_dict(setting.to_dict()) == setting
    assert setting.describe() == "onnxruntime, batch 1, 2 threads"


@pytest.mark.parametrize(
    "cores, load, expected", [(2, 1.0, 2), (2, 3.0, 1), (4, 3.0, 2), (4, None, 4), (2, 9.0, 1)]
)
def test_default_threads_leaves_cores_to_the_load(monkeypatch, cores, load, expected):
    monkeypatch.setattr(latency_module, "_cores", lambda: cores)
    monkeypatch.setattr(latency_module, "_load", lambda: load)
    assert default_threads() == expected
