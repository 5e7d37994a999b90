"""Models the user already has: timm, torchvision, Ultralytics YOLO, segmentation-models-pytorch,
Hugging Face vision models, or any ``package.module:factory``, built with random weights.

Needs the optional extra ``pip install -e ".[models]"`` (install the torchvision release
that matches your torch first; the Makefile does). Nothing is downloaded: every model is
built from its code or its bundled configuration, never from a hub.

Specs:
    ``timm:mobilenetv2_100``, ``torchvision:resnet18``, ``ultralytics:yolov8n.yaml``,
    ``smp:Unet:resnet34`` (architecture, encoder), ``hf:ViTModel`` (a ``transformers``
    model class, built from its default config), ``mypackage.nets:build_net``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
from collections.abc import Callable

import torch
from torch import nn

from anywidth.models._torchvision_ops import ensure_torchvision_importable

__all__ = ["MODELS_EXTRA", "group_status", "load_model_spec"]

MODELS_EXTRA = (
    'pip install -e ".[models]"  (timm, torchvision, ultralytics, segmentation-models-pytorch)'
)


def load_model_spec(spec: str, input_size: int | None = None) -> tuple[nn.Module, torch.Tensor]:
    """Build the model a spec names, in eval mode with random weights, and an example input.

    Args:
        spec: ``SOURCE:NAME`` as in the module docstring.
        input_size: side of the square example image; by default the model's own (timm's
            configured input size; 224 for torchvision classifiers and Hugging Face vision
            models, 640 for YOLO, 256 for segmentation models).

    Returns:
        ``(model, example_input)`` with a batch of one.

    Raises:
        ValueError: the spec is malformed or names no model of its source.
        ImportError: the source's package is not installed (the message says what to install).

    Example:
        >>> model, x = load_model_spec("timm:mobilenetv2_100")
        >>> x.shape
        torch.Size([1, 3, 224, 224])
    """
    source, sep, name = spec.partition(":")
    if not sep or not name:
        raise ValueError(
            f"model spec {spec!r}: expected SOURCE:NAME, e.g. 'timm:resnet50', "
            "'torchvision:resnet18', 'ultralytics:yolov8n.yaml', 'smp:Unet:resnet34', "
            "'hf:ViTModel' or 'package.module:factory'"
        )
    builders: dict[str, Callable[[str], tuple[nn.Module, int]]] = {
        "timm": _timm,
        "torchvision": _torchvision,
        "ultralytics": _ultralytics,
        "smp": _smp,
        "hf": _hf,
    }
    build = builders.get(source, lambda n: _factory(source, n))
    model, default_size = build(name)
    side = input_size or default_size
    return model.eval(), torch.randn(1, 3, side, side)


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"building this model needs {module}; {MODELS_EXTRA}")
    ensure_torchvision_importable()


def _timm(name: str) -> tuple[nn.Module, int]:
    _require("timm")
    import timm

    if not timm.is_model(name):
        raise ValueError(f"timm has no model {name!r}; list them with timm.list_models('*part*')")
    model = timm.create_model(name, pretrained=False)
    return model, int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])


def _torchvision(name: str) -> tuple[nn.Module, int]:
    _require("torchvision")
    import torchvision

    if name not in torchvision.models.list_models():
        raise ValueError(
            f"torchvision has no model {name!r}; list them with torchvision.models.list_models()"
        )
    options = {"aux_logits": False, "init_weights": True} if name in _AUX else {}
    return torchvision.models.get_model(name, weights=None, **options), 224


# Inception-style classifiers: without the auxiliary head their output is one tensor.
_AUX = {"googlenet", "inception_v3"}


def _ultralytics(name: str) -> tuple[nn.Module, int]:
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no connectivity probe at import
    os.environ.setdefault("YOLO_VERBOSE", "False")
    _require("ultralytics")
    from ultralytics.nn.tasks import DetectionModel

    if not name.endswith((".yaml", ".yml")):
        raise ValueError(f"ultralytics:{name}: name a model configuration, e.g. yolov8n.yaml")
    try:
        model = DetectionModel(name, verbose=False)
    except FileNotFoundError:
        raise ValueError(f"ultralytics has no configuration {name!r}") from None
    return model, 640


def _smp(name: str) -> tuple[nn.Module, int]:
    _require("segmentation_models_pytorch")
    import segmentation_models_pytorch as smp

    arch, _, encoder = name.partition(":")
    try:
        model = smp.create_model(arch, encoder_name=encoder or "resnet34", encoder_weights=None)
    except (KeyError, ValueError) as error:
        raise ValueError(f"smp:{name}: {error}") from None
    return model, 256


def _hf(name: str) -> tuple[nn.Module, int]:
    _require("transformers")
    import transformers

    model_class = getattr(transformers, name, None)
    if model_class is None or not hasattr(model_class, "config_class"):
        raise ValueError(f"transformers has no model class {name!r} (e.g. ViTModel)")
    return _HfImageModel(model_class(model_class.config_class())), 224


class _HfImageModel(nn.Module):
    """A Hugging Face vision model called with an image tensor, returning one tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values)
        pooled = getattr(out, "pooler_output", None)
        return pooled if pooled is not None else out.last_hidden_state


def _factory(module_name: str, attribute: str) -> tuple[nn.Module, int]:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise ValueError(
            f"model spec {module_name}:{attribute}: no module {module_name!r} (sources: timm, "
            "torchvision, ultralytics, smp, hf, or an importable package.module)"
        ) from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"{module_name} has no callable {attribute!r} that builds a model")
    try:
        model = factory()
    except Exception as error:  # the user's code: say where it failed, keep the cause
        raise ValueError(
            f"{module_name}:{attribute}() failed: {type(error).__name__}: {error}; the "
            "factory must build the model with no arguments"
        ) from error
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"{module_name}:{attribute}() returned {type(model).__name__}, not a Module"
        )
    return model, 224


class _Collect(logging.Handler):
    """Keeps the graph's messages: which front end traced the model, why groups are fixed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _reasons(messages: list[str]) -> dict[str, str]:
    """``{group: why}`` from the trace's warnings."""
    out = {}
    for message in messages:
        found = re.search(r"^(.*); fixing channel group\(s\) (.*), which will not be", message)
        if found:
            for name in found.group(2).split(", "):
                out.setdefault(name, found.group(1))
    return out


def group_status(model: nn.Module, example: torch.Tensor) -> tuple[list, list[str], bool]:
    """Is the model understood? ``(rows, messages, unknown)``: ``[group, channels, status]``
    per channel group (``"resizable"`` or why it is fixed), the graph's log messages while
    tracing, and whether groups were fixed by an operation the graph does not know."""
    from anywidth.graph import analyze_channels

    collect = _Collect()
    graph_log = logging.getLogger("anywidth.graph")
    level = graph_log.level
    graph_log.addHandler(collect)
    graph_log.setLevel(logging.INFO)
    try:
        groups = analyze_channels(model, example).groups
    finally:
        graph_log.removeHandler(collect)
        graph_log.setLevel(level)
    why = _reasons(collect.messages)
    rows = []
    for g in groups:
        if not g.fixed:
            status = "resizable"
        elif g.name in why:
            status = f"fixed: {why[g.name][:90]}"
        elif g.name.startswith("input:"):
            status = "fixed: model input"
        else:
            status = "fixed: model output, or read next to a fixed operation"
        rows.append([g.name, g.size, status])
    return rows, collect.messages, bool(why)
