"""Measured speed-up in the compression report: shown beside the MAC ratio when latency is
asked for, a SlowerWarning naming runtime, batch and threads when the result is not faster.
Timings are injected, so nothing here depends on the machine's speed."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pytest
import torch

import anywidth
from anywidth import Budget, compress
from anywidth.compression import CompressionReport, SlowerWarning, api
from anywidth.latency import LatencyConfig, Timing
from anywidth.measure import Report
from anywidth.pruning import PruneConfig

X = torch.randn(1, 1, 8, 8)
SETTING = LatencyConfig(runtime="onnxruntime", batch=1, threads=1)


def _report(before_ms: float, after_ms: float, setting=SETTING) -> CompressionReport:
    def row(name, macs, ms):
        return Report(name, 100, macs, ms, 1, 1, runtime="onnxruntime")

    return CompressionReport("prune", row("before", 1000, before_ms), row("after", 500, after_ms),
                             latency=setting)  # fmt: skip


def test_report_shows_measured_speedup_beside_the_mac_ratio():
    report = _report(4.0, 2.0)
    assert report.speedup == pytest.approx(2.0)
    text = str(report)
    assert "speed-up 2.00x measured (onnxruntime, batch 1, 1 thread)" in text
    assert "ideal 1/MAC ratio 2.00x" in text and "| ms" in text
    assert report.slower() is None
    assert report.to_dict()["latency"]["runtime"] == "onnxruntime"


def test_report_says_when_not_faster():
    message = _report(2.0, 2.5).slower()
    assert "not faster" in message
    assert "runtime='onnxruntime', batch=1, threads=1" in message


def test_report_without_latency_has_no_speedup():
    report = _report(2.0, 9.0, setting=None)
    assert report.speedup is None and report.slower() is None
    assert "| ms" not in report.table() and "speed-up" not in str(report)


def _fake_compare(after_ms: float):
    def compare(models, example_input, setting):
        assert list(models) == ["before", "after"]
        return {n: Timing(setting.runtime, 1, 1, ms, 0.0, ms, 3)
                for n, ms in (("before", 2.0), ("after", after_ms))}  # fmt: skip

    return compare


@pytest.fixture
def model():
    torch.manual_seed(0)
    return anywidth.create_model("tiny_resnet", num_classes=10, in_channels=1)


def test_compress_warns_when_the_result_is_slower(monkeypatch, model):
    monkeypatch.setattr(api, "compare_latency", _fake_compare(3.0))
    with pytest.warns(SlowerWarning, match="runtime='onnxruntime', batch=1, threads=1"):
        _, report = compress(model, X, PruneConfig(budget=Budget(macs=0.5)), latency=SETTING)
    assert report.speedup == pytest.approx(2 / 3)
    assert (report.after.runtime, report.latency) == ("onnxruntime", SETTING)


def test_compress_is_quiet_when_the_result_is_faster(monkeypatch, model):
    monkeypatch.setattr(api, "compare_latency", _fake_compare(1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowerWarning)
        _, report = compress(model, X, PruneConfig(budget=Budget(macs=0.5)), latency=SETTING)
    assert report.speedup == pytest.approx(2.0)


def test_budget_latency_is_a_fraction_with_a_looser_default_tolerance():
    assert Budget(latency=0.5).tolerance == 0.05 and Budget(macs=0.5).tolerance == 0.02
    assert Budget(latency=0.5).metric == "latency"
    assert Budget.from_dict(Budget(latency=0.25).to_dict()) == Budget(latency=0.25)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"latency": 2.0}, r"latency is a fraction"),
        ({"latency": 0.0}, r"latency is a fraction"),
        ({"latency": 0.5, "macs": 0.5}, "exactly one of macs=, params= or latency="),
        ({"latency": 0.5, "unit": "count"}, "no absolute latency budget"),
    ],
    ids=["above-one", "zero", "two-targets", "absolute"],
)
def test_budget_latency_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Budget(**kwargs)


@dataclass
class _NoLatencyConfig:
    budget: Budget


def test_compress_refuses_a_latency_budget_a_method_cannot_meet(monkeypatch):
    entry = api._Entry("nolatency", lambda *args: None, None)  # registered without the flag
    monkeypatch.setitem(api._HANDLERS, _NoLatencyConfig, entry)
    model = anywidth.create_model("tiny_resnet", num_classes=10)
    with pytest.raises(ValueError, match="not supported by the 'nolatency' method"):
        compress(model, X, _NoLatencyConfig(Budget(latency=0.5)))
