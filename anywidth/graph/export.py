"""Export a (cut) model to ONNX and check it against onnxruntime: `export_onnx`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from anywidth.graph._trace import as_inputs
from anywidth.measure import eval_mode

__all__ = ["export_onnx"]


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "export_onnx needs the onnx and onnxruntime packages; install them with "
            "`pip install anywidth[onnx]`"
        ) from exc
    return onnx, onnxruntime


@torch.no_grad()
def export_onnx(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    path: str | os.PathLike,
    *,
    opset: int = 17,
    check: bool = True,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> Path:
    """Write ``model`` (in eval mode) to an ONNX file with static input shapes.

    Uses the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). With
    ``check``, the file is validated by ``onnx.checker`` and run with onnxruntime on
    ``example_input``; every output must match PyTorch's within ``atol + rtol * max|out|``.

    Args:
        model: any module, e.g. the result of `cut`; its train/eval mode is restored.
        example_input: a tensor or tuple of tensors (fixes the exported shapes).
        path: the ``.onnx`` file to write.
        opset: ONNX opset version.
        check: validate and compare with onnxruntime.
        rtol: relative tolerance of the comparison.
        atol: absolute tolerance of the comparison.

    Returns:
        The path written.

    Raises:
        ImportError: onnx or onnxruntime is missing (``pip install anywidth[onnx]``).
        RuntimeError: onnxruntime's outputs differ from PyTorch's.

    Example:
        >>> export_onnx(cut(model, x, keep), x, "small.onnx")
        PosixPath('small.onnx')
    """
    onnx, ort = _require_onnx()
    path = Path(path)
    inputs = as_inputs(example_input)
    names = [f"input_{i}" for i in range(len(inputs))]
    with eval_mode(model):
        expected = model(*inputs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            torch.onnx.export(
                model, inputs, str(path), dynamo=False, opset_version=opset, input_names=names
            )
    if check:
        onnx.checker.check_model(str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs, strict=True)}
        _compare(session.run(None, feeds), expected, rtol, atol)
    return path


def _compare(got: list, expected, rtol: float, atol: float) -> None:
    flat: list[torch.Tensor] = []
    torch.utils._pytree.tree_map(
        lambda v: flat.append(v) if isinstance(v, torch.Tensor) else None, expected
    )
    if len(got) != len(flat):
        raise RuntimeError(f"onnxruntime returned {len(got)} outputs, PyTorch {len(flat)}")
    for i, (ort_out, ref) in enumerate(zip(got, flat, strict=True)):
        ref = ref.detach().cpu()
        err = (torch.from_numpy(ort_out).to(ref.dtype) - ref).abs().max().item()
        bound = atol + rtol * ref.abs().max().item()
        if err > bound:
            raise RuntimeError(
                f"onnxruntime output {i} differs from PyTorch by {err:.3g} (allowed {bound:.3g})"
            )
