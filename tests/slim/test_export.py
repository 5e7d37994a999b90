import pytest
import torch

from anywidth.integral import IntegralConfig, to_integral
from anywidth.measure import count_macs
from anywidth.slim import ShrinkConfig, shrink, to_slimmable
from tests.integral._helpers import input_for, random_model, rel_err


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(x, batches=3):
    return [(x, torch.zeros(len(x), dtype=torch.long)) for _ in range(batches)]


@pytest.mark.parametrize("kind", ["integral", "slice"])
def test_shrink_without_tuning_or_recalibration_is_resample(kind, one_thread):
    x = input_for("tiny_resnet", batch=4)
    model = random_model("tiny_resnet")
    wide = to_slimmable(model, x[:1]) if kind == "slice" else to_integral(model, x[:1])
    wide.eval()
    small, report = shrink(wide, _data(x), ratio=0.5, tune_steps=0, recalibrate_batches=0)
    assert report.done == [] and report.plan == wide.width_plan(0.5)
    with torch.no_grad():
        assert rel_err(small(x), wide.resample(0.5)(x)) < 1e-5


def test_shrink_tunes_an_inn_and_recalibrates_by_default(one_thread):
    x = input_for("tiny_resnet", batch=4)
    inn = to_integral(random_model("tiny_resnet"), x[:1], IntegralConfig(reorder=False)).eval()
    before = {n: t.clone() for n, t in inn.state_dict().items()}
    small, report = shrink(inn, _data(x), target_macs=0.5, tune_steps=3)
    assert (report.tune_steps, report.recalibrate_batches) == (3, 20)
    assert report.done[0].startswith("tuned the partition for 3 steps")
    assert not small.training
    assert all(torch.equal(t, before[n]) for n, t in inn.state_dict().items())  # unchanged


def test_shrink_never_tunes_a_slimmable_model(one_thread):
    x = input_for("tiny_resnet", batch=4)
    slim = to_slimmable(random_model("tiny_resnet"), x[:1]).eval()
    _, report = shrink(slim, _data(x), ratio=0.5)
    assert report.tune_steps == 0 and report.recalibrate_batches == 20


@pytest.mark.parametrize("kind", ["integral", "slice"])
def test_rank_allocation_reads_the_data_and_cuts_a_rank_deficient_group_more(kind, one_thread):
    x = input_for("tiny_resnet", batch=8)
    model = random_model("tiny_resnet")
    conv = model.block1.conv1
    with torch.no_grad():
        conv.weight[conv.out_channels // 2 :] = 0  # half its outputs are zero: rank 1/2
    wide = to_slimmable(model, x[:1]) if kind == "slice" else to_integral(model, x[:1])
    wide.eval()
    data = _data(x)
    small, rank = shrink(wide, data, target_macs=0.5, allocation="rank", tune_steps=0)
    _, uniform = shrink(wide, data, target_macs=0.5, tune_steps=0)
    name = "block1.conv1:out"
    assert rank.plan[name] == 4 < uniform.plan[name] == 6  # of 8 channels
    assert abs(count_macs(small, x[:1]) / count_macs(model, x[:1]) - 0.5) <= 0.02 * 0.5
    with pytest.raises(ValueError, match="allocation='rank' measures output ranks on data"):
        wide.width_plan(target_macs=0.5, allocation="rank")


def test_shrink_refuses_no_plan_and_missing_data(one_thread):
    x = input_for("tiny_resnet", batch=4)
    slim = to_slimmable(random_model("tiny_resnet"), x[:1]).eval()
    with pytest.raises(ValueError, match="without one it would return the full width"):
        shrink(slim, _data(x))
    with pytest.raises(ValueError, match="data: shrink tunes the INN's partition and recal"):
        shrink(slim, None, ratio=0.5)
    with pytest.raises(TypeError, match="shrink takes an IntegralModel or a SlimmableModel"):
        shrink(slim.model, _data(x), ratio=0.5)
    small, report = shrink(slim, None, ShrinkConfig(ratio=0.5), recalibrate_batches=0)
    old, _ = shrink(slim, _data(x), ratio=0.5, recalibrate_batches=0)
    assert report.done == [] and min(report.plan.values()) < max(report.plan.values())
    with torch.no_grad():
        assert torch.equal(small(x), old(x))
