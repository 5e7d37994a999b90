"""The INN and slimmable models to a latency budget. The layer table's timer and the
side-by-side measurement are replaced by MAC counts (time proportional to MACs, plus a fixed
overhead where a test needs one), so the search is tested without any clock."""

from __future__ import annotations

import warnings

import pytest
import torch

import anywidth
from anywidth import Budget, compress
from anywidth.integral import to_integral
from anywidth.latency import LatencyConfig
from anywidth.measure import count_macs
from anywidth.slim import ShrinkConfig, shrink, to_slimmable
from anywidth.slim import _latency as latency_plan
from tests._clock import fake_clock

X = torch.randn(1, 1, 8, 8)
SETTING = LatencyConfig(batch=1, threads=1)
KINDS = {"slim": lambda m: to_slimmable(m, X), "inn": lambda m: to_integral(m, X)}


@pytest.fixture(scope="module")
def wides():
    torch.manual_seed(0)
    model = anywidth.create_model("resnet20", num_classes=10, in_channels=1).eval()
    return {kind: make(model).eval() for kind, make in KINDS.items()}


def _fake_clock(monkeypatch, overhead: float = 0.0):
    return fake_clock(monkeypatch, latency_plan, overhead)


def _config(latency: float, **kwargs) -> ShrinkConfig:
    return ShrinkConfig(budget=Budget(latency=latency), tune_steps=0, latency=SETTING, **kwargs)


@pytest.mark.parametrize("kind", list(KINDS))
def test_latency_budget_is_met_from_the_table(monkeypatch, wides, kind):
    calls = _fake_clock(monkeypatch)
    small, report = shrink(wides[kind], None, _config(0.5), recalibrate_batches=0)
    assert len(calls) == 1  # the table's prediction was right: no correction needed
    assert report.latency_ratio == pytest.approx(0.5, rel=0.05)
    full = count_macs(wides[kind].resample(1.0), X)
    assert count_macs(small, X) / full == pytest.approx(0.5, rel=0.05)
    assert report.done[0].startswith("widths from a per-layer latency table; measured 0.")


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_table_that_is_off_is_corrected_by_measurement(monkeypatch, wides, kind):
    calls = _fake_clock(monkeypatch, overhead=0.2)  # the table does not see 20% overhead
    _, report = shrink(wides[kind], None, _config(0.6), recalibrate_batches=0)
    assert len(calls) >= 2
    assert report.latency_ratio == pytest.approx(0.6, rel=0.05)


def test_an_unreachable_budget_reports_the_best_reached(monkeypatch, wides):
    _fake_clock(monkeypatch, overhead=3.0)  # a fixed cost larger than every layer together
    with pytest.warns(RuntimeWarning, match=r"ShrinkConfig.budget latency=0.5 not met.*best"):
        _, report = shrink(wides["slim"], None, _config(0.5), recalibrate_batches=0)
    assert report.latency_ratio > 0.75


def test_round_to_holds_under_a_latency_budget(monkeypatch, wides):
    _fake_clock(monkeypatch)
    wide = wides["slim"]
    _, report = shrink(wide, None, _config(0.5, round_to=8), recalibrate_batches=0)
    full = {g.name: g.size for g in wide.resizable}
    cut = {n: w for n, w in report.plan.items() if w != full[n]}
    assert cut and all(w % 8 == 0 for w in cut.values()), cut


@pytest.mark.parametrize("kind", list(KINDS))
def test_compress_meets_a_latency_budget(monkeypatch, wides, kind):
    _fake_clock(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = ShrinkConfig(budget=Budget(latency=0.5), tune_steps=0)
        _, report = compress(wides[kind], X, config, latency=SETTING)
    assert report.met_budget and report.latency == SETTING and report.method == kind
    assert report.details.latency_ratio == pytest.approx(0.5, rel=0.05)
    assert report.config["latency"]["threads"] == 1


def test_the_caller_s_width_model_is_not_changed(monkeypatch, wides):
    _fake_clock(monkeypatch)
    wide = wides["inn"]
    before = {n: t.clone() for n, t in wide.state_dict().items()}
    shrink(wide, None, _config(0.5), recalibrate_batches=0)
    assert wide.sizes == wide.width_plan(1.0)
    assert all(torch.equal(before[n], t) for n, t in wide.state_dict().items())


def test_latency_settings_round_trip_in_the_config():
    config = _config(0.5, latency_cache="runs/x")
    again = ShrinkConfig.from_dict(config.to_dict())
    assert again.latency == SETTING and again.budget == Budget(latency=0.5)


def test_bad_latency_settings_are_named():
    with pytest.raises(TypeError, match="ShrinkConfig.latency"):
        ShrinkConfig(budget=Budget(latency=0.5), latency="onnxruntime")
    with pytest.raises(ValueError, match="latency budget: shrink finds its plan by measuring"):
        _config(0.5).plan_request()
