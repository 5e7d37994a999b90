"""Users' own models: the loaders of `anywidth.models.external` and pruning them unchanged.

Needs the ``models`` extra (the Makefile installs it).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from anywidth.graph import channel_groups, cut
from anywidth.graph._trace import is_exported, trace
from anywidth.models.external import load_model_spec
from anywidth.pruning import PruneConfig, prune
from tests.graph._helpers import masked_forward, rel_err


def test_torchvision_and_transformers_import_beside_the_cpu_torch():
    """PyPI's torchvision fails its own import beside the CPU torch unless the shim runs."""
    code = (
        "from anywidth.models._torchvision_ops import ensure_torchvision_importable\n"
        "ensure_torchvision_importable()\n"
        "import torchvision, transformers, torch\n"
        "print(torchvision.models.resnet18().eval()(torch.zeros(1, 3, 32, 32)).shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "torch.Size([1, 1000])"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("resnet18", "expected SOURCE:NAME"),
        ("timm:no_such_net", "timm has no model 'no_such_net'"),
        ("torchvision:no_such_net", "torchvision has no model"),
        ("ultralytics:yolov8n", "name a model configuration"),
        ("no_such_package.nets:build", "no module 'no_such_package.nets'"),
        ("torch.nn:no_such_factory", "has no callable 'no_such_factory'"),
        ("math:sqrt", r"math:sqrt\(\) failed: TypeError"),
        ("math:pi", "has no callable 'pi'"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, match):
    with pytest.raises(ValueError, match=match):
        load_model_spec(spec)


def test_a_python_factory_builds_the_users_model():
    model, x = load_model_spec("torch.nn:Identity", input_size=8)
    assert isinstance(model, nn.Identity) and not model.training
    assert x.shape == (1, 3, 8, 8)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("timm:mobilenetv2_100", "EfficientNet"),  # BatchNormAct2d: F.batch_norm on its own tensors
        ("timm:resnet18", "ResNet"),
        ("torchvision:mobilenet_v3_small", "MobileNetV3"),
        ("smp:Unet:resnet18", "Unet"),
    ],
)
def test_real_models_prune_to_half_their_macs_as_their_own_class(spec, cls):
    torch.manual_seed(0)
    model, x = load_model_spec(spec, input_size=64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small, report = prune(model, x, PruneConfig(target_macs=0.5))
    assert type(small).__name__ == cls
    assert report.macs_after / report.macs_before == pytest.approx(0.5, abs=0.01)
    assert report.params_after < report.params_before
    with torch.no_grad():
        assert small(x).shape == model(x).shape
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _tensors(out) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    torch.fx.node.map_aggregate(out, lambda v: found.append(v) if torch.is_tensor(v) else v)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["ultralytics:yolov8n.yaml", "hf:ResNetModel"])
def test_models_torch_fx_cannot_trace_are_cut_exactly_through_torch_export(spec):
    # YOLO: shape-dependent anchors in its head; transformers: ModelOutput and checks.
    torch.manual_seed(0)
    model, x = load_model_spec(spec, input_size=64)
    assert is_exported(trace(model, x))
    groups = channel_groups(model, x)
    keep = {g.name: list(range(0, g.size, 2)) for g in groups if not g.fixed}
    assert len(keep) >= 30
    small = cut(model, x, keep)
    with torch.no_grad():
        got, want = _tensors(small(x)), _tensors(masked_forward(model, x, groups, keep))
    assert [t.shape for t in got] == [t.shape for t in _tensors(model(x))]
    assert max(rel_err(a, b) for a, b in zip(got, want, strict=True)) <= 1e-4


def test_torchvision_stochastic_depth_lets_channels_through():
    """torchvision's convnext/efficientnet blocks end in ``stochastic_depth`` (identity in
    eval): their channels stay resizable (before, every block output was fixed)."""
    from anywidth.models._torchvision_ops import ensure_torchvision_importable

    ensure_torchvision_importable()
    from torchvision.ops import StochasticDepth

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Conv2d(3, 8, 1)
            self.expand, self.project = nn.Conv2d(8, 16, 1), nn.Conv2d(16, 8, 1)
            self.head = nn.Linear(8, 4)
            self.drop = StochasticDepth(0.1, "row")  # as torchvision's blocks hold it

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.inp(x)
            branch = self.project(torch.relu(self.expand(x)))
            x = x + self.drop(branch)
            return self.head(x.mean((2, 3)))

    torch.manual_seed(0)
    model, x = Block().eval(), torch.randn(2, 3, 5, 5)
    groups = channel_groups(model, x)
    free = {g.name for g in groups if not g.fixed}
    assert {"inp:out", "expand:out"} <= free
    keep = {g.name: list(range(0, g.size, 2)) for g in groups if not g.fixed}
    small = cut(model, x, keep)
    with torch.no_grad():
        assert rel_err(small(x), masked_forward(model, x, groups, keep)) <= 1e-5
