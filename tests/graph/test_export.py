"""ONNX export of cut models, checked against onnxruntime."""

from __future__ import annotations

import sys

import pytest
import torch

from anywidth.graph import channel_groups, cut, export_onnx, keep_first
from tests.graph import _models as M
from tests.graph._helpers import randomize_

ort = pytest.importorskip("onnxruntime")

X = torch.randn(2, 3, 4, 4)

CASES = [
    ("partial_residual", M.PartialResidual, {"stem:out": 2, "conv:out[4:7]": 1}),
    ("split", lambda: M.Split("chunk"), {"stem:out[0:4]": 2}),
    ("flatten_view_literal", lambda: M.FlattenHead("view_literal"), {"conv:out": 2}),
    ("grouped", M.Grouped, {"stem:out[0:2]": 1}),
]


def _run_onnx(path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input_0": x.numpy()})
    return torch.from_numpy(out)


@pytest.mark.parametrize("factory, sizes", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cut_model_exports_and_matches_onnxruntime(factory, sizes, tmp_path):
    model = randomize_(factory())
    small = cut(model, X, keep_first(channel_groups(model, X), sizes)).eval()
    path = export_onnx(small, X, tmp_path / "small.onnx")
    # fresh inputs of the exported shape, not the example the export itself was checked on
    x = torch.randn(X.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = small(x)
    got = _run_onnx(path, x)
    assert got.shape == expected.shape
    assert expected.abs().max() > 1e-3  # a non-trivial output to compare
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_changed_weights_after_export_are_caught(tmp_path):
    model = randomize_(M.PartialResidual())
    small = cut(model, X, keep_first(channel_groups(model, X), {"stem:out": 2})).eval()
    path = export_onnx(small, X, tmp_path / "small.onnx")
    with torch.no_grad():
        next(small.parameters()).add_(0.1)  # the file still holds the old weights
        changed = small(X)
    with pytest.raises(AssertionError, match="not close"):
        torch.testing.assert_close(_run_onnx(path, X), changed, rtol=1e-4, atol=1e-5)


class _CallCounter(torch.nn.Module):
    """Adds how often it has run: eager and exported outputs differ, as in a broken export."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x + float(self.calls)


def test_export_check_raises_when_onnxruntime_disagrees(tmp_path):
    with pytest.raises(RuntimeError, match=r"onnxruntime output 0 differs from PyTorch by 1"):
        export_onnx(_CallCounter(), X, tmp_path / "counter.onnx")


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install anywidth\[onnx\]"):
        export_onnx(M.Concat(), X, tmp_path / "m.onnx")
