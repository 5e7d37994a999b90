"""`WidthModel`: planning shared by every width model; `resample` defers to one hook."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from anywidth.graph import PlanError, channel_groups
from anywidth.integral import IntegralConfig, to_integral
from anywidth.slim import to_slimmable
from anywidth.width import PlanRequest, WidthModel
from tests.integral._helpers import input_for, random_model


class Recorder(WidthModel):
    """A width model whose `_resample` records the plans it is asked for."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        super().__init__(model, x, channel_groups(model, x))
        self.model, self.asked = model, []

    def _resample(self, plan):
        self.asked.append(plan)
        return copy.deepcopy(self.model).train()  # in train mode: resample sets the mode

    def channel_importance(self):
        return {g.name: torch.linspace(2, 0, g.size) for g in self.resizable}

    def load_running_stats_(self, buffers):
        raise NotImplementedError

    def forward(self, x):
        return self.model(x)


@pytest.fixture(scope="module")
def recorder():
    x = input_for("tiny_resnet")
    return Recorder(random_model("tiny_resnet"), x[:1])


def test_resample_plans_then_calls_the_subclass_hook_once(recorder):
    recorder.asked.clear()
    small = recorder.eval().resample(0.5)
    assert recorder.asked == [recorder.width_plan(0.5)]
    assert all(size == max(1, round(0.5 * g.size)) for g, size in
               zip(recorder.resizable, recorder.asked[0].values(), strict=True))  # fmt: skip
    assert not small.training  # in the width model's mode, whatever the hook returned
    recorder.asked.clear()
    recorder.resample(PlanRequest(target_macs=0.5))
    assert recorder.asked == [recorder.width_plan(target_macs=0.5)]
    with pytest.raises(PlanError):
        recorder.resample(1.5)
    assert len(recorder.asked) == 1  # a bad plan never reaches the hook


def test_width_model_is_abstract(recorder):
    x = input_for("tiny_resnet")[:1]
    with pytest.raises(TypeError, match="abstract"):
        WidthModel(recorder.model, x, recorder.groups)

    class NoHook(WidthModel):
        def channel_importance(self):
            return {}

        def load_running_stats_(self, buffers):
            pass

    with pytest.raises(TypeError, match="_resample"):
        NoHook(recorder.model, x, recorder.groups)


def test_at_and_set_sizes_(recorder):
    full = {g.name: g.size for g in recorder.resizable}
    name = recorder.resizable[0].name
    assert recorder.sizes == full and recorder.width_plan() == full
    with recorder.at({name: 2}) as inside:
        assert inside is recorder and recorder.sizes[name] == 2
        assert recorder.width_plan() == recorder.sizes  # None: the current sizes
    assert recorder.sizes == full
    with pytest.raises(RuntimeError), recorder.at(0.5):
        raise RuntimeError
    assert recorder.sizes == full  # restored after an error too
    recorder.set_sizes_(0.5)
    assert recorder.sizes == recorder.width_plan(0.5)
    recorder.set_sizes_(None)
    assert recorder.sizes == full
    assert recorder.loss_weight(recorder.width_plan(0.5)) == 1.0


def test_a_request_and_its_keywords_give_the_same_plan(recorder):
    fields = {"target_params": 0.4, "allocation": "global", "round_to": 2, "tolerance": 0.1}
    request = PlanRequest(**fields)
    plan = recorder.width_plan(request)
    assert plan == recorder.width_plan(**fields)
    assert all(size % 2 == 0 or size == g.size for g, size in
               zip(recorder.resizable, plan.values(), strict=True))  # fmt: skip
    with pytest.raises(TypeError, match="not both"):
        recorder.width_plan(request, round_to=1)


REQUESTS = {
    "ratio": PlanRequest(0.5),
    "plan": PlanRequest({"block1.conv1:out": 3}),
    "macs-uniform": PlanRequest(target_macs=0.5),
    "params-round": PlanRequest(target_params=0.4, round_to=2, tolerance=0.1),
    "macs-global": PlanRequest(target_macs=0.4, allocation="global"),
}


@pytest.fixture(scope="module")
def both():
    """An INN and a slimmable model of the same net, channels in the same order."""
    x = input_for("tiny_resnet", batch=4)
    model = random_model("tiny_resnet")
    with torch.no_grad():
        model.block1.conv1.weight[4:] = 0  # a rank-deficient group for allocation="rank"
    inn = to_integral(model, x[:1], IntegralConfig(reorder=False)).eval()
    slim = to_slimmable(model, x[:1], sort=False).eval()
    return inn, slim, [(x, torch.zeros(4, dtype=torch.long))]


@pytest.mark.parametrize("name", [*REQUESTS, "macs-rank"])
def test_both_models_give_identical_plans(both, name):
    inn, slim, data = both
    request = REQUESTS.get(name) or PlanRequest(target_macs=0.5, allocation="rank", data=data)
    plan = inn.width_plan(request)
    assert plan == slim.width_plan(request)
    assert set(plan) == {g.name for g in inn.resizable}
    assert plan != {g.name: g.size for g in inn.resizable}  # something was resized


def test_rank_allocation_shrinks_the_deficient_group_in_both(both):
    inn, slim, data = both
    name = "block1.conv1:out"  # half its filters are zero
    for wide in (inn, slim):
        rank = wide.width_plan(target_macs=0.5, allocation="rank", data=data)
        assert rank[name] == 4 < wide.width_plan(target_macs=0.5)[name] == 6  # of 8
