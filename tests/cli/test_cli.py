import pytest

from anywidth.cli.main import main


def test_info_prints_a_row_per_matching_model(capsys):
    assert main(["info", "tiny_conv*", "--input-size", "8", "--in-channels", "1"]) == 0
    out = capsys.readouterr().out
    assert "tiny_convnet" in out
    assert "params" in out and "MACs" in out


def test_info_unknown_model_is_a_clear_error(capsys):
    assert main(["info", "no_such_net"]) == 2
    err = capsys.readouterr().err
    assert "no zoo model matches 'no_such_net'" in err


def test_train_then_eval_round_trip(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "tiny_convnet", "--epochs", "1", "--out", str(out)]
    assert main(args) == 0
    assert (out / "last.safetensors").exists()
    printed = capsys.readouterr().out
    test_acc = float(printed.split("test accuracy ")[1].split("%")[0])
    assert main(["eval", str(out / "last.safetensors")]) == 0
    table = capsys.readouterr().out
    assert "tiny_convnet" in table and "digits" in table
    # eval finds the recorded data set and split, so it reproduces the training run's figure
    assert f"{test_acc:.2f}" in table


def test_eval_missing_checkpoint(tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    assert main(["eval", str(missing)]) == 2
    assert "nope.safetensors" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_reports_the_trained_model(tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "resnet20 (trained)" in out
    assert (tmp_path / "demo.md").read_text().count("|") > 10
