"""The model zoo: every registered model builds, runs, traces, and has its published size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anywidth.measure import count_macs, count_params
from anywidth.models import create_model, list_models, model_kwargs
from anywidth.models.rexnet import LinearBottleneck, rexnet_block_specs
from anywidth.models.superres import SR_MODELS

# Test modules register their own models under names starting with "_": leave those out.
# The super-resolution models map images to images: tests/models/test_superres.py.
ALL_MODELS = [n for n in list_models() if not n.startswith("_") and n not in SR_MODELS]
TINY_MODELS = list_models("tiny_*")
IMAGENET_MODELS = ["mobilenetv2", *list_models("rexnet_*")]


def _input_size(name: str) -> int:
    """A small input each model handles: 8x8 for tiny models, 32x32 for the rest."""
    return 8 if name.startswith("tiny_") else 32


def _on_meta(name: str, size: int, **kwargs) -> tuple[nn.Module, torch.Tensor]:
    """Build a model and a (1, 3, size, size) input on the meta device: shapes, no data.

    MAC counting only needs shapes, so this makes the 224x224 ImageNet counts instant;
    `test_meta_counts_equal_real_counts` checks the two agree.
    """
    with torch.device("meta"):
        return create_model(name, **kwargs), torch.empty(1, 3, size, size)


def test_registry_lists_every_family() -> None:
    assert {"resnet20", "resnet110", "mobilenetv2", "rexnet_100", "vgg16", "tiny_mlp"} <= set(
        ALL_MODELS
    )
    assert len(list_models("rexnet_*")) == 6
    assert TINY_MODELS == [
        "tiny_concat",
        "tiny_convnet",
        "tiny_depthwise_se",
        "tiny_mlp",
        "tiny_resnet",
        "tiny_rexnet",
    ]


@pytest.mark.parametrize("in_channels", [1, 3], ids=["gray", "rgb"])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_and_fx_trace(name: str, in_channels: int) -> None:
    # One build per case: building the large ReXNets dominates this file's run time.
    size = _input_size(name)
    model = create_model(name, num_classes=7, in_channels=in_channels)
    x = torch.randn(2, in_channels, size, size)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        assert torch.equal(traced(x), model(x))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_factory_options_include_classes_and_channels(name: str) -> None:
    options = model_kwargs(name)
    assert "num_classes" in options
    assert options["in_channels"] == 3


@pytest.mark.parametrize("name", ["resnet20", "tiny_rexnet", "rexnet_090"])
def test_deterministic_under_seed(name: str) -> None:
    torch.manual_seed(3)
    first = create_model(name).state_dict()
    torch.manual_seed(3)
    second = create_model(name).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("name", ["resnet20", "vgg11", "tiny_depthwise_se", "tiny_rexnet"])
def test_initialisation(name: str) -> None:
    model = create_model(name)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.GroupNorm)]
    assert norms
    for norm in norms:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        # Kaiming normal (fan-out, ReLU gain): std = sqrt(2 / fan_out), within sampling noise.
        if conv.weight.numel() >= 1000:
            assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.15)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_models_are_tiny(name: str) -> None:
    assert count_params(create_model(name)) < 50_000


# name -> (input size, published params, published MACs); within 3% of each.
PUBLISHED = {
    "resnet20": (32, 0.27e6, 41e6),
    "resnet32": (32, 0.46e6, 69e6),
    "resnet56": (32, 0.85e6, 126e6),
    "resnet110": (32, 1.7e6, 253e6),
    "vgg16": (32, 15.0e6, 313e6),
    "mobilenetv2": (224, 3.5e6, 300e6),
    "rexnet_090": (224, 4.1e6, 0.35e9),
    "rexnet_100": (224, 4.8e6, 0.40e9),
    "rexnet_130": (224, 7.6e6, 0.66e9),
    "rexnet_150": (224, 9.7e6, 0.88e9),
    "rexnet_200": (224, 16e6, 1.5e9),
    "rexnet_300": (224, 34e6, 3.4e9),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_params_and_macs(name: str) -> None:
    size, params, macs = PUBLISHED[name]
    num_classes = 10 if size == 32 else 1000
    model, x = _on_meta(name, size, num_classes=num_classes)
    assert count_params(model) == pytest.approx(params, rel=0.03)
    assert count_macs(model, x) == pytest.approx(macs, rel=0.03)


def test_meta_counts_equal_real_counts() -> None:
    meta_model, meta_x = _on_meta("rexnet_090", 224)
    real_model = create_model("rexnet_090")
    real_x = torch.randn(1, 3, 224, 224)
    assert count_params(real_model) == count_params(meta_model)
    assert count_macs(real_model, real_x) == count_macs(meta_model, meta_x)


def test_vgg16_matches_analytic_size() -> None:
    # Config D convs (3x3, no bias) + BN (2 params per channel) + Linear(512, 10); each
    # conv runs at 32 / 2**k pixels per side after k pools.
    convs = [(3, 64, 32), (64, 64, 32), (64, 128, 16), (128, 128, 16)]
    convs += [(128, 256, 8), (256, 256, 8), (256, 256, 8), (256, 512, 4), (512, 512, 4)]
    convs += [(512, 512, 4), (512, 512, 2), (512, 512, 2), (512, 512, 2)]
    params = sum(9 * i * o + 2 * o for i, o, _ in convs) + 512 * 10 + 10
    macs = sum(9 * i * o * s * s for i, o, s in convs) + 512 * 10
    model, x = _on_meta("vgg16", 32, num_classes=10)
    assert count_params(model) == params == 14_724_042
    assert count_macs(model, x) == macs == 313_201_664


def test_vgg_any_input_size() -> None:
    model = create_model("vgg11", num_classes=10, in_channels=1)
    for size in [1, 5, 8, 32, 48]:
        assert model(torch.randn(2, 1, size, size)).shape == (2, 10), f"{size}x{size} input"


@pytest.mark.parametrize(
    ("name", "size", "final_map"),
    [("mobilenetv2", 32, 4), ("mobilenetv2", 8, 1), ("rexnet_100", 32, 2)],
    ids=["mobilenetv2-32px", "mobilenetv2-8px", "rexnet_100-32px"],
)
def test_small_input_keeps_spatial_size(name: str, size: int, final_map: int) -> None:
    model = create_model(name, num_classes=10, small_input=True)
    body = model.features if name == "mobilenetv2" else nn.Sequential(model.stem, model.blocks)
    features = body(torch.randn(2, 3, size, size))
    assert features.shape[-2:] == (final_map, final_map)
    assert model(torch.randn(2, 3, size, size)).shape == (2, 10)


def test_rexnet_channels_follow_the_paper() -> None:
    stem, blocks, head = rexnet_block_specs(1.0)
    assert stem == 32 and head == 1280
    assert [b.out_channels for b in blocks] == [
        16, 27, 38, 50, 61, 72, 84, 95, 106, 117, 128, 140, 151, 162, 174, 185
    ]  # fmt: skip
    assert [b.in_channels for b in blocks[1:]] == [b.out_channels for b in blocks[:-1]]
    assert [b.stride for b in blocks] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert [b.use_se for b in blocks] == [False] * 3 + [True] * 13
    assert [b.expansion for b in blocks] == [1] + [6] * 15


def test_rexnet_narrow_width_keeps_reference_stem() -> None:
    stem, blocks, head = rexnet_block_specs(0.9)
    assert (stem, blocks[0].out_channels, blocks[1].out_channels, head) == (32, 16, 26, 1152)


def test_rexnet_partial_residual_adds_input_to_first_channels() -> None:
    block = LinearBottleneck(6, 10, expansion=2, stride=1, use_se=True, se_reduction=4).eval()
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        body = block.dw_bn(block.dw(block.expand(x)))
        body = block.project_bn(block.project(block.act(block.se(body))))
        out = block(x)
    assert torch.allclose(out[:, :6], body[:, :6] + x)
    assert torch.equal(out[:, 6:], body[:, 6:])


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "stride", "residual"),
    [(6, 10, 1, "partial"), (8, 8, 1, "full"), (10, 6, 1, "none"), (6, 10, 2, "none")],
    ids=["widen", "same", "narrow", "strided"],
)
def test_rexnet_residual_kind(in_channels: int, out_channels: int, stride: int, residual: str):
    block = LinearBottleneck(in_channels, out_channels, expansion=1, stride=stride, use_se=False)
    assert block.residual == residual


def test_tiny_mlp_image_size_option() -> None:
    model = create_model("tiny_mlp", num_classes=3, in_channels=1, image_size=16)
    assert model(torch.randn(4, 1, 16, 16)).shape == (4, 3)


def test_unknown_model_name_raises() -> None:
    with pytest.raises(KeyError, match="unknown model 'resnet21'"):
        create_model("resnet21")


def test_unknown_option_raises() -> None:
    with pytest.raises(TypeError, match=r"model 'resnet20' has no option\(s\) \['width_mult'\]"):
        create_model("resnet20", width_mult=0.5)


def test_bad_width_multiplier_raises() -> None:
    with pytest.raises(ValueError, match="width_mult must be positive"):
        create_model("mobilenetv2", width_mult=0.0)
    with pytest.raises(ValueError, match="width_mult must be positive"):
        rexnet_block_specs(-1.0)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_no_inplace_activations(name: str) -> None:
    # Hooks that keep a layer's output (rank studies, importance scores) must not see it
    # overwritten by a following in-place activation.
    model, _ = _on_meta(name, 8)
    assert not [n for n, m in model.named_modules() if getattr(m, "inplace", False)]


def test_rexnet_partial_residual_traces_as_cat() -> None:
    graph = torch.fx.symbolic_trace(create_model("tiny_rexnet")).graph
    targets = [node.target for node in graph.nodes if node.op == "call_function"]
    assert targets.count(torch.cat) == 2
    assert "setitem" not in {getattr(t, "__name__", "") for t in targets}
