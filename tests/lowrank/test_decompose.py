"""decompose: exact factorisations, exact errors, budgets, ALDS against uniform SVD, reload."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import anywidth
from anywidth.graph import PlanError
from anywidth.lowrank import LowRankConfig, LowRankConv2d, LowRankLinear, apply_ranks, decompose
from anywidth.lowrank._factors import LayerInfo, SliceSVD, load_factors
from anywidth.measure import count_macs, count_params
from anywidth.pruning import PruneConfig, prune
from anywidth.train import load_model, save_checkpoint

X = torch.randn(2, 1, 8, 8)


@pytest.fixture(scope="module")
def resnet20() -> nn.Module:
    torch.manual_seed(0)
    return anywidth.create_model("resnet20", num_classes=10, in_channels=1).eval()


def _conv(c: int = 8, f: int = 12, seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(c, f, 3, stride=2, padding=1, dilation=1).double()


@pytest.mark.parametrize("k", [1, 2, 4])
def test_full_rank_reproduces_a_conv(k):
    conv, x = _conv(), torch.randn(2, 8, 9, 9, dtype=torch.float64)
    svd = SliceSVD.of(conv.weight, k)
    j = min(12, 8 // k * 9)
    module = LowRankConv2d(conv, k, j).double()
    load_factors(module, conv, svd, j)
    assert svd.error(j) == 0.0
    torch.testing.assert_close(module(x), conv(x), rtol=1e-10, atol=1e-10)


def test_full_rank_reproduces_a_linear():
    torch.manual_seed(0)
    linear, x = nn.Linear(6, 4).double(), torch.randn(3, 6, dtype=torch.float64)
    module = LowRankLinear(linear, 1, 4).double()
    load_factors(module, linear, SliceSVD.of(linear.weight, 1), 4)
    torch.testing.assert_close(module(x), linear(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("k", "j"), [(1, 3), (2, 2), (4, 5)])
def test_the_factored_conv_is_the_low_rank_reconstruction_and_its_error_is_exact(k, j):
    conv, x = _conv(seed=k), torch.randn(2, 8, 9, 9, dtype=torch.float64)
    svd = SliceSVD.of(conv.weight, k)
    module = LowRankConv2d(conv, k, j).double()
    load_factors(module, conv, svd, j)
    # Ŵ slice by slice: U_j S_j V_jᵀ of each input-channel slice
    w = conv.weight.detach().reshape(12, k, 8 // k * 9).transpose(0, 1)  # (k, f, c/k·9)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    approx = (u[..., :j] * s[:, None, :j]) @ vh[:, :j]  # (k, f, c/k·9)
    w_hat = approx.transpose(0, 1).reshape(conv.weight.shape)
    expected = F.conv2d(x, w_hat, conv.bias, stride=2, padding=1)
    torch.testing.assert_close(module(x), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(module.weight, w_hat, rtol=1e-10, atol=1e-10)  # read as a conv's
    assert module.kernel_size == (3, 3) and module.stride == (2, 2)
    assert module.bias is module.project.bias
    w_hat, weight = w_hat.detach(), conv.weight.detach()
    diff = (w_hat - weight).reshape(12, -1)
    exact = torch.linalg.matrix_norm(diff, ord=2) / torch.linalg.matrix_norm(
        weight.reshape(12, -1), ord=2
    )
    assert svd.error(j) == pytest.approx(float(exact), rel=1e-9)
    bound = math.sqrt(k) * float(s[:, j].max()) / svd.norm
    assert svd.error(j) <= bound + 1e-12  # the paper's bound holds


def test_parameter_accounting():
    conv = _conv()
    info = LayerInfo("c", conv, 12, 8, 9, positions=25, bias=1)
    module = LowRankConv2d(conv, 2, 3)
    assert count_params(module) == 3 * (2 * 12 + 8 * 9) + 12 == info.params(2, 3)
    x = torch.randn(1, 8, 9, 9)
    assert count_macs(module, x) == info.macs(2, 3) == 3 * (2 * 12 + 8 * 9) * 25


@pytest.mark.parametrize("method", ["alds", "svd"])
@pytest.mark.parametrize("target", [0.7, 0.3])
def test_budgets_are_met_within_one_percent(resnet20, method, target):
    small, report = decompose(resnet20, X, LowRankConfig(method=method, target_params=target))
    assert abs(report.param_ratio - target) <= 0.01 * target
    assert report.params_after == count_params(small)
    assert type(small) is type(resnet20)
    assert report.factored() and all(
        isinstance(small.get_submodule(n), LowRankConv2d | LowRankLinear) for n in report.factored()
    )


def test_mac_budgets_are_met_within_one_percent(resnet20):
    small, report = decompose(resnet20, X[:1], LowRankConfig(target_macs=0.5))
    assert abs(report.mac_ratio - 0.5) <= 0.005
    assert report.macs_after == count_macs(small, X[:1])


@pytest.mark.parametrize("target", [0.5, 0.3])
def test_alds_errs_no_more_than_uniform_svd(resnet20, target):
    _, alds = decompose(resnet20, X, LowRankConfig(method="alds", target_params=target))
    _, svd = decompose(resnet20, X, LowRankConfig(method="svd", target_params=target))
    assert alds.max_error < svd.max_error  # measured: 0.66 vs 0.79 at 0.5, 0.79 vs 0.87 at 0.3
    assert alds.max_error == max(layer.error for layer in alds.layers)


def test_the_callers_model_is_untouched_and_the_result_reloads(resnet20, tmp_path):
    before = {k: v.clone() for k, v in resnet20.state_dict().items()}
    small, report = decompose(resnet20, X, LowRankConfig(target_params=0.5))
    assert all(torch.equal(v, before[k]) for k, v in resnet20.state_dict().items())
    assert isinstance(resnet20.layer1[0].conv1, nn.Conv2d)
    loaded, meta = load_model(save_checkpoint(tmp_path / "lr.safetensors", small))
    assert meta["extra"]["steps"][-1]["kind"] == "decompose"
    assert type(loaded) is type(resnet20) and count_params(loaded) == count_params(small)
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), small.eval()(X))


def test_a_pruned_model_decomposes_further_and_reloads(resnet20, tmp_path):
    pruned, _ = prune(resnet20, X[:1], PruneConfig(target_macs=0.6))
    small, report = decompose(pruned, X[:1], LowRankConfig(target_params=0.6))
    assert abs(report.params_after / count_params(pruned) - 0.6) <= 0.006
    kinds = [s["kind"] for s in anywidth.record.get_record(small).steps]
    assert kinds == ["cut", "decompose"]
    loaded, _ = load_model(save_checkpoint(tmp_path / "both.safetensors", small))
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), small.eval()(X))


def test_fixed_layers_stay_dense(resnet20):
    _, report = decompose(resnet20, X, LowRankConfig(target_params=0.5, fixed=["layer1.*"]))
    assert report.factored() and not any(n.startswith("layer1.") for n in report.factored())
    with pytest.raises(PlanError, match=r"target_params=0\.5 .* below the smallest .* fix fewer"):
        decompose(resnet20, X, LowRankConfig(target_params=0.5, fixed=["layer3.*"]))


def test_applied_ranks_at_full_rank_reproduce_the_model(resnet20):
    torch.manual_seed(1)
    model = anywidth.create_model("tiny_convnet").double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    _, report = decompose(model, x, LowRankConfig(target_params=1.0))
    assert report.max_error == 0.0 and report.params_after <= report.params_before


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target_params": 0.0}, ValueError, r"target_params=0\.0 must be a fraction"),
        ({"target_params": 1.5}, ValueError, r"target_params=1\.5 must be a fraction"),
        ({"target_params": 0.5, "target_macs": 0.5}, ValueError, "exactly one of"),
        ({"target_params": 0.5, "method": "pca"}, ValueError, r"method='pca'"),
    ],
)
def test_bad_configs(kwargs, error, message):
    with pytest.raises(error, match=message):
        LowRankConfig(**kwargs)


def test_unreachable_budgets_and_unknown_fixed_names_are_clear_errors(resnet20):
    with pytest.raises(PlanError, match=r"target_params=0\.01 .* below the smallest"):
        decompose(resnet20, X, LowRankConfig(target_params=0.01))
    with pytest.raises(PlanError, match=r"'layer9\.\*' matches no Conv2d or Linear"):
        decompose(resnet20, X, LowRankConfig(target_params=0.5, fixed=["layer9.*"]))
    with pytest.raises(PlanError, match="did you mean 'fc'"):
        decompose(resnet20, X, LowRankConfig(target_params=0.5, fixed=["fcc"]))


def test_config_round_trip_rejects_unknown_keys():
    config = LowRankConfig(method="svd", target_macs=0.4, fixed=["fc"])
    assert LowRankConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown LowRankConfig field 'rank'"):
        LowRankConfig.from_dict({"target_params": 0.5, "rank": 3})


def test_apply_ranks_shapes_layers_without_weights(resnet20):
    shaped = apply_ranks(resnet20, {"layer1.0.conv1": (2, 3)})
    layer = shaped.layer1[0].conv1
    assert isinstance(layer, LowRankConv2d) and layer.factor.weight.shape == (6, 8, 3, 3)


class _StandardisedConv(nn.Conv2d):
    """A conv with its own forward (weight standardisation, as timm's ScaledStdConv2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class _ReadsItsLayers(nn.Module):
    """Code around the layers reads their attributes: davit pads by ``conv.kernel_size``, HF
    ViT casts to ``projection.weight.dtype``; one conv standardises its weight."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 2, stride=2)
        self.std = _StandardisedConv(16, 16, 3, padding=1)
        self.mid = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.conv.kernel_size[1] - 1
        x = self.conv(F.pad(x, (0, pad, 0, pad)).to(self.conv.weight.dtype))
        x = torch.relu(self.mid(torch.relu(self.std(x))))
        return self.head(x.mean((2, 3)).to(self.head.weight.dtype))


def test_a_model_that_reads_its_layers_attributes_runs_and_own_forwards_stay_dense():
    torch.manual_seed(0)
    model, x = _ReadsItsLayers().eval(), torch.randn(2, 8, 8, 8)
    small, report = decompose(model, x, LowRankConfig(method="svd", target_params=0.6))
    assert isinstance(small.conv, LowRankConv2d) and isinstance(small.mid, LowRankConv2d)
    assert type(small.std) is _StandardisedConv  # factoring it would drop the standardisation
    assert "std" not in {layer.name for layer in report.layers}
    with torch.no_grad():
        assert small(x).shape == (2, 10)
        # the dense weight read back is the factored layers' own
        torch.testing.assert_close(
            F.conv2d(x, small.conv.weight, small.conv.bias, stride=2), small.conv(x)
        )
