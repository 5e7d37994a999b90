import pytest
import torch
from torch import nn

from anywidth.train.recalibrate import recalibrate_bn, recalibrate_bn_


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.ReLU())


def _batches(n=5):
    gen = torch.Generator().manual_seed(1)
    return [(3.0 + 2.0 * torch.randn(8, 2, 4, 4, generator=gen), torch.zeros(8)) for _ in range(n)]


def test_statistics_equal_the_exact_data_statistics():
    model = _model()
    data = _batches()
    recalibrate_bn_(model, data, batches=5)
    feats = torch.cat([model[0](x) for x, _ in data])  # (40, 4, 4, 4)
    mean = feats.mean(dim=(0, 2, 3))
    bn = model[1]
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-5)
    # Cumulative average of per-batch unbiased variances, as BatchNorm defines it.
    per_batch = torch.stack([model[0](x).var(dim=(0, 2, 3), unbiased=True) for x, _ in data])
    torch.testing.assert_close(bn.running_var, per_batch.mean(0), rtol=1e-4, atol=1e-5)


def test_modes_and_momentum_restored():
    model = _model().eval()
    recalibrate_bn_(model, _batches(), batches=2)
    assert not any(m.training for m in model.modules())
    assert model[1].momentum == 0.1


def test_each_submodule_flag_is_restored():
    model = _model().train()
    model[2].eval()  # dropout switched off by hand in a training model stays off
    recalibrate_bn_(model, _batches(), batches=2)
    assert [m.training for m in model] == [True, True, False, True]
    assert model.training


def test_copy_leaves_caller_model_alone():
    model = _model()
    before = model[1].running_mean.clone()
    fresh = recalibrate_bn(model, _batches(), batches=3)
    assert torch.equal(model[1].running_mean, before)
    assert not torch.equal(fresh[1].running_mean, before)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batches"):
        recalibrate_bn_(_model(), _batches(), batches=0)
    with pytest.raises(ValueError, match="no data"):
        recalibrate_bn_(_model(), [], batches=3)
