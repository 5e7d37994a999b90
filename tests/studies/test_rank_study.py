"""The rank study: exact ranks without a nonlinearity, paper claims on a fixed seed, output."""

import csv

import pytest

from studies.rank_study import RankStudyConfig, rank_study

RATIOS = (0.1, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def single_layer():
    config = RankStudyConfig(
        kinds=("conv1x1",), ratios=RATIOS, networks=6, min_out=16, max_out=48, seed=0
    )
    return rank_study(config)


def test_identity_rank_ratio_is_min_din_dout_over_dout_exactly() -> None:
    # A fixed d_out makes min(d_in, d_out) / d_out the same for every network.
    config = RankStudyConfig(
        kinds=("conv1x1",),
        activations=("identity",),
        ratios=RATIOS,
        networks=5,
        min_out=40,
        max_out=40,
    )
    result = rank_study(config)
    for ratio in RATIOS:
        point = result.point("conv1x1", "identity", ratio)
        d_in = max(1, round(ratio * 40))
        assert point.mean == min(d_in, 40) / 40
        assert point.std == 0.0


def test_identity_is_exact_for_every_drawn_size(single_layer) -> None:
    # With d_out drawn at random, the ratio still equals round(r * d_out) / d_out on average
    # within rounding: |mean - r| <= 1 / (2 * min_out).
    for ratio in RATIOS:
        assert single_layer.point("conv1x1", "identity", ratio).mean == pytest.approx(
            ratio, abs=1 / 32
        )


def test_elu_and_silu_at_least_relu_at_low_ratios() -> None:
    # Seed 0, depthwise bottleneck without BatchNorm: ReLU zeroes whole channels of some
    # networks (rank ratio 0.998 at 0.1), ELU and SiLU never (1.0).
    config = RankStudyConfig(
        kinds=("ib_dw3x3",),
        activations=("relu", "elu", "silu"),
        ratios=(0.1, 0.5),
        networks=6,
        batch=4,
        batch_norm=False,
        seed=0,
    )
    result = rank_study(config)
    relu = {r: result.point("ib_dw3x3", "relu", r).mean for r in config.ratios}
    for ratio in config.ratios:
        assert result.point("ib_dw3x3", "elu", ratio).mean >= relu[ratio]
        assert result.point("ib_dw3x3", "silu", ratio).mean >= relu[ratio]
    assert min(relu.values()) < 1.0


def test_silu_below_relu_in_a_single_layer_with_batchnorm() -> None:
    # Where the paper's ordering does not hold: 1x1 layer + BN, d_in = 2..6 (ratio 0.1):
    # ReLU 1.0, SiLU 0.83 (seed 0, 10 networks). Recorded so a change is noticed.
    config = RankStudyConfig(
        kinds=("conv1x1",), activations=("relu", "silu"), ratios=(0.1,), networks=10, seed=0
    )
    result = rank_study(config)
    assert result.point("conv1x1", "relu", 0.1).mean == 1.0
    assert result.point("conv1x1", "silu", 0.1).mean == pytest.approx(0.828, abs=0.01)


def test_nonlinearities_raise_rank_above_the_identity(single_layer) -> None:
    # Ratio 0.1 (d_in 2..5): identity 0.10; ReLU 1.0 ... SiLU 0.79 (seed 0).
    identity = single_layer.point("conv1x1", "identity", 0.1).mean
    assert identity < 0.15
    for act in ("relu", "relu6", "elu", "silu", "gelu"):
        assert single_layer.point("conv1x1", act, 0.1).mean > identity + 0.5
    finding = {f.name: f for f in single_layer.findings()}["nonlinearities expand rank"]
    assert finding.status == "reproduced"


def test_the_same_seed_gives_the_same_numbers() -> None:
    config = RankStudyConfig(kinds=("conv1x1",), ratios=(0.2,), networks=3, max_out=32)
    first, again = rank_study(config), rank_study(config)
    assert again.points == first.points
    other = rank_study(RankStudyConfig.from_dict({**config.to_dict(), "seed": 1}))
    assert other.points != first.points


def test_csv_and_figure(single_layer, tmp_path) -> None:
    rows = list(csv.DictReader(single_layer.to_csv(tmp_path / "r.csv").open()))
    assert len(rows) == len(RATIOS) * 6
    assert set(rows[0]) == {"kind", "activation", "ratio", "mean", "std", "networks"}
    png = single_layer.plot(tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_all_kinds_run_and_depthwise_finding_is_checked() -> None:
    config = RankStudyConfig(ratios=(0.1, 1.0), networks=2, activations=("identity", "silu"))
    result = rank_study(config)
    assert {p.kind for p in result.points} == {"conv1x1", "conv3x3", "ib_conv3x3", "ib_dw3x3"}
    assert all(0 < p.mean <= 1 for p in result.points)
    statuses = {f.name: f.status for f in result.findings()}
    assert statuses["ELU/SiLU expand rank most"] == "not tested"  # no elu in the study
    assert statuses["depthwise needs a higher ratio"] in ("reproduced", "not reproduced")


def test_config_round_trips() -> None:
    config = RankStudyConfig(kinds=("conv3x3",), networks=3, rtol=1e-2)
    assert RankStudyConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kinds": ("conv5x5",)}, r"kinds=\['conv5x5'\]; choose from"),
        ({"activations": ("tanh",)}, r"activations=\['tanh'\]; choose from"),
        ({"ratios": (0.0, 0.5)}, "each must be in"),
        ({"ratios": (1.5,)}, "each must be in"),
        ({"networks": 0}, "networks=0 must be >= 1"),
        ({"min_out": 64, "max_out": 32}, "max_out=32 is below min_out=64"),
        ({"batch": 1, "spatial": 4, "max_out": 64}, "must exceed max_out=64"),
        ({"rtol": 2.0}, "rtol=2.0 must be in"),
        ({"dtype": "float16"}, "dtype='float16'"),
    ],
    ids=[
        "kind",
        "activation",
        "ratio-zero",
        "ratio-big",
        "networks",
        "range",
        "columns",
        "rtol",
        "dtype",
    ],
)
def test_bad_config_is_named(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        RankStudyConfig(**kwargs)


def test_unknown_cell_lists_what_was_studied(single_layer) -> None:
    with pytest.raises(KeyError, match="studied kinds"):
        single_layer.point("conv3x3", "relu", 0.1)
