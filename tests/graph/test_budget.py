"""`Budget` and `plan_for_budget`: bad budgets are errors that say what the number means."""

import re

import pytest
import torch

from anywidth.graph import PlanError, WidthCost, channel_groups
from anywidth.graph.budget import Budget, plan_for_budget
from tests.graph import _models as M

X = torch.randn(1, 3, 8, 8)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")], ids=str)
@pytest.mark.parametrize("metric", ["macs", "params"])
def test_non_finite_budget_is_an_error(metric, value):
    message = f"Budget {metric}={value!r} is not a finite number above 0; give a fraction"
    with pytest.raises(ValueError, match=re.escape(message)):
        Budget(**{metric: value})


@pytest.mark.parametrize("value", [0, -0.5, True, "0.5"], ids=repr)
def test_non_positive_or_non_number_budget_is_an_error(value):
    with pytest.raises(ValueError, match=re.escape(f"Budget macs={value!r} is not a finite")):
        Budget(macs=value)


def _planner_inputs():
    model = M.Concat().eval()
    cost = WidthCost(model, X, channel_groups(model, X))
    priority = {g.name: torch.ones(g.size) for g in cost.groups if not g.fixed}
    return cost, priority


def test_absolute_count_below_smallest_model_says_it_was_read_as_a_count():
    cost, priority = _planner_inputs()
    smallest = cost.macs({g.name: 1 for g in cost.groups if not g.fixed})
    full = cost.macs({})
    with pytest.raises(PlanError) as error:
        plan_for_budget(cost, priority, Budget(macs=2.0))
    assert str(error.value) == (
        "macs target 2.0 is read as an absolute count of 2.0 MACs (values above 1 are absolute "
        f"counts; fractions of the original are in (0, 1]), below the smallest model's "
        f"{smallest:,} MACs (full model: {full:,}; min_channels=1, round_to=1); give a "
        f"fraction such as 0.5 or a count of at least {smallest:,}"
    )


def test_fraction_below_smallest_model_keeps_the_plain_message():
    cost, priority = _planner_inputs()
    with pytest.raises(PlanError, match=r"^macs target \S+ is below the smallest model these"):
        plan_for_budget(cost, priority, Budget(macs=1e-6))
