"""Let PyPI's torchvision import beside the CPU build of torch.

PyPI's torchvision wheels are built against CUDA: beside a CPU-only torch their compiled
operators (``torchvision/_C.so``) fail to load, torchvision carries on without them, and then
dies in its own import at ``torch.library.register_fake("torchvision::nms")``: "operator
torchvision::nms does not exist". Every model torchvision or timm builds is plain PyTorch;
only detection post-processing (``torchvision.ops.nms``, ``roi_align``…) needs those
operators, and those calls still raise torchvision's own clear error.

`ensure_torchvision_importable` declares the two operator schemas that import needs, and
only when the compiled operators cannot be loaded: a working torchvision is left alone.
Used by the optional model loaders (`anywidth.models.external`) and before ``transformers``
(which imports torchvision when it is installed).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

__all__ = ["ensure_torchvision_importable"]

# The schemas torchvision's import registers fake (meta) kernels for without checking.
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library: torch.library.Library | None = None  # kept alive: dropping it removes the schemas


def ensure_torchvision_importable() -> None:
    """Make ``import torchvision`` work; a no-op when it already does or is not installed."""
    global _library
    if _library is not None or "torchvision" in sys.modules:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    compiled = sorted(Path(spec.origin).parent.glob("_C*.so"))
    if compiled:
        try:
            torch.ops.load_library(str(compiled[0]))
            return  # a torchvision built for this torch: its operators are registered now
        except OSError:
            pass  # built against libraries this machine lacks (CUDA): declare the schemas
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _library.define(schema)
