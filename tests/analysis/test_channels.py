"""Channel configurations: ReXNet's linear list, stage-wise and piecewise-linear ones."""

import pytest

from anywidth.analysis import linear_channels, piecewise_channels, stagewise_channels
from anywidth.models.rexnet import block_specs_from_channels, rexnet_block_specs

REXNET_X1 = [16, 27, 38, 50, 61, 72, 84, 95, 106, 117, 128, 140, 151, 162, 174, 185]


def test_linear_channels_is_rexnets_list() -> None:
    assert linear_channels(1.0) == REXNET_X1
    assert linear_channels(1.0, blocks=16, start=16, end=180) == REXNET_X1
    assert linear_channels(2.0)[:3] == [32, 54, 77]
    assert linear_channels(1.0, blocks=4, start=10, end=20) == [10, 15, 20, 25]


def test_the_zoo_rexnet_uses_linear_channels() -> None:
    # The published sizes (within 3%) are asserted for every width in tests/models.
    _, blocks, head = rexnet_block_specs(1.0)
    assert [b.out_channels for b in blocks] == REXNET_X1
    assert head == 1280
    # Narrow models keep the first block at 16 (reference rule) and shrink the rest.
    _, narrow, _ = rexnet_block_specs(0.9)
    assert [b.out_channels for b in narrow] == linear_channels(0.9, start=16 / 0.9)
    assert narrow[0].out_channels == 16


def test_stagewise_and_piecewise() -> None:
    assert stagewise_channels([16, 24, 32], [1, 2, 3]) == [16, 24, 24, 32, 32, 32]
    assert piecewise_channels([(0, 16), (1, 32)], blocks=3) == [16, 24, 32]
    assert piecewise_channels([(0, 10), (0.5, 30), (1, 40)], blocks=5) == [10, 20, 30, 35, 40]
    assert piecewise_channels([(0, 10), (1, 20)], blocks=1) == [10]


def test_block_specs_from_channels_keeps_the_rexnet_layout() -> None:
    blocks = block_specs_from_channels(REXNET_X1, 32)
    _, reference, _ = rexnet_block_specs(1.0)
    assert blocks == reference


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: linear_channels(0), "width_mult=0 must be a number above 0"),
        (lambda: linear_channels(1.0, blocks=0), "blocks=0 must be an integer >= 1"),
        (lambda: linear_channels(1.0, end=-1), "end=-1 must be a number >= 0"),
        (lambda: stagewise_channels([16], [1, 2]), "must be non-empty lists of the same"),
        (lambda: stagewise_channels([16, 0], [1, 2]), r"stage_channels\[1\]=0"),
        (lambda: piecewise_channels([(0, 1), (0.8, 2)], 4), "from 0 to 1"),
        (lambda: piecewise_channels([(0, 1), (0.5, 2), (0.5, 3), (1, 4)], 4), "strictly"),
        (lambda: block_specs_from_channels([1, 2], 32), "must be 16 widths >= 1"),
    ],
    ids=["width", "blocks", "end", "lengths", "zero-stage", "last-knot", "repeat-knot", "specs"],
)
def test_bad_arguments_are_named(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()
