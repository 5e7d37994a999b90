import pytest
import torch

from anywidth.graph import cut, keep_first
from anywidth.slim import SlimmableModel, to_slimmable
from tests.integral._helpers import input_for, random_model, random_plan, rel_err


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_rexnet"])
def test_full_width_equals_the_model_and_channels_are_sorted(name, one_thread):
    model = random_model(name)
    x = input_for(name)
    slim = to_slimmable(model, x[:1])
    assert isinstance(slim, SlimmableModel) and not slim.training
    with torch.no_grad():
        assert rel_err(slim(x), model(x)) < 1e-5
    scores = slim.channel_importance()
    for g in slim.resizable:  # keep-first keeps the most important channels
        assert torch.all(scores[g.name][:-1] >= scores[g.name][1:] - 1e-9), g.name
        assert sorted(slim.permutation[g.name]) == list(range(g.size))


@pytest.mark.parametrize("name", ["tiny_resnet", "tiny_rexnet"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_plan_runs_the_keep_first_cut(name, seed, one_thread):
    x = input_for(name)
    slim = to_slimmable(random_model(name), x[:1])
    plan = random_plan(slim.resizable, seed)
    expected = cut(slim.model, x[:1], keep_first(slim.groups, plan))
    small = slim.resample(plan)
    with torch.no_grad(), slim.at(plan):
        y = slim(x)
    assert slim.sizes == {g.name: g.size for g in slim.resizable}  # restored after `at`
    assert rel_err(y, expected(x)) < 1e-5
    assert rel_err(small(x), expected(x)) < 1e-5
    assert type(small) is type(slim.model)


def test_training_at_a_plan_reaches_the_kept_weights_only(one_thread):
    x = input_for("tiny_resnet", batch=4)
    slim = to_slimmable(random_model("tiny_resnet"), x[:1]).train()
    group = slim.resizable[0]
    before = {n: b.clone() for n, b in slim.model.named_buffers()}
    with slim.at({group.name: 2}):
        slim(x).sum().backward()
    member = next(m for m in group.members if m.dim == 0 and m.name.endswith("weight"))
    grad = dict(slim.model.named_parameters())[member.name].grad
    assert grad[:2].abs().sum() > 0 and grad[2:].abs().sum() == 0
    for name, b in slim.model.named_buffers():  # narrow widths leave running stats alone
        assert torch.equal(b, before[name]), name


def test_budget_plans_meet_the_target(one_thread):
    x = input_for("tiny_resnet")
    slim = to_slimmable(random_model("tiny_resnet"), x[:1])
    from anywidth.measure import count_macs

    full = count_macs(slim.model, x[:1])
    small = slim.resample(target_macs=0.5)
    assert abs(count_macs(small, x[:1]) / full - 0.5) <= 0.02 * 1.01
