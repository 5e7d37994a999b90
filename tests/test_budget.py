"""Budget: one meaning (a fraction of the original; counts only through Budget.absolute),
one validation, and every method's config takes it and reads it the same way."""

from __future__ import annotations

import pytest

import anywidth
from anywidth import Budget
from anywidth.budget import as_budget
from anywidth.lowrank import LowRankConfig
from anywidth.pruning import PruneConfig, prune
from anywidth.search import SearchConfig
from anywidth.slim import ShrinkConfig
from tests.integral._helpers import input_for, random_model


def test_a_fraction_is_the_default_meaning():
    b = Budget(macs=0.5)
    assert (b.metric, b.value, b.unit, b.tolerance) == ("macs", 0.5, "fraction", 0.02)
    assert b.fraction_of(1000) == 0.5
    assert b.resolve(1000) is b


def test_absolute_counts_only_through_the_classmethod():
    b = Budget.absolute(params=1000)
    assert (b.metric, b.unit) == ("params", "count")
    assert b.fraction_of(4000) == 0.25
    assert b.resolve(4000) == Budget(params=0.25)
    with pytest.raises(ValueError, match=r"Budget.absolute\(macs=2.0\)"):
        Budget(macs=2.0)  # above 1 is never silently a count


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of macs=, params= or latency="),
        ({"macs": 0.5, "params": 0.5}, "exactly one of macs=, params= or latency="),
        ({"macs": 0.0}, r"Budget\(macs=0.0\): macs is a fraction"),
        ({"params": float("nan")}, r"Budget\(params=nan\)"),
        ({"macs": True}, r"Budget\(macs=True\)"),
        ({"macs": 0.5, "tolerance": 0.0}, "tolerance=0.0 must be in"),
        ({"macs": 0.5, "tolerance": 1.5}, "tolerance=1.5 must be in"),
        ({"macs": 0.5, "unit": "percent"}, "unit='percent'"),
    ],
    ids=["none", "both", "zero", "nan", "bool", "tol-zero", "tol-big", "unit"],
)
def test_bad_budgets_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Budget(**kwargs)


def test_bad_absolute_counts_are_refused():
    with pytest.raises(ValueError, match=r"Budget.absolute\(macs=1\).*above 1"):
        Budget.absolute(macs=1)
    with pytest.raises(ValueError, match="not below the model's 1,000 MACs"):
        Budget.absolute(macs=1000).fraction_of(1000)


def test_met_by_is_relative_to_the_target():
    b = Budget(macs=0.5, tolerance=0.02)
    assert b.met_by(510, 1000) and b.met_by(490, 1000)
    assert not b.met_by(511, 1000) and not b.met_by(489, 1000)
    assert Budget.absolute(params=500, tolerance=0.1).met_by(545, 1000)


def test_round_trip_and_unknown_keys():
    b = Budget.absolute(macs=12345, tolerance=0.05)
    assert Budget.from_dict(b.to_dict()) == b
    with pytest.raises(ValueError, match="unknown Budget field 'mac'"):
        Budget.from_dict({"mac": 0.5})
    with pytest.raises(TypeError, match=r"PruneConfig.budget=0.5 is not a Budget"):
        as_budget("PruneConfig.budget", 0.5)


@pytest.mark.parametrize(
    "config",
    [
        PruneConfig(budget=Budget(macs=0.5)),
        PruneConfig(target_params=150_000),
        LowRankConfig(budget=Budget.absolute(params=3000)),
        SearchConfig(budget=Budget(macs=0.4, tolerance=0.1)),
        SearchConfig(budget=Budget.absolute(macs=50_000)),
        ShrinkConfig(budget=Budget(params=0.3), tune_steps=0),
        ShrinkConfig(ratio=0.5),
    ],
    ids=["prune", "prune-old", "lowrank", "search", "search-count", "shrink", "shrink-ratio"],
)
def test_configs_with_a_budget_round_trip(config):
    assert type(config).from_dict(config.to_dict()) == config


def test_every_config_reads_its_budget_the_same_way():
    assert PruneConfig(target_macs=0.5).as_budget() == Budget(macs=0.5)
    assert PruneConfig(target_params=2e5).as_budget() == Budget.absolute(params=2e5)
    assert LowRankConfig(target_params=0.5).as_budget() == Budget(params=0.5, tolerance=0.02)
    assert ShrinkConfig(budget=Budget(macs=0.5)).as_budget() == Budget(macs=0.5)
    # the search's band: a relative tolerance of 10% at 0.4 is 0.36..0.44
    search = SearchConfig(budget=Budget(macs=0.4, tolerance=0.1))
    assert search.target_macs == 0.4 and search.tolerance == pytest.approx(0.04)
    assert SearchConfig().target_macs == 0.5 and SearchConfig().tolerance == 0.05


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PruneConfig(), "PruneConfig needs budget="),
        (lambda: PruneConfig(target_macs=0.5, budget=Budget(macs=0.5)), "not both"),
        (lambda: PruneConfig(budget=Budget(macs=0.5), tolerance=0.1), "give the tolerance to"),
        (lambda: LowRankConfig(), "LowRankConfig needs exactly one of budget="),
        (lambda: LowRankConfig(target_macs=0.5, budget=Budget(macs=0.5)), "exactly one of"),
        (lambda: SearchConfig(budget=Budget(params=0.5)), "the search targets MACs"),
        (lambda: SearchConfig(budget=Budget(macs=1.0)), "fraction below 1"),
        (lambda: SearchConfig(target_macs=0.3, budget=Budget(macs=0.5)), "not both"),
        (lambda: ShrinkConfig(), "exactly one of budget="),
        (lambda: ShrinkConfig(ratio=1.5), r"ShrinkConfig.ratio=1.5"),
        (lambda: ShrinkConfig(ratio=0.5, allocation="best"), "ShrinkConfig.allocation='best'"),
    ],
    ids=["prune-none", "prune-both", "prune-tol", "lr-none", "lr-both", "search-params",
         "search-full", "search-both", "shrink-none", "shrink-ratio", "shrink-alloc"],
)  # fmt: skip
def test_config_budget_errors_name_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_budget_prunes_exactly_as_the_older_fields_do():
    model, x = random_model("resnet20"), input_for("resnet20", batch=1)
    full_params = anywidth.measure.count_params(model)
    pairs = [
        (PruneConfig(target_macs=0.5), PruneConfig(budget=Budget(macs=0.5))),
        (
            PruneConfig(target_params=full_params // 3),
            PruneConfig(budget=Budget.absolute(params=full_params // 3)),
        ),
    ]
    for old, new in pairs:
        _, a = prune(model, x, old)
        _, b = prune(model, x, new)
        assert a.widths_after == b.widths_after and a.changed()
