"""Functional layers, lifted constants and re-parameterised blocks: grouped, cut and costed.

The layers here hold their tensors and call ``F.batch_norm``, ``F.conv2d``, ``F.group_norm``,
``F.layer_norm``, ``F.linear`` or ``F.embedding`` in their own forward, as timm's
``BatchNormAct2d``, ``ScaledStdConv2d``, ``GroupNormAct`` and ``LayerNorm2d`` do (abridged
copies below; timm is not needed). Each must couple, cut and cost like the module form: its
groups are not fixed, pruning meets the MAC budget and returns the user's class, and the cut
model equals the original with the removed channels zeroed (or, where a norm spans the
channels, the module form cut the same way).
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from anywidth.graph import WidthCost, channel_groups, cut
from anywidth.measure import count_macs
from anywidth.pruning import MagnitudeImportance, PruneConfig, prune
from tests.graph._helpers import masked_forward, randomize_, rel_err

X = torch.randn(2, 3, 8, 8, dtype=torch.float64)


# -- timm-like layers ------------------------------------------------------------------


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's ``layers.norm_act.BatchNormAct2d``: F.batch_norm on its own tensors, then act."""

    def __init__(self, num_features: int, apply_act: bool = True) -> None:
        super().__init__(num_features)
        self.act = nn.ReLU() if apply_act else nn.Identity()

    def forward(self, x):
        torch._assert(x.ndim == 4, "expected a 4D input")
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        x = F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            bn_training,
            0.0 if self.momentum is None else self.momentum,
            self.eps,
        )
        return self.act(x)


class ScaledStdConv2d(nn.Conv2d):
    """timm's ``layers.std_conv.ScaledStdConv2d`` (nfnet): a weight-standardised conv."""

    def __init__(self, cin: int, cout: int, k: int, padding: int = 0, groups: int = 1) -> None:
        super().__init__(cin, cout, k, padding=padding, groups=groups)
        self.gain = nn.Parameter(torch.ones(cout, 1, 1, 1))
        self.scale = self.weight[0].numel() ** -0.5  # timm: gamma * fan_in ** -0.5
        self.eps = 1e-6

    def forward(self, x):
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),
            None,
            None,
            weight=(self.gain * self.scale).view(-1),
            training=True,
            momentum=0.0,
            eps=self.eps,
        ).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class GroupNormAct(nn.GroupNorm):
    """timm's ``layers.norm_act.GroupNormAct``."""

    def __init__(self, num_channels: int, num_groups: int = 4) -> None:
        super().__init__(num_groups, num_channels)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps))


class LayerNorm2d(nn.LayerNorm):
    """timm's ``layers.norm.LayerNorm2d``: LayerNorm over the channels of (B, C, H, W)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Linear(nn.Linear):
    """timm's ``layers.linear.Linear``."""

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class LayerNorm(nn.LayerNorm):
    """timm's ``layers.norm.LayerNorm`` (channels last)."""

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class Embedding(nn.Embedding):
    def forward(self, ids):
        return F.embedding(ids, self.weight)


class OwnNorm(nn.Module):
    """A user's own norm: no torch base class, its own tensor names."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.num_features = channels
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("mu", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))

    def forward(self, x):
        return F.batch_norm(x, self.mu, self.var, self.gamma, self.beta, False, 0.0, 1e-5)


class OwnConv(nn.Module):
    """A user's own conv with an equalised learning rate: the weight is scaled in forward."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = cin, cout
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = (cin * 9) ** -0.5

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=1)


# -- models ----------------------------------------------------------------------------


