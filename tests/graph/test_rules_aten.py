"""ATen rules of the torch.export front end for slicing, selecting and expanding.

Each net writes into a tensor by index (symbolic tracing fails; torch.export traces it) on a
side path that carries no channels, then applies one op to the hidden features of ``fc1``.
An op on another dimension passes the channels (the group stays resizable, and a cut equals
the original with the dropped channels zeroed); an op that reads the channel dimension
itself fixes the group.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from anywidth.graph import channel_groups, cut
from anywidth.graph._analysis import analyze
from anywidth.graph._trace import is_exported

X = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))  # (batch, tokens, features)
OPS = {
    # op: (hidden features -> fc2's input, whether the channels pass)
    "slice tokens": (lambda h: h[:, 1:], True),
    "select a token": (lambda h: h[:, 0], True),
    "expand tokens (-1 keeps channels)": (lambda h: h[:, :1].expand(-1, 5, -1), True),
    "slice channels": (lambda h: h[..., :8], False),
    "select a channel": (lambda h: h[..., 0][..., None].expand(-1, -1, 16), False),
    "expand to a constant channel count": (lambda h: h[:, :1].expand(2, 5, 16), False),
}


class Net(nn.Module):
    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = OPS[op][0]
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(8 if op == "slice channels" else 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flag = torch.zeros_like(x[..., :1])
        flag[x[..., :1] > 1e9] = 1.0  # item assignment: only torch.export traces this
        h = torch.relu(self.fc1(x + flag))
        return self.fc2(self.op(h))


def _net(op: str) -> Net:
    torch.manual_seed(0)
    return Net(op).eval()


@pytest.mark.parametrize("op", list(OPS))
def test_an_op_on_another_dimension_passes_channels_and_one_on_the_channels_fixes_them(op):
    model = _net(op)
    assert is_exported(analyze(model, X).gm)
    groups = {g.name: g for g in channel_groups(model, X)}
    assert groups["fc1:out"].fixed is not OPS[op][1]


@pytest.mark.parametrize("op", [op for op, (_, passes) in OPS.items() if passes])
def test_a_cut_through_the_op_equals_the_original_with_the_dropped_channels_zeroed(op):
    model = _net(op)
    keep = [0, 3, 5, 6, 9, 12]
    small = cut(model, X, {"fc1:out": keep})
    assert small.fc1.out_features == len(keep) and small.fc2.in_features == len(keep)
    masked = copy.deepcopy(model)
    dropped = [c for c in range(16) if c not in keep]
    with torch.no_grad():
        masked.fc2.weight[:, dropped] = 0
        torch.testing.assert_close(small(X), masked(X), atol=1e-6, rtol=1e-5)
