"""`PlanRequest`: validated when made, each error naming the field."""

import pytest

from anywidth.width import ALLOCATIONS, PlanRequest


def test_defaults_and_fields():
    request = PlanRequest(target_macs=0.5, allocation="global")
    assert (request.plan, request.target_macs, request.target_params) == (None, 0.5, None)
    assert (request.allocation, request.tolerance, request.round_to) == ("global", 0.02, 1)
    assert request.is_budget and request.budget().macs == 0.5
    assert not PlanRequest(0.5).is_budget and PlanRequest(0.5).budget() is None
    assert ALLOCATIONS == ("uniform", "global", "rank")


def test_frozen():
    request = PlanRequest(0.5)
    with pytest.raises(AttributeError):
        request.plan = 0.25


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"plan": 0.5, "target_macs": 0.5}, r"give one of plan, target_macs= or target_params="),
        ({"target_macs": 0.5, "target_params": 0.5}, r"got \['target_macs', 'target_params'\]"),
        ({"plan": 0.5, "allocation": "best"}, r"allocation='best'; use one of \['uniform'"),
        ({"target_macs": 0.5, "round_to": 0}, r"round_to=0 must be an int >= 1"),
        ({"target_macs": 0.5, "round_to": 2.0}, r"round_to=2.0 must be an int >= 1"),
        ({"target_macs": 0.5, "tolerance": 1.5}, r"tolerance=1.5 must be in \(0, 1\)"),
        ({"target_macs": -0.5}, r"Budget macs"),
        ({"target_params": 0.5, "allocation": "rank"}, r"allocation='rank' .* pass data="),
    ],
    ids=["plan+macs", "macs+params", "allocation", "round_to", "round_to-float", "tolerance",
         "negative-budget", "rank-without-data"],
)  # fmt: skip
def test_bad_requests_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        PlanRequest(**fields)


def test_rank_without_data_is_fine_without_a_budget():
    assert PlanRequest(0.5, allocation="rank").plan == 0.5  # a ratio needs no ranks
    assert PlanRequest(target_macs=0.5, allocation="rank", data=[1]).data == [1]


def test_of_reads_a_request_or_keywords():
    request = PlanRequest(target_macs=0.5)
    assert PlanRequest.of(request) is request
    assert PlanRequest.of(0.5, allocation="global") == PlanRequest(0.5, allocation="global")
    assert PlanRequest.of(plan={"a": 2}) == PlanRequest({"a": 2})
    assert PlanRequest.of() == PlanRequest()
    assert PlanRequest(0.5, data=[1]) == PlanRequest(0.5, data=[2])  # data is not compared


@pytest.mark.parametrize(
    ("args", "fields", "message"),
    [
        ((PlanRequest(0.5),), {"round_to": 2}, r"not both \(got \['round_to'\]\)"),
        ((0.5,), {"plan": 0.25}, r"plan given twice"),
        ((), {"target_mac": 0.5}, r"unknown plan keyword\(s\) \['target_mac'\]"),
    ],
    ids=["request+keywords", "plan-twice", "typo"],
)
def test_of_refuses_ambiguous_calls(args, fields, message):
    with pytest.raises(TypeError, match=message):
        PlanRequest.of(*args, **fields)
