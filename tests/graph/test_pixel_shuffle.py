"""Pixel shuffle couples a producer's C·r² channels in blocks of r²; EDSR's global residual
ties the body together; cut, prune, to_integral and resample work on SRCNN and EDSR."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from anywidth.graph import channel_groups, cut
from anywidth.integral import to_integral
from anywidth.measure import count_macs
from anywidth.models import create_model
from anywidth.pruning import PruneConfig, prune
from tests.graph._helpers import masked_forward, randomize_, rel_err
from tests.graph._random_nets import RandomNet

X = torch.rand(2, 3, 6, 5, dtype=torch.float64)


def _edsr(scale: int) -> nn.Module:
    return randomize_(create_model("edsr", scale=scale, channels=8, blocks=2).double()).eval()


@pytest.mark.parametrize("scale, r2", [(2, 4), (3, 9), (4, 4)])
def test_upsampler_conv_channels_come_in_blocks_of_r_squared(scale, r2):
    groups = {g.name: g for g in channel_groups(_edsr(scale), X)}
    up = groups["upsample.0:out"]
    assert up.size == 8 and not up.fixed
    members = {(m.name, m.dim): m.block for m in up.members}
    assert members == {
        ("upsample.0.weight", 0): r2,
        ("upsample.0.bias", 0): r2,
        ("upsample.2.weight" if scale == 4 else "tail.weight", 1): 1,
    }


def test_global_residual_ties_head_body_and_every_block_output():
    groups = {g.name: g for g in channel_groups(_edsr(4), X)}
    trunk = {(m.name, m.dim) for m in groups["head:out"].members}
    assert {("head.weight", 0), ("body_conv.weight", 0), ("upsample.0.weight", 1)} <= trunk
    assert {("body.0.conv2.weight", 0), ("body.1.conv2.weight", 0)} <= trunk
    assert [g.name for g in groups.values() if g.fixed] == ["input:x", "tail:out"]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_dropping_a_zero_block_of_r_squared_channels_is_exact(scale):
    model = _edsr(scale)
    r2 = 9 if scale == 3 else 4
    with torch.no_grad():  # channel 5 of the shuffled map: conv rows 5·r² .. 6·r² - 1
        model.upsample[0].weight[5 * r2 : 6 * r2] = 0
        model.upsample[0].bias[5 * r2 : 6 * r2] = 0
    keep = {"upsample.0:out": [k for k in range(8) if k != 5]}
    small = cut(model, X, keep)
    assert small.upsample[0].out_channels == 7 * r2
    reader = small.upsample[2] if scale == 4 else small.tail
    assert reader.in_channels == 7
    with torch.no_grad():
        torch.testing.assert_close(small(X), model(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_cut_of_every_edsr_group_matches_the_masked_original(scale):
    model = _edsr(scale)
    groups = channel_groups(model, X)
    gen = torch.Generator().manual_seed(scale)
    keep = {
        g.name: sorted(torch.randperm(g.size, generator=gen)[: g.size // 2 + 1].tolist())
        for g in groups
        if not g.fixed
    }
    small = cut(model, X, keep, groups=groups)
    with torch.no_grad():
        assert rel_err(small(X), masked_forward(model, X, groups, keep)) <= 1e-9


@pytest.mark.parametrize("how", ["module_unshuffle", "pool"])
def test_random_net_with_a_shuffle_block_cuts_like_the_mask(how):
    model = randomize_(RandomNet(4, [("shuffle", 3, how), ("conv", 2, "relu")], "mean").double())
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    groups = {g.name: g for g in channel_groups(model, x)}
    shuffled = groups["blocks.0.a:out"]
    assert shuffled.size == 3 and not shuffled.fixed
    blocks = {(m.name, m.dim): m.block for m in shuffled.members}
    assert blocks[("blocks.0.a.weight", 0)] == 4
    # after an unshuffle the next conv reads each channel as 4 consecutive inputs
    assert blocks[("blocks.1.a.0.weight", 1)] == (4 if how == "module_unshuffle" else 1)
    keep = {"blocks.0.a:out": [0, 2], "stem.0:out": [1, 3]}
    small = cut(model, x, keep)
    with torch.no_grad():
        ref = masked_forward(model, x, list(groups.values()), keep)
        assert rel_err(small(x), ref) <= 1e-9


class _TiedShuffle(nn.Module):
    """The shuffled channels are also added to another conv's: coupling unknown, so fixed."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 8, 1)
        self.c = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return self.c(F.pixel_shuffle(self.a(x) + self.b(x), 2))


def test_a_shuffle_of_tied_channels_fixes_them_with_a_warning(caplog):
    model = _TiedShuffle().double()
    with caplog.at_level(logging.WARNING, logger="anywidth.graph"):
        groups = {g.name: g for g in channel_groups(model, X)}
    assert groups["a:out"].fixed and "already tied" in caplog.text
    small = cut(model, X, {})
    with torch.no_grad():
        assert torch.equal(small(X), model(X))


@pytest.mark.parametrize("name, scale", [("srcnn", 3), ("edsr", 4), ("edsr", 3)])
def test_integral_is_exact_at_full_width_and_resamples(name, scale):
    torch.manual_seed(0)
    model = create_model(name, scale=scale).eval()
    x = torch.rand(1, 3, 10, 10)
    inn = to_integral(model, x).eval()
    with torch.no_grad():
        assert (inn(x) - model(x)).abs().max() <= 1e-5
        half = inn.resample(target_macs=0.5)
        assert half(x).shape == model(x).shape
    assert abs(count_macs(half, x) / count_macs(model, x) - 0.5) <= 0.02
    small, report = prune(model, x, PruneConfig(target_macs=0.5))
    assert abs(report.mac_ratio - 0.5) <= 0.02 and small(x).shape == model(x).shape
