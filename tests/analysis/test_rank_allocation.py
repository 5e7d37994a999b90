"""Rank-guided width plans: deficient groups give up more, in pruning and INN budgets."""

import pytest
import torch

from anywidth.graph import analyze_channels, group_rank_ratios, rank_priority
from anywidth.integral import IntegralConfig, to_integral
from anywidth.measure import count_macs
from anywidth.pruning import PruneConfig, prune
from anywidth.width._plans import uniform_priority
from tests.analysis._nets import LowRankFirst, batches


@pytest.fixture(scope="module")
def net():
    model = LowRankFirst(rank=4).eval()
    data = batches()
    return model, data[0][0][:1], data


def test_group_rank_ratios_find_the_deficient_group(net) -> None:
    model, x, data = net
    groups = analyze_channels(model, x)
    assert group_rank_ratios(model, data, groups) == {"conv1:out": 0.25, "conv2:out": 1.0}


def test_rank_priority_is_uniform_at_full_rank_and_scales_by_rank(net) -> None:
    model, x, _ = net
    groups = analyze_channels(model, x)
    full = rank_priority(groups, {"conv1:out": 1.0, "conv2:out": 1.0})
    uniform = uniform_priority(groups)
    assert all(torch.equal(full[n], uniform[n]) for n in uniform)
    scores = {"conv1:out": torch.arange(16.0), "conv2:out": torch.ones(16)}
    low = rank_priority(groups, {"conv1:out": 0.25}, scores)
    # Highest score first: channel 15 is in position 0, channel 0 in position 15.
    assert low["conv1:out"][15] == 1.0
    assert low["conv1:out"][0] == pytest.approx(1 - 15 / 4)


def test_prune_rank_cuts_the_rank_deficient_group_more(net) -> None:
    model, x, data = net
    widths = {}
    for ranking in ("local", "rank"):
        config = PruneConfig(target_macs=0.5, ranking=ranking, tolerance=0.05)
        _, report = prune(model, x, config, data=data)
        assert report.mac_ratio == pytest.approx(0.5, abs=0.025)
        widths[ranking] = report.widths_after
    assert widths["local"]["conv1:out"] == widths["local"]["conv2:out"]
    # conv1 has rank 4 of 16: its channels go first; conv2 stays whole (local: 11 and 11).
    assert widths["rank"]["conv1:out"] < widths["local"]["conv1:out"]
    assert widths["rank"]["conv2:out"] == 16 > widths["local"]["conv2:out"]


def test_inn_rank_allocation_meets_the_budget(net) -> None:
    model, x, data = net
    inn = to_integral(model, x, IntegralConfig())
    plan = inn.width_plan(target_macs=0.5, allocation="rank", data=data, tolerance=0.05)
    uniform = inn.width_plan(target_macs=0.5, allocation="uniform", tolerance=0.05)
    assert plan["conv1:out"] < uniform["conv1:out"] <= plan["conv2:out"]
    small = inn.resample(target_macs=0.5, allocation="rank", data=data, tolerance=0.05)
    assert count_macs(small, x) / count_macs(model, x) == pytest.approx(0.5, abs=0.025)
    assert small.conv1.out_channels == plan["conv1:out"]


def test_rank_allocation_without_data_says_what_to_pass(net) -> None:
    model, x, _ = net
    with pytest.raises(ValueError, match="ranking='rank' measures output ranks on data: pass"):
        prune(model, x, PruneConfig(target_macs=0.5, ranking="rank"))
    inn = to_integral(model, x, IntegralConfig())
    with pytest.raises(ValueError, match="allocation='rank' measures output ranks on data"):
        inn.width_plan(target_macs=0.5, allocation="rank")
    with pytest.raises(ValueError, match=r"ranking='ranks'; use one of \['global', 'local', 'r"):
        PruneConfig(target_macs=0.5, ranking="ranks")
