"""Low rank that pays: each factored layer is re-chosen among dense, 1-slice and k-slice by
measured time. Layer times come from injected fake timers, so the choices are exact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import anywidth
from anywidth import Budget
from anywidth.latency import LatencyConfig
from anywidth.latency_table import LayerTimes
from anywidth.lowrank import LowRankConfig, decompose
from anywidth.measure import count_macs

X = torch.randn(1, 1, 8, 8)
SETTING = LatencyConfig(batch=1, threads=1)


@pytest.fixture(scope="module")
def resnet20() -> nn.Module:
    torch.manual_seed(0)
    return anywidth.create_model("resnet20", num_classes=10, in_channels=1).eval()


def _use_timer(monkeypatch, timer) -> None:
    table = LayerTimes(SETTING, timer=timer, grid=1)
    monkeypatch.setattr(LayerTimes, "shared", classmethod(lambda cls, s, folder=None: table))


def _config(**kwargs) -> LowRankConfig:
    return LowRankConfig(budget=Budget(macs=0.5), starts=2, rounds=2, **kwargs)


def test_a_layer_stays_dense_when_its_factors_are_measured_slower(monkeypatch, resnet20):
    _use_timer(monkeypatch, lambda layer, x, setting: 1.0)  # every conv call costs the same
    _, plain = decompose(resnet20, X, _config())
    small, report = decompose(resnet20, X, _config(latency=SETTING))
    assert plain.factored() and report.factored() == {}
    assert set(report.kept_dense) == set(plain.factored())
    assert count_macs(small, X) == count_macs(resnet20, X)


def test_factors_faster_than_dense_are_kept(monkeypatch, resnet20):
    _use_timer(monkeypatch, lambda layer, x, setting: float(count_macs(layer, x)))
    plain, plain_report = decompose(resnet20, X, _config())
    _, report = decompose(resnet20, X, _config(latency=SETTING))
    assert report.kept_dense == []
    assert set(report.factored()) == set(plain_report.factored())


def test_slow_grouped_slices_give_way_to_one_slice(monkeypatch, resnet20):
    def grouped_is_slow(layer, x, setting):
        slow = 100.0 if getattr(layer, "groups", 1) > 1 else 1.0
        return slow * count_macs(layer, x)

    _use_timer(monkeypatch, grouped_is_slow)
    _, plain = decompose(resnet20, X, _config())
    assert any(k > 1 for k, _ in plain.factored().values())  # ALDS chose k-slice forms
    _, report = decompose(resnet20, X, _config(latency=SETTING))
    assert report.factored() and all(k == 1 for k, _ in report.factored().values())


def test_latency_setting_round_trips():
    config = _config(latency=SETTING)
    assert LowRankConfig.from_dict(config.to_dict()).latency == SETTING
    with pytest.raises(TypeError, match="LowRankConfig.latency"):
        _config(latency="torch")
