"""A clock made of MAC counts, for every latency-budget test: the per-layer table times a
layer by its MACs (`mac_timer`) and a side-by-side measurement gives each model its MACs
plus a fixed overhead, so a search on "latency" is exact and no test depends on a timer."""

from __future__ import annotations

from types import ModuleType

from anywidth.compression import api
from anywidth.latency import LatencyConfig, Timing
from anywidth.latency_table import LayerTimes
from anywidth.measure import count_macs
from tests.test_latency_table import mac_timer

SETTING = LatencyConfig(batch=1, threads=1)


def fake_clock(
    monkeypatch,
    where: ModuleType,
    overhead: float = 0.0,
    timer=mac_timer,
    grid: int = 1,
) -> list[dict[str, Timing]]:
    """Replace ``where.compare_latency`` (and `compress`'s) by MAC counts plus ``overhead``
    times the first model's MACs, and every shared layer table by one timed by ``timer``.

    ``grid`` is the table's width step; the table is what ``LayerTimes.shared`` returns.

    Returns:
        The measurements taken, in order (one dict of timings per call).
    """
    table = LayerTimes(SETTING, timer=timer, grid=grid)
    monkeypatch.setattr(LayerTimes, "shared", classmethod(lambda cls, s, folder=None: table))
    calls = []

    def compare(models, example_input, setting):
        full = count_macs(next(iter(models.values())), example_input)  # "full" or "before"
        out = {}
        for name, m in models.items():
            ms = count_macs(m, example_input) + overhead * full
            out[name] = Timing(setting.runtime, 1, 1, ms, 0.0, ms, 3)
        calls.append(out)
        return out

    monkeypatch.setattr(where, "compare_latency", compare)
    monkeypatch.setattr(api, "compare_latency", compare)
    return calls
