"""ONNX export of cut models, checked against onnxruntime."""

from __future__ import annotations

import sys

import pytest
import torch

from anywidth.graph import channel_groups, cut, export_onnx, keep_first
from tests.graph import _models as M
from tests.graph._helpers import randomize_

pytest.importorskip("onnxruntime")

X = torch.randn(2, 3, 4, 4)

CASES = [
    ("partial_residual", M.PartialResidual, {"stem:out": 2, "conv:out[4:7]": 1}),
    ("split", lambda: M.Split("chunk"), {"stem:out[0:4]": 2}),
    ("flatten_view_literal", lambda: M.FlattenHead("view_literal"), {"conv:out": 2}),
    ("grouped", M.Grouped, {"stem:out[0:2]": 1}),
]


@pytest.mark.parametrize("factory, sizes", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cut_model_exports_and_matches_onnxruntime(factory, sizes, tmp_path):
    model = randomize_(factory())
    small = cut(model, X, keep_first(channel_groups(model, X), sizes))
    path = export_onnx(small, X, tmp_path / "small.onnx")
    assert path.exists() and path.stat().st_size > 0


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install anywidth\[onnx\]"):
        export_onnx(M.Concat(), X, tmp_path / "m.onnx")