class ConvNet(nn.Module):
    """conv-norm-act, a depthwise conv and a linear head, with the layers given."""

    def __init__(self, conv=nn.Conv2d, norm=BatchNormAct2d, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = conv(3, w, 3, padding=1)
        self.n1 = norm(w)
        self.conv = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.n2 = norm(2 * w)
        self.dw = conv(2 * w, 2 * w, 3, padding=1, groups=2 * w)
        self.n3 = norm(2 * w)
        self.fc = nn.Linear(2 * w, 10)

    def forward(self, x):
        x = self.n2(self.conv(self.n1(self.stem(x))))
        x = self.n3(self.dw(x))
        return self.fc(x.mean((2, 3)))


class DenseLayer(nn.Module):
    """timm's DenseNet layer: BatchNormAct2d over the concatenation of earlier features."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.norm1 = BatchNormAct2d(cin)
        self.conv1 = nn.Conv2d(cin, 2 * growth, 1, bias=False)
        self.norm2 = BatchNormAct2d(2 * growth)
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]):
        x = torch.cat(features, 1)
        return self.conv2(self.norm2(self.conv1(self.norm1(x))))


class DenseNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.layer1 = DenseLayer(16, 8)
        self.layer2 = DenseLayer(24, 8)
        self.norm = BatchNormAct2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        features = [self.stem(x)]
        features.append(self.layer1(features))
        features.append(self.layer2(features))
        return self.fc(self.norm(torch.cat(features, 1)).mean((2, 3)))


def _std_conv_net() -> nn.Module:
    return ConvNet(conv=ScaledStdConv2d)


class OwnNet(nn.Module):
    """A user's own conv and norm, or the torch modules they stand for (``stock``)."""

    def __init__(self, stock: bool = False) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1) if stock else OwnConv(3, 16)
        self.n1 = nn.BatchNorm2d(16) if stock else OwnNorm(16)
        self.c2 = nn.Conv2d(16, 24, 3, padding=1) if stock else OwnConv(16, 24)
        self.n2 = nn.BatchNorm2d(24) if stock else OwnNorm(24)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = F.relu(self.n1(self.c1(x)))
        x = F.relu(self.n2(self.c2(x)))
        return self.fc(x.mean((2, 3)))


