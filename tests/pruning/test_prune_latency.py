"""Pruning to a latency budget. The layer table's timer and the side-by-side measurement
are replaced by MAC counts (time proportional to MACs, plus a fixed overhead where a test
needs one), so the loop — bisect on the table, correct with the measurement — is tested
without any clock."""

from __future__ import annotations

import warnings

import pytest
import torch

import anywidth
from anywidth import Budget
from anywidth.latency import LatencyConfig
from anywidth.latency_table import GRID, LayerTimes
from anywidth.pruning import PruneConfig, prune
from anywidth.pruning import _latency as latency_plan
from tests._clock import fake_clock

X = torch.randn(1, 3, 16, 16)
SETTING = LatencyConfig(batch=1, threads=1)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return anywidth.create_model("tiny_resnet", num_classes=10)


def _fake_clock(monkeypatch, overhead: float = 0.0):
    """Measured time = MACs (+ ``overhead`` of the original's MACs); a fake-timer table."""
    calls = fake_clock(monkeypatch, latency_plan, overhead, grid=GRID)
    return LayerTimes.shared(SETTING), calls


def test_latency_budget_is_met_from_the_table(monkeypatch, model):
    table, calls = _fake_clock(monkeypatch)
    config = PruneConfig(budget=Budget(latency=0.5), latency=SETTING)
    small, report = prune(model, X, config)
    assert report.latency_ratio == pytest.approx(0.5, rel=0.05)
    assert len(calls) == 1  # the table's prediction was right: no correction needed
    assert report.macs_after / report.macs_before == pytest.approx(0.5, rel=0.05)
    assert table.hits > 0


def test_a_table_that_is_off_is_corrected_by_measurement(monkeypatch, model):
    _, calls = _fake_clock(monkeypatch, overhead=0.2)  # the table does not see 20% overhead
    config = PruneConfig(budget=Budget(latency=0.6, tolerance=0.05), latency=SETTING)
    _, report = prune(model, X, config)
    assert len(calls) >= 2
    assert report.latency_ratio == pytest.approx(0.6, rel=0.05)


def test_an_unreachable_budget_reports_the_best_reached(monkeypatch, model):
    _fake_clock(monkeypatch, overhead=3.0)  # a fixed cost larger than every layer together
    config = PruneConfig(budget=Budget(latency=0.5), latency=SETTING)
    with pytest.warns(RuntimeWarning, match=r"latency=0.5 not met within 5%.*best reached"):
        _, report = prune(model, X, config)
    assert report.latency_ratio > 0.75


def test_latency_settings_round_trip_in_the_config():
    config = PruneConfig(budget=Budget(latency=0.5), latency=SETTING, latency_cache="runs/x")
    again = PruneConfig.from_dict(config.to_dict())
    assert again.latency == SETTING and again.budget == Budget(latency=0.5)


def test_latency_must_be_a_latency_config():
    with pytest.raises(TypeError, match="PruneConfig.latency"):
        PruneConfig(budget=Budget(latency=0.5), latency="onnxruntime")


def test_compress_passes_its_setting_to_a_latency_budget(monkeypatch, model):
    _fake_clock(monkeypatch)
    from anywidth.compression import api

    monkeypatch.setattr(api, "compare_latency", latency_plan.compare_latency)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, report = anywidth.compress(
            model, X, PruneConfig(budget=Budget(latency=0.5)), latency=SETTING
        )
    assert report.met_budget and report.latency == SETTING
    assert report.config["latency"]["threads"] == 1
