"""Channel search: every candidate matched to the linear configuration's MACs; config errors."""

import pytest

from studies.channel_search import (
    CANDIDATES,
    ChannelSearchConfig,
    ChannelSearchRow,
    matched_channels,
)


def test_candidates_have_sixteen_blocks_and_the_paper_shapes() -> None:
    assert CANDIDATES["linear"][:3] == [16, 27, 38]
    assert CANDIDATES["stagewise"] == [16, 24, 24, 32, 32, 64, 64, 64, 96, 96, 96] + [160] * 5
    assert all(len(shape) == 16 for shape in CANDIDATES.values())


def test_every_candidate_costs_the_linear_macs() -> None:
    config = ChannelSearchConfig(candidates=("linear", "stagewise"), width_mult=0.25)
    matched = matched_channels(config)
    assert list(matched) == ["linear", "stagewise"]
    reference = matched["linear"][1]
    for name, (channels, macs) in matched.items():
        assert macs == pytest.approx(reference, rel=config.tolerance), name
        assert len(channels) == 16 and min(channels) >= 1
    # Stage-wise widths stay constant within a stage after scaling.
    stagewise = matched["stagewise"][0]
    assert stagewise[1] == stagewise[2] and stagewise[-1] == stagewise[-5]


def test_row_mean_and_spread() -> None:
    row = ChannelSearchRow("linear", [1] * 16, 10, 20, accuracies=[0.9, 0.8, 1.0])
    assert row.mean == pytest.approx(0.9)
    assert row.std == pytest.approx(0.0816, abs=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidates": ("spiral",)}, r"has \['spiral'\]; choose from"),
        ({"epochs": 0}, "epochs >= 1"),
        ({"seeds": ()}, "and a seed"),
        ({"tolerance": 0}, "tolerance=0 must be in"),
    ],
    ids=["candidate", "epochs", "seeds", "tolerance"],
)
def test_bad_config_is_named(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        ChannelSearchConfig(**kwargs)


def test_config_round_trips() -> None:
    config = ChannelSearchConfig(candidates=("linear", "stagewise"), epochs=2, seeds=(3,))
    assert ChannelSearchConfig.from_dict(config.to_dict()) == config
