"""Models torch.fx alone cannot trace: ``forward(x, *args)``, ``list(x.chunk(2, 1))``, shape-
dependent Python, tensors cached on a module in forward, a class token expanded over the batch.

Each is checked with the exact reference: the cut model against the original whose removed
channels are zeroed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anywidth.graph import channel_groups, cut
from anywidth.graph._trace import is_exported, trace
from tests.graph._helpers import masked_forward, rel_err
from tests.graph._models import SharedDepthwise, mystery


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.SiLU())


class SplitBlock(nn.Module):
    """Ultralytics' C2f: ``list(cv1(x).chunk(2, 1))``, grown by the bottlenecks."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.cv1 = _conv(c, 2 * c)
        self.m = nn.ModuleList([_conv(c, c), _conv(c, c)])
        self.cv2 = _conv(4 * c, c)

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class Detector(nn.Module):
    """A forward with ``*args, **kwargs`` (Ultralytics' ``DetectionModel``) and a head that
    caches a grid on itself, recomputed when the input size changes (``Detect.anchors``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv(3, 8)
        self.block = SplitBlock(8)
        self.up = nn.Upsample(scale_factor=2.0)
        self.head = nn.Conv2d(16, 5, 1)
        self.stride = torch.tensor([8.0])  # a tensor attribute that is not a buffer
        self.shape = None

    def forward(self, x, *args, **kwargs):
        p = F.max_pool2d(self.stem(x), 2)
        y = self.block(p)
        y = torch.cat([self.up(y), self.up(F.pad(p, (1, 1, 1, 1))[:, :, 1:-1, 1:-1])], 1)
        out = self.head(y)
        if self.shape != out.shape:  # shape-dependent Python: torch.fx cannot trace it
            h, w = out.shape[2:]
            self.grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
            self.shape = out.shape
        return out + self.grid.sum(0) * self.stride


X = torch.randn(2, 3, 8, 8)


def _randomized(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
    return model.eval()


def _half(groups) -> dict[str, list[int]]:
    return {g.name: list(range(0, g.size, 2)) for g in groups if not g.fixed}


def test_a_split_block_with_list_of_chunk_is_traced_by_torch_fx_and_cut_exactly():
    model = _randomized(SplitBlock(8))
    x = torch.randn(2, 8, 8, 8)
    assert not is_exported(trace(model, x))
    groups = channel_groups(model, x)
    free = {g.name for g in groups if not g.fixed}
    assert {"m.0.0:out", "m.1.0:out"} <= free and "cv2.0:out" not in free  # the output
    keep = _half(groups)
    small = cut(model, x, keep)
    with torch.no_grad():
        assert rel_err(small(x), masked_forward(model, x, groups, keep)) <= 1e-5


def test_shape_dependent_detector_goes_through_torch_export_and_cuts_exactly():
    model = _randomized(Detector())
    with torch.no_grad():
        want = model(X)
    grid_before = model.grid
    assert is_exported(trace(model, X))
    groups = channel_groups(model, X)
    free = {g.name for g in groups if not g.fixed}
    assert {"stem.0:out", "block.m.0.0:out", "block.cv2.0:out"} <= free
    assert "head:out" not in free  # the output's channels stay
    keep = _half(groups)
    small = cut(model, X, keep)
    with torch.no_grad():
        assert rel_err(small(X), masked_forward(model, X, groups, keep)) <= 1e-5
        # the caller's model keeps its own cached grid (no fake tensor of the export)
        assert model.grid is grid_before
        assert torch.equal(model(X), want)


class TinyViT(nn.Module):
    """Patches, a class token expanded over the batch, a position table, an MLP, a head."""

    def __init__(self, dim: int = 12, export: bool = False) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 5, dim))
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.head = nn.Linear(dim, 3)
        self.export = export

    def forward(self, x):
        if self.export and x.shape[0] > 0:  # forces the torch.export front end
            x = x + 0
        x = self.patch(x).flatten(2).transpose(1, 2)  # (B, 4, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = x + self.fc2(F.relu(self.fc1(x)))
        return self.head(x[:, 0])


def _zeroed(model: TinyViT, removed: list[int]) -> TinyViT:
    """The model with the removed hidden channels zeroed wherever they are written."""
    zeroed = _randomized(TinyViT(model.patch.out_channels, model.export))
    zeroed.load_state_dict(model.state_dict())
    with torch.no_grad():
        for tensor, dim in ((zeroed.patch.weight, 0), (zeroed.patch.bias, 0),
                            (zeroed.cls_token, 2), (zeroed.pos, 2),
                            (zeroed.fc2.weight, 0), (zeroed.fc2.bias, 0)):  # fmt: skip
            tensor.index_fill_(dim, torch.tensor(removed), 0.0)
    return zeroed


def test_a_class_token_expanded_over_the_batch_follows_the_hidden_width():
    x = torch.randn(2, 3, 8, 8)
    for export in (False, True):
        torch.manual_seed(0)
        model = TinyViT(export=export).eval()
        assert is_exported(trace(model, x)) is export
        groups = {g.name: g for g in channel_groups(model, x)}
        hidden = groups["patch:out"]
        assert not hidden.fixed, export
        members = {(m.name, m.dim) for m in hidden.members}
        assert {("cls_token", 2), ("pos", 2), ("fc1.weight", 1), ("head.weight", 1)} <= members
        keep = {"patch:out": [0, 2, 3, 7, 11]}
        small = cut(model, x, keep)
        assert small.cls_token.shape == (1, 1, 5)
        removed = [c for c in range(12) if c not in keep["patch:out"]]
        with torch.no_grad():
            assert rel_err(small(x), _zeroed(model, removed)(x)) <= 1e-5, export


class ReadsWidth(nn.Module):
    """A fixed-width tensor reshaped with sizes read from a tensor that is cut (edgenext's
    ``reshape(B, N, C)`` after ``B, N, C = x.shape``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.other = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = F.relu(self.stem(x))
        u = mystery(self.other(x))  # no rule: stays whole, its channels untracked
        b, c, h, w = y.shape
        return self.fc(y.mean((2, 3))), u.permute(0, 2, 3, 1).reshape(b, h * w, c)


def test_a_reshape_of_a_whole_tensor_keeps_the_width_it_read_from_a_cut_one():
    torch.manual_seed(0)
    model = ReadsWidth().eval()
    x = torch.randn(2, 3, 4, 4)
    groups = {g.name: g for g in channel_groups(model, x)}
    assert not groups["stem:out"].fixed and groups["other:out"].fixed
    small = cut(model, x, {"stem:out": [1, 2, 5]})
    with torch.no_grad():
        got, want = (
            small(x),
            masked_forward(model, x, list(groups.values()), {"stem:out": [1, 2, 5]}),
        )
    assert got[1].shape == (2, 16, 8)
    assert rel_err(got[0], want[0]) <= 1e-6 and torch.equal(got[1], want[1])


class AutocastOff(nn.Module):
    """efficientvit's attention: a ``torch.autocast(enabled=False)`` block inside a forward
    torch.fx cannot trace (torch.export makes the block a sub-graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        if x.shape[-1] > 1:  # shape-dependent Python
            x = F.relu(self.a(x))
        with torch.autocast(device_type="cpu", enabled=False):
            y = F.relu(self.b(x.float()))
        return self.c(y)


def test_an_autocast_off_block_is_inlined_and_cut_exactly():
    torch.manual_seed(0)
    model = AutocastOff().eval()
    x = torch.randn(2, 3, 4, 4)
    assert is_exported(trace(model, x))
    groups = channel_groups(model, x)
    assert {g.name for g in groups if not g.fixed} == {"a:out", "b:out"}
    keep = {"a:out": [0, 2, 4], "b:out": [1, 3, 5, 7]}
    small = cut(model, x, keep)
    assert type(small) is AutocastOff and small.b.weight.shape == (4, 3, 1, 1)
    with torch.no_grad():
        assert rel_err(small(x), masked_forward(model, x, groups, keep)) <= 1e-6


def test_a_module_shared_by_two_parents_is_cut_once_with_its_own_bias():
    torch.manual_seed(0)
    model = SharedDepthwise().eval()
    x = torch.randn(2, 3, 6, 6)
    groups = channel_groups(model, x)
    keep = {"stem:out": [0, 3, 4, 7]}
    small = cut(model, x, keep)
    assert small.pos.bias.shape == (4,) and small.blocks[1].pos is small.pos
    with torch.no_grad():
        assert rel_err(small(x), masked_forward(model, x, groups, keep)) <= 1e-6


class PitPooling(nn.Module):
    """PiT's pooling: a depthwise conv with channel multiplier 2 on the patches and a
    linear layer on the class token, then both joined as tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.cls = nn.Parameter(torch.randn(1, 1, 4))
        self.conv = nn.Conv2d(4, 8, 3, padding=1, groups=4)
        self.fc = nn.Linear(4, 8)
        self.mlp = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        tokens = self.fc(self.cls.expand(x.shape[0], -1, -1))  # (B, 1, 8)
        x = self.conv(x).flatten(2).transpose(1, 2)  # (B, HW, 8)
        x = torch.cat((tokens, x), dim=1)
        return self.out(x + self.mlp(x))


def test_channels_from_a_channel_multiplier_join_a_linear_layers_in_pairs():
    torch.manual_seed(0)
    model = PitPooling().eval()
    x = torch.randn(2, 3, 4, 4)
    groups = {g.name: g for g in channel_groups(model, x)}
    joined = groups["stem:out"]
    assert not joined.fixed and joined.size == 4  # 8 channels, cut in pairs
    assert {m.name for m in joined.members} >= {"fc.weight", "conv.weight", "mlp.weight"}
    small = cut(model, x, {"stem:out": [0, 3]})
    assert small.fc.out_features == 4 and small.conv.out_channels == 4
    with torch.no_grad():
        want = masked_forward(model, x, list(groups.values()), {"stem:out": [0, 3]})
        assert rel_err(small(x), want) <= 1e-6


class TalkingHeads(nn.Module):
    """CaiT's attention: qkv split into heads with a head size read from the input's width
    (``C // heads``), the attention map mixed over heads by linear layers."""

    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.inp = nn.Linear(4, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.mix = nn.Linear(heads, heads)
        self.proj = nn.Linear(dim, 4)

    def forward(self, x):
        x = self.inp(x)
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)  # (B, heads, N, N)
        attn = self.mix(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(out)


def test_heads_mixed_against_a_whole_value_tensor_stay_and_the_head_size_is_kept():
    torch.manual_seed(0)
    model = TalkingHeads().eval()
    x = torch.randn(2, 5, 4)
    groups = {g.name: g for g in channel_groups(model, x)}
    assert groups["mix:out"].fixed  # V holds all heads: the mixed heads cannot be cut
    assert not groups["inp:out"].fixed
    small = cut(model, x, {"inp:out": [0, 2, 3, 5, 7]})
    assert small.qkv.weight.shape == (24, 5) and small.mix.weight.shape == (2, 2)
    with torch.no_grad():
        want = masked_forward(model, x, list(groups.values()), {"inp:out": [0, 2, 3, 5, 7]})
        assert rel_err(small(x), want) <= 1e-6


class ChunkedHeads(nn.Module):
    """torchvision MaxViT's attention: ``chunk(3)`` of one qkv projection, then each piece
    reshaped into (heads, head_dim) with constant sizes."""

    def __init__(self, width: int = 8, head_dim: int = 4) -> None:
        super().__init__()
        self.heads, self.head_dim = width // head_dim, head_dim
        self.inp = nn.Linear(3, width)
        self.to_qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 12), nn.ReLU(), nn.Linear(12, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        b, p, d = x.shape
        q, k, v = torch.chunk(self.to_qkv(x), 3, dim=-1)
        q, k, v = (t.reshape(b, p, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        attended = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        x = x + self.out(attended.transpose(1, 2).reshape(b, p, d))
        return x + self.mlp(x)


def test_heads_of_a_chunked_qkv_stay_whole_and_the_rest_is_cut_exactly():
    torch.manual_seed(0)
    model = ChunkedHeads().eval()
    x = torch.randn(2, 5, 3)
    groups = channel_groups(model, x)
    by_name = {g.name: g for g in groups}
    # each chunk would be re-read as heads, but its producer still holds it as single
    # channels: the qkv channels stay (before, they were cut one by one and the cut model
    # failed at the head reshape)
    qkv = [g for g in groups if g.name.startswith("to_qkv:out")]
    assert len(qkv) == 3 and all(g.fixed for g in qkv)
    assert not by_name["mlp.0:out"].fixed
    keep = _half(groups)
    small = cut(model, x, keep)
    assert small.to_qkv.weight.shape[0] == 24 and small.mlp[0].weight.shape[0] == 6
    with torch.no_grad():
        assert rel_err(small(x), masked_forward(model, x, groups, keep)) <= 1e-5