class _Stock(nn.Module):
    """A torch norm module applied channels-first to (B, C, H, W), then an activation."""

    def __init__(self, norm: nn.Module, act: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.norm, self.act, self.channels_last = norm, act, channels_last

    def forward(self, x):
        if self.channels_last:
            return self.act(self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        return self.act(self.norm(x))


class NormNet(nn.Module):
    """A small ConvNeXt-like net with norms that span the channels (GroupNorm, LayerNorm)."""

    def __init__(self, norm) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.n1 = norm(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.n2 = norm(16)
        self.pw1 = nn.Conv2d(16, 32, 1)
        self.pw2 = nn.Conv2d(32, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.n1(self.stem(x))
        x = x + self.pw2(F.gelu(self.pw1(self.n2(self.dw(x)))))
        return self.fc(x.mean((2, 3)))


NORMS = {
    "group_norm_act": (GroupNormAct, lambda c: _Stock(nn.GroupNorm(4, c), nn.SiLU())),
    "layer_norm_2d": (LayerNorm2d, lambda c: _Stock(nn.LayerNorm(c), nn.Identity(), True)),
}


class TokenNet(nn.Module):
    """Embedding, an MLP with a residual and a channels-last LayerNorm, on token ids."""

    def __init__(self, stock: bool = False) -> None:
        super().__init__()
        lin, ln, emb = (nn.Linear, nn.LayerNorm, nn.Embedding) if stock else (
            Linear, LayerNorm, Embedding)  # fmt: skip
        self.emb = emb(20, 16)
        self.fc1 = lin(16, 32)
        self.fc2 = lin(32, 16)
        self.ln = ln(16)
        self.head = nn.Linear(16, 5)

    def forward(self, ids):
        x = self.emb(ids)
        x = self.ln(x + self.fc2(F.gelu(self.fc1(x))))
        return self.head(x.mean(1))


IDS = torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(0))


class ConvNorm(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, norm) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = norm(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class RepVggBlock(nn.Module):
    """timm's byobnet ``RepVggBlock`` (training form): 3x3 conv+BN, 1x1 conv+BN and an
    identity BN in parallel, summed."""

    def __init__(self, cin: int, cout: int, stride: int, norm) -> None:
        super().__init__()
        self.identity = norm(cout) if cin == cout and stride == 1 else None
        self.conv_kxk = ConvNorm(cin, cout, 3, stride, norm)
        self.conv_1x1 = ConvNorm(cin, cout, 1, stride, norm)
        self.act = nn.ReLU()

    def forward(self, x):
        out = self.conv_kxk(x) + self.conv_1x1(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(out)


def _plain_bn(c: int) -> nn.Module:
    return nn.BatchNorm2d(c)


def _bn_no_act(c: int) -> nn.Module:
    return BatchNormAct2d(c, apply_act=False)


class RepVgg(nn.Module):
    def __init__(self, norm=_plain_bn) -> None:
        super().__init__()
        self.stages = nn.Sequential(
            RepVggBlock(3, 16, 1, norm),
            RepVggBlock(16, 16, 1, norm),
            RepVggBlock(16, 32, 2, norm),
            RepVggBlock(32, 32, 1, norm),
        )
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.stages(x).mean((2, 3)))


class Constants(nn.Module):
    """Tensors made in forward (lifted by the trace), a per-position parameter, and a 1-d
    buffer that is not a channel: none of them holds channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.pos_w = nn.Parameter(torch.linspace(0.5, 1.5, 8))  # one value per column
        self.register_buffer("rows", torch.arange(8))
        self.conv2 = nn.Conv2d(16, 24, 3, padding=1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        h = h * torch.linspace(1.0, 2.0, 8) * torch.tensor([[1.0], [2.0]]).repeat(4, 1)
        h = (h * self.pos_w)[:, :, self.rows]
        return self.fc(F.relu(self.conv2(h)).mean((2, 3)))


class RelPosAttention(nn.Module):
    """Window attention with a relative-position bias table gathered by a registered index
    buffer, a 1-d mask buffer, and ``reshape(B, N, C)`` from the input's shape (timm's
    swin/beit pattern, with separate q, k, v)."""

    def __init__(self, dim: int = 16, heads: int = 4, window: int = 3) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)
        span = 2 * window - 1
        self.table = nn.Parameter(torch.randn(span * span, heads))
        pos = torch.arange(window)
        grid = torch.stack(torch.meshgrid(pos, pos, indexing="ij")).flatten(1)  # (2, N)
        rel = grid[:, :, None] - grid[:, None, :] + window - 1  # (2, N, N)
        self.register_buffer("index", (rel[0] * span + rel[1]).flatten())
        self.register_buffer("mask", torch.zeros(window * window))
        self.head = nn.Linear(dim, 5)

    def forward(self, x):  # (B, N, C)
        B, N, C = x.shape
        q, k, v = (
            f(x).reshape(B, N, self.heads, -1).transpose(1, 2) for f in (self.q, self.k, self.v)
        )
        bias = self.table[self.index].view(N, N, -1).permute(2, 0, 1).contiguous()
        attn = (q @ k.transpose(-2, -1) + bias.unsqueeze(0) + self.mask).softmax(-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))
        return self.head(y.mean(1))


TOKENS = torch.randn(2, 9, 16, dtype=torch.float64)


# -- helpers ---------------------------------------------------------------------------


class _Recording(MagnitudeImportance):
    """L1 magnitude that remembers its scores, to know which channels prune keeps."""

    def __init__(self) -> None:
        super().__init__(p=1)
        self.scores: dict[str, torch.Tensor] = {}

    def __call__(self, group, tensors):
        self.scores[group.name] = super().__call__(group, tensors)
        return self.scores[group.name]


def _model(factory) -> nn.Module:
    return randomize_(factory().double())


def _pruned(model: nn.Module, x) -> tuple[nn.Module, dict[str, list[int]]]:
    """``prune`` to half the MACs; the pruned model and the channels it kept."""
    importance = _Recording()
    small, report = prune(model, x, PruneConfig(target_macs=0.5), importance=importance)
    assert abs(report.mac_ratio - 0.5) <= 0.02 * 0.5
    assert count_macs(small, x) == report.macs_after
    assert type(small) is type(model)
    keep = {}
    for name, (_, after) in report.changed().items():
        order = torch.argsort(-importance.scores[name], stable=True)
        keep[name] = sorted(order[:after].tolist())
    assert keep, "prune cut nothing"
    return small, keep


def _fixed(groups) -> list[str]:
    return [g.name for g in groups if g.fixed]


def _quiet_groups(model: nn.Module, x, caplog):
    """The model's groups; anywidth must not warn about any op."""
    with caplog.at_level(logging.WARNING, logger="anywidth.graph"):
        groups = channel_groups(model, x)
    assert not caplog.records, caplog.records[0].getMessage()
    return groups


def _same_as_stock(model: nn.Module, stock: nn.Module, x, keep: dict[str, list[int]]) -> None:
    """Same groups, MACs at a plan, and cut output as the module form (same tensors)."""

    def tensors(m: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}

    pairs = zip(tensors(stock), tensors(model).values(), strict=True)
    stock.load_state_dict(dict(pairs), strict=False)
    groups, stock_groups = channel_groups(model, x), channel_groups(stock, x)
    assert [(g.name, g.size, g.fixed) for g in groups] == [
        (g.name, g.size, g.fixed) for g in stock_groups
    ]
    sizes = {name: len(kept) for name, kept in keep.items()}
    assert WidthCost(model, x).macs(sizes) == WidthCost(stock, x).macs(sizes)
    small, small_stock = cut(model, x, keep), cut(stock, x, keep)
    assert type(small) is type(model)
    with torch.no_grad():
        assert rel_err(small(x), small_stock(x)) <= 1e-12


# -- norms and convs that call the functional form -------------------------------------


@pytest.mark.parametrize(
    "factory", [ConvNet, _std_conv_net], ids=["batch_norm_act", "scaled_std_conv"]
)
def test_functional_layers_prune_to_the_budget_and_equal_the_masked_original(factory, caplog):
    model = _model(factory)
    groups = _quiet_groups(model, X, caplog)
    assert _fixed(groups) == ["input:x", "fc:out"]
    small, keep = _pruned(model, X)
    assert small.n2.num_features == len(keep["conv:out"]) == small.dw.in_channels
    assert small.dw.groups == small.dw.out_channels == small.n3.num_features
    with torch.no_grad():
        assert rel_err(small(X), masked_forward(model, X, groups, keep)) <= 1e-9


def test_batch_norm_act_over_a_concatenation_cuts_each_part(caplog):
    model = _model(DenseNet)
    groups = _quiet_groups(model, X, caplog)
    assert _fixed(groups) == ["input:x", "fc:out"]
    small, keep = _pruned(model, X)
    parts = [len(keep.get(g, range(n))) for g, n in (("stem:out", 16), ("layer1.conv2:out", 8))]
    assert small.layer2.norm1.num_features == sum(parts) == small.layer2.conv1.in_channels
    with torch.no_grad():
        assert rel_err(small(X), masked_forward(model, X, groups, keep)) <= 1e-9


def test_batch_norm_act_costs_and_cuts_like_batch_norm_then_relu():
    def stock_norm(c: int) -> nn.Module:
        return _Stock(nn.BatchNorm2d(c), nn.ReLU())

    model = _model(ConvNet)
    keep = {"stem:out": [0, 3, 4, 9, 15], "conv:out": list(range(0, 32, 3))}
    _same_as_stock(model, ConvNet(norm=stock_norm).double().eval(), X, keep)


class BitStdConv2d(nn.Conv2d):
    """BiT's weight standardisation, written out with var_mean."""

    def forward(self, x):
        var, mean = torch.var_mean(self.weight, dim=[1, 2, 3], keepdim=True, unbiased=False)
        weight = (self.weight - mean) / torch.sqrt(var + 1e-10)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class WeightNormConv2d(nn.Conv2d):
    """A weight norm written out: a 1-d gain times the weight over its per-filter norm."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.g = nn.Parameter(torch.ones(self.out_channels))

    def forward(self, x):
        norm = self.weight.flatten(1).norm(2, 1)[:, None, None, None]  # (out, 1, 1, 1)
        weight = self.g[:, None, None, None] * self.weight / norm
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


@pytest.mark.parametrize("conv", [BitStdConv2d, WeightNormConv2d], ids=["var_mean", "weight_norm"])
def test_weights_computed_per_filter_are_cut_with_their_filters(conv, caplog):
    model = _model(lambda: ConvNet(conv=conv))
    groups = _quiet_groups(model, X, caplog)
    assert _fixed(groups) == ["input:x", "fc:out"]
    small, keep = _pruned(model, X)
    if conv is WeightNormConv2d:
        assert small.stem.g.shape == (len(keep["stem:out"]),)
    with torch.no_grad():
        assert rel_err(small(X), masked_forward(model, X, groups, keep)) <= 1e-9


class _OneStd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Conv2d(3, 8, 3, padding=1)
        self.std = ScaledStdConv2d(8, 6, 3, padding=1)

    def forward(self, x):
        return self.std(self.pre(x))


def test_standardised_conv_recomputes_its_statistics_over_the_kept_inputs():
    model = _model(_OneStd)
    kept = [1, 2, 6]
    small = cut(model, X, {"pre:out": kept})
    assert small.std.in_channels == 3 and model.std.in_channels == 8
    with torch.no_grad():
        h = F.conv2d(X, model.pre.weight[kept], model.pre.bias[kept], padding=1)
        w = model.std.weight[:, kept]  # (6, 3, 3, 3): standardised over the kept inputs
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.var((1, 2, 3), False, True) + 1e-6).sqrt()
        w = w * model.std.gain * model.std.scale
        want = F.conv2d(h, w, model.std.bias, padding=1)
        assert rel_err(small(X), want) <= 1e-9


@pytest.mark.parametrize("name", list(NORMS))
def test_norms_over_the_channels_prune_and_cut_like_the_module_form(name, caplog):
    functional, stock = NORMS[name]
    model = _model(lambda: NormNet(functional))
    groups = _quiet_groups(model, X, caplog)
    assert _fixed(groups) == ["input:x", "fc:out"]
    small, keep = _pruned(model, X)
    channels = small.stem.out_channels
    if name == "layer_norm_2d":
        assert small.n1.normalized_shape == (channels,) == small.n2.normalized_shape
    else:  # channel k of each of the 4 normalisation groups is one channel of the group
        assert small.n1.num_channels == channels == 4 * len(keep["stem:out[0:4]"])
        assert small.n1.num_groups == 4
    _same_as_stock(model, NormNet(stock).double().eval(), X, keep)


def test_functional_linear_embedding_and_layer_norm(caplog):
    model = _model(TokenNet)
    groups = _quiet_groups(model, IDS, caplog)
    assert _fixed(groups) == ["head:out"]
    small, keep = _pruned(model, IDS)
    assert small.emb.embedding_dim == small.fc1.in_features == len(keep["emb:out"])
    assert small.ln.normalized_shape == (len(keep["emb:out"]),)
    assert small.fc1.out_features == small.fc2.in_features == len(keep["fc1:out"])
    _same_as_stock(model, TokenNet(stock=True).double().eval(), IDS, keep)


def test_a_users_own_layers_keep_their_class_and_attributes(caplog):
    model = _model(OwnNet)
    with torch.no_grad():  # randomize_ knows variances by their torch name only
        for norm in (model.n1, model.n2):
            norm.var.abs_().add_(0.5)
    groups = _quiet_groups(model, X, caplog)
    assert _fixed(groups) == ["input:x", "fc:out"]
    small, keep = _pruned(model, X)
    assert isinstance(small.n1, OwnNorm) and small.n1.num_features == len(keep["c1:out"])
    assert small.c2.in_channels == len(keep["c1:out"]) == small.c2.weight.shape[1]
    assert small.c2.out_channels == len(keep["c2:out"]) == small.n2.gamma.shape[0]
    stock = OwnNet(stock=True).double().eval()
    model.c1.scale = model.c2.scale = 1.0  # the stock conv has no scale
    _same_as_stock(model, stock, X, keep)


class FunctionalRoot(nn.Module):
    """A model calling F.conv2d and F.linear on its own parameters: a container, whose
    attributes (``in_channels`` of the image) are not a layer's."""

    def __init__(self) -> None:
        super().__init__()
        self.in_channels = 3
        self.w1 = nn.Parameter(torch.randn(16, 3, 3, 3))
        self.b1 = nn.Parameter(torch.zeros(16))
        self.w2 = nn.Parameter(torch.randn(24, 16, 3, 3))
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        h = F.relu(F.conv2d(x, self.w1, self.b1, padding=1))
        h = F.relu(F.conv2d(h, self.w2, padding=1))
        return self.fc(h.mean((2, 3)))


def test_a_models_own_parameters_are_cut_but_its_attributes_kept(caplog):
    model = _model(FunctionalRoot)
    groups = _quiet_groups(model, X, caplog)
    assert [g.name for g in groups] == ["input:x", "w1:out", "w2:out", "fc:out"]
    small, keep = _pruned(model, X)
    assert small.in_channels == 3 and small.w2.shape[1] == len(keep["w1:out"])
    masked = copy.deepcopy(model)  # removed channels zeroed at their producers (relu(0) = 0)
    with torch.no_grad():
        for weight, bias, name in ((masked.w1, masked.b1, "w1:out"), (masked.w2, None, "w2:out")):
            removed = [c for c in range(weight.shape[0]) if c not in keep.get(name, range(99))]
            weight[removed] = 0
            if bias is not None:
                bias[removed] = 0
        assert rel_err(small(X), masked(X)) <= 1e-9


# -- constants and buffers --------------------------------------------------------------


def _named_tensors(model: nn.Module) -> set[str]:
    return {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}


def test_lifted_constants_and_position_tensors_are_not_groups(caplog):
    model = _model(Constants)
    groups = _quiet_groups(model, X, caplog)
    names = _named_tensors(model)
    assert all(m.name in names for g in groups for m in g.members)
    assert [g.name for g in groups] == ["input:x", "conv:out", "conv2:out", "fc:out"]
    assert _fixed(groups) == ["input:x", "fc:out"]
    small, keep = _pruned(model, X)
    assert small.pos_w.shape == (8,) and torch.equal(small.rows, model.rows)
    with torch.no_grad():
        assert rel_err(small(X), masked_forward(model, X, groups, keep)) <= 1e-9


def test_relative_position_bias_follows_the_heads_and_index_buffers_stay_whole(caplog):
    model = _model(RelPosAttention)
    groups = _quiet_groups(model, TOKENS, caplog)
    names = _named_tensors(model)
    assert all(m.name in names for g in groups for m in g.members)
    heads = next(g for g in groups if any(m.name == "table" for m in g.members))
    assert not heads.fixed and heads.size == 4
    assert all(m.name not in ("index", "mask") for g in groups for m in g.members)
    with caplog.at_level(logging.ERROR):  # a forward that reads C from x: a GraphModule
        small = cut(model, TOKENS, {heads.name: [0, 2]})
    assert small.table.shape == (25, 2) and torch.equal(small.index, model.index)
    with torch.no_grad():
        B, N, C = TOKENS.shape
        rows = [*range(0, 4), *range(8, 12)]  # heads 0 and 2 of 4 channels each
        q, k, v = (
            F.linear(TOKENS, f.weight[rows], f.bias[rows]).reshape(B, N, 2, 4).transpose(1, 2)
            for f in (model.q, model.k, model.v)
        )
        bias = model.table[model.index][:, [0, 2]].view(N, N, 2).permute(2, 0, 1)
        attn = (q @ k.transpose(-2, -1) + bias + model.mask).softmax(-1)
        y = (attn @ v).transpose(1, 2).reshape(B, N, 8)
        y = F.linear(y, model.proj.weight[:, rows], model.proj.bias)
        want = model.head(y.mean(1))
        assert rel_err(small(TOKENS), want) <= 1e-12


# -- re-parameterised blocks -----------------------------------------------------------


@pytest.mark.parametrize("norm", [_plain_bn, _bn_no_act], ids=["batch_norm", "batch_norm_act"])
def test_repvgg_blocks_prune_to_the_budget_and_equal_the_masked_original(norm, caplog):
    model = _model(lambda: RepVgg(norm))
    groups = _quiet_groups(model, X, caplog)
    assert _fixed(groups) == ["input:x", "fc:out"]
    assert len(groups) == 4  # two stages: branches and identity tied into one group each
    small, keep = _pruned(model, X)
    kept = len(keep["stages.0.conv_kxk.conv:out"])
    assert small.stages[1].identity.num_features == kept
    assert small.stages[2].conv_1x1.conv.in_channels == kept
    with torch.no_grad():
        assert rel_err(small(X), masked_forward(model, X, groups, keep)) <= 1e-9
