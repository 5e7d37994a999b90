import pytest

from anywidth.cli.main import main
from anywidth.train.checkpoint import read_checkpoint
from tests.cli.conftest import FAST, SOURCE_ACCURACY
from tests.cli.test_integral_cli import _accuracy, _macs


@pytest.fixture(scope="module")
def slim_file(trained_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("slim") / "model.slim.safetensors"
    args = ["slim", str(trained_checkpoint), "--out", str(out), "--train-epochs", "1"]
    assert main([*args, *FAST]) == 0
    return out


def test_slim_records_the_method_and_the_widths(slim_file):
    meta = read_checkpoint(slim_file).meta
    assert meta["extra"]["slimmable"] == {"min_ratio": 0.3}
    assert meta["extra"]["data"]["name"] == "digits"
    metrics = meta["metrics"]
    # one epoch of width-random training keeps the full width near the source (79.7%)
    assert metrics["test_accuracy_100pct_macs"] > SOURCE_ACCURACY - 0.15
    assert metrics["test_accuracy_75pct_macs"] > 0.6  # measured 77.4%
    assert metrics["test_accuracy_50pct_macs"] > 0.4  # measured 54.6% (chance: 10%)


def test_resample_cuts_a_slimmable_checkpoint(slim_file, tmp_path, capsys):
    small = tmp_path / "small.safetensors"
    args = ["resample", str(slim_file), "--target-macs", "0.5", "--out", str(small), *FAST]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "slimmable: first channels kept; recalibrated BatchNorm" in table
    assert _macs(table, "after") == pytest.approx(0.5 * _macs(table, "before"), rel=0.05)
    assert _accuracy(table, "after") > 0.4  # measured 54.6%
    assert main(["eval", str(small), *FAST]) == 0
    assert _accuracy(capsys.readouterr().out, "tiny_resnet") == _accuracy(table, "after")


def test_slim_needs_epochs(trained_checkpoint, tmp_path, capsys):
    args = ["slim", str(trained_checkpoint), "--out", str(tmp_path / "s.safetensors")]
    assert main([*args, "--train-epochs", "0"]) == 2
    assert "--train-epochs" in capsys.readouterr().err
