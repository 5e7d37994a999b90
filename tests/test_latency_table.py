"""The per-layer latency table: entries keyed by shape on a channel grid, measured once,
kept in memory and in a JSON file. A fake timer makes every number deterministic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anywidth.latency import LatencyConfig
from anywidth.latency_table import LayerTimes, timed_layers
from anywidth.measure import count_macs

SETTING = LatencyConfig(batch=1, threads=1)


def mac_timer(layer: nn.Module, x: torch.Tensor, setting: LatencyConfig) -> float:
    return count_macs(layer, x) / 1e3


def _net(width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10),
    )  # fmt: skip


X = torch.randn(1, 3, 8, 8)


def test_timed_layers_lists_each_call_with_its_input_shape():
    names = [(n, s) for n, _, s in timed_layers(_net(), X)]
    assert names == [("0", (1, 3, 8, 8)), ("2", (1, 16, 8, 8)), ("5", (1, 16))]


def test_table_measures_each_shape_once_then_hits():
    table = LayerTimes(SETTING, timer=mac_timer)
    first = table.layers_ms(_net(), X)
    assert (table.hits, table.misses) == (0, 3)
    assert table.layers_ms(_net(), X) == first
    assert (table.hits, table.misses) == (3, 3)


def test_widths_share_an_entry_on_the_grid():
    table = LayerTimes(SETTING, timer=mac_timer, grid=8)
    table.layers_ms(_net(66), X)
    table.layers_ms(_net(70), X)  # 66 and 70 both round up to 72
    assert table.misses == 3 and table.hits == 3
    exact = LayerTimes(SETTING, timer=mac_timer, grid=1)
    exact.layers_ms(_net(66), X)
    exact.layers_ms(_net(70), X)
    assert exact.misses == 6


def test_table_is_kept_on_disk_per_setting(tmp_path):
    LayerTimes(SETTING, tmp_path, timer=mac_timer).layers_ms(_net(), X)
    again = LayerTimes(SETTING, tmp_path, timer=mac_timer)
    again.layers_ms(_net(), X)
    assert (again.hits, again.misses) == (3, 0)
    other = LayerTimes(LatencyConfig(batch=1, threads=2), tmp_path, timer=mac_timer)
    other.layers_ms(_net(), X)
    assert other.misses == 3  # another thread count is another table
    assert len(list(tmp_path.glob("layers-*.json"))) == 2


def test_shared_tables_are_one_per_setting():
    assert LayerTimes.shared(SETTING) is LayerTimes.shared(SETTING)
    assert LayerTimes.shared(SETTING) is not LayerTimes.shared(LatencyConfig(threads=2))


def test_table_needs_a_thread_count():
    with pytest.raises(ValueError, match="threads set"):
        LayerTimes(LatencyConfig(threads=None))


def test_depthwise_conv_stays_depthwise_on_the_grid():
    table = LayerTimes(SETTING, timer=mac_timer)
    dw = nn.Conv2d(60, 60, 3, padding=1, groups=60)  # narrow: a step of 60 // 8 = 7
    assert table.layer_ms(dw, (1, 60, 8, 8)) == pytest.approx(63 * 9 * 64 / 1e3)
