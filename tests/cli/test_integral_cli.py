import pytest

from anywidth.cli.main import main
from anywidth.data import make_loaders
from anywidth.integral import load_integral
from anywidth.measure import evaluate
from anywidth.train import load_model
from anywidth.train.checkpoint import read_checkpoint
from tests.cli.conftest import FAST, SOURCE_ACCURACY


@pytest.fixture(scope="module")
def inn_file(trained_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("inn") / "model.inn.safetensors"
    assert main(["integrate", str(trained_checkpoint), "--out", str(out), *FAST]) == 0
    return out


def _cell(table: str, row: str, column: str) -> str:
    """The ``column`` cell of ``row`` in a printed table."""
    lines = table.splitlines()
    header = next(line for line in lines if column in line).split("|")
    line = next(line for line in lines if line.startswith(f"| {row} "))
    return line.split("|")[[c.strip() for c in header].index(column)].strip()


def _macs(table: str, row: str) -> float:
    """The MACs cell of ``row`` in a printed table, as a number."""
    cell = _cell(table, row, "MACs")
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(cell[-1], 1)
    return float(cell.rstrip("kMG")) * scale


def _accuracy(table: str, row: str) -> float:
    """The ``test acc %`` cell of ``row`` as a fraction."""
    return float(_cell(table, row, "test acc %")) / 100


def test_integrate_reports_widths_and_records_data(inn_file, trained_checkpoint):
    meta = read_checkpoint(inn_file).meta
    assert meta["model"]["name"] == "tiny_resnet"
    assert meta["metrics"]["data"]["name"] == "digits"
    assert load_integral(inn_file).model_name == "tiny_resnet"
    # Conversion is exact: the INN at full width scores what the trained model scores
    # (to one test image of 359), and narrower widths score less but well above chance.
    source = load_model(trained_checkpoint)[0]
    expected = evaluate(source, make_loaders("digits", batch_size=256).test)["accuracy"]
    assert expected == pytest.approx(SOURCE_ACCURACY, abs=0.1)
    metrics = meta["metrics"]
    assert metrics["test_accuracy"] == pytest.approx(expected, abs=1.01 / 359)
    assert metrics["test_accuracy_75pct_macs"] > 0.4  # measured 57.4%
    assert metrics["test_accuracy_50pct_macs"] > 0.25  # measured 40.4%


def test_integrate_with_training_and_partition_tuning(trained_checkpoint, tmp_path, capsys):
    out = tmp_path / "tuned.inn.safetensors"
    args = ["integrate", str(trained_checkpoint), "--out", str(out), "--train-epochs", "1"]
    args += ["--consistency", "1.0", "--tune-partition", "--tune-steps", "2", *FAST]
    assert main(args) == 0
    table = capsys.readouterr().out
    for row in ("full", "75% MACs", "50% MACs", "25% MACs"):
        assert f"| {row} " in table
    assert "try: anywidth slim" in table  # the measured better method for training widths
    assert _macs(table, "50% MACs") == pytest.approx(0.5 * _macs(table, "full"), rel=0.15)
    assert _accuracy(table, "full") > 0.6  # measured 75.2% (chance: 10%)
    assert _accuracy(table, "50% MACs") > 0.35  # measured 53.8%
    # the tuned partitions are trainable grids; the file must read back with them
    inn = load_integral(out)
    assert inn.config.partition == "trainable"


def test_resample_to_checkpoint_then_eval(inn_file, tmp_path, capsys):
    small = tmp_path / "small.safetensors"
    args = ["resample", str(inn_file), "--target-macs", "0.5", "--out", str(small), *FAST]
    assert main([*args, "--tune-steps", "5"]) == 0
    table = capsys.readouterr().out
    # tuning and recalibration are the defaults, and resample says it did them
    assert "tuned the partition for 5 steps" in table and "recalibrated BatchNorm" in table
    assert read_checkpoint(small).meta["extra"]["resample"]["tune_steps"] == 5
    assert _macs(table, "after") == pytest.approx(0.5 * _macs(table, "before"), rel=0.15)
    assert _accuracy(table, "before") == pytest.approx(SOURCE_ACCURACY, abs=0.1)
    assert _accuracy(table, "after") > 0.25  # measured 40.4% (chance: 10%)
    assert main(["eval", str(small), *FAST]) == 0
    evaluated = capsys.readouterr().out
    assert "tiny_resnet" in evaluated and "digits" in evaluated
    assert _macs(evaluated, "tiny_resnet") == pytest.approx(_macs(table, "after"), rel=0.01)
    # the saved small model scores what resample measured before writing it
    assert _accuracy(evaluated, "tiny_resnet") == _accuracy(table, "after")


def test_resample_to_onnx(inn_file, tmp_path, capsys):
    onnx = tmp_path / "small.onnx"
    args = ["resample", str(inn_file), "--ratio", "0.5", "--allocation", "uniform"]
    assert main(args + ["--out", str(onnx), "--no-recalibrate", "--no-tune", *FAST]) == 0
    assert onnx.exists() and onnx.stat().st_size > 1000
    assert "no tuning, no recalibration" in capsys.readouterr().out


def test_resample_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.inn.safetensors"
    args = ["resample", str(missing), "--ratio", "0.5", "--out", str(tmp_path / "s.onnx")]
    assert main(args) == 2
    assert "nope.inn.safetensors" in capsys.readouterr().err


def test_integrate_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    assert main(["integrate", str(missing), "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "nope.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["integrate", "resample"])
def test_wrong_out_suffix(command, inn_file, tmp_path, capsys):
    args = [command, str(inn_file), "--out", str(tmp_path / "small.pt")]
    if command == "resample":
        args += ["--ratio", "0.5"]
    assert main(args) == 2
    assert "small.pt" in capsys.readouterr().err


def test_resample_ratio_and_target_macs_are_exclusive(inn_file, tmp_path, capsys):
    args = ["resample", str(inn_file), "--ratio", "0.5", "--target-macs", "0.5"]
    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--out", str(tmp_path / "small.safetensors")])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
