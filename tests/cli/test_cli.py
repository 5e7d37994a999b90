import pytest

import studies.demo
from anywidth.cli.main import main
from anywidth.compare import METHODS
from anywidth.train import read_checkpoint


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
def test_demo_compares_every_method_and_plots_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(studies.demo, "BUDGETS", (0.1,))  # one budget keeps it to a minute
    args = ["demo", "--epochs", "1", "--slim-epochs", "1", "--search-epochs", "1"]
    assert main([*args, "--tune-steps", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for method in METHODS:
        assert f"| {method} | macs 10% |" in out or f"| **{method}** | macs 10% |" in out
    table = (tmp_path / "compare" / "compare.md").read_text()
    assert table.count("| macs ") == len(METHODS)
    png = (tmp_path / "compare" / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert (tmp_path / "compare" / "best-macs0.1.safetensors").exists()


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    assert main(["train", "--model", "tiny_resnet", "--epochs", "1", "--out", str(out)]) == 0
    return out / "last.safetensors"


def test_prune_writes_a_smaller_checkpoint_that_reloads(trained_checkpoint, tmp_path, capsys):
    small = tmp_path / "small.safetensors"
    args = ["prune", str(trained_checkpoint), "--target-macs", "0.6", "--out", str(small)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "of the MACs" in out
    ratio = float(out.split("wrote")[1].split("(")[1].split("%")[0])
    assert abs(ratio - 60.0) <= 60.0 * 0.15  # tiny net: coarse channels
    assert main(["eval", str(small)]) == 0
    assert "tiny_resnet" in capsys.readouterr().out


def test_prune_to_onnx(trained_checkpoint, tmp_path, capsys):
    path = tmp_path / "small.onnx"
    args = ["prune", str(trained_checkpoint), "--target-macs", "0.6", "--out", str(path)]
    assert main(args) == 0
    assert path.stat().st_size > 1000


def test_prune_rejects_an_unknown_output_type(trained_checkpoint, tmp_path, capsys):
    args = ["prune", str(trained_checkpoint), "--target-macs", "0.5", "--out", "x.pt"]
    assert main(args) == 2
    assert "use a .safetensors or .onnx file name" in capsys.readouterr().err


def test_train_a_super_resolution_model(tmp_path, capsys):
    out = tmp_path / "sr"
    args = ["train", "--model", "srcnn", "--data", "sr-skimage", "--scale", "3"]
    small = ["--epochs", "1", "--patches", "16", "--patch", "8", "--batch-size", "8"]
    small += ["--max-size", "60"]
    assert main([*args, *small, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "val PSNR dB" in printed and (out / "best.safetensors").exists()
    psnr = float(printed.split("test PSNR ")[1].split(" dB")[0])
    assert 5 < psnr < 40
    # eval reloads it with its recorded data options (scale, crop) and scores PSNR as train did
    assert main(["eval", str(out / "best.safetensors")]) == 0
    evaluated = capsys.readouterr().out
    assert "test PSNR dB" in evaluated and "sr-skimage" in evaluated
    assert float(evaluated.split("|")[-2]) == pytest.approx(psnr, abs=0.01)
    recorded = read_checkpoint(out / "best.safetensors").meta["extra"]["data"]["options"]
    assert recorded["scale"] == 3 and recorded["max_size"] == 60
    # pruning and decomposing an SR checkpoint report PSNR too, and the saved model reloads
    for command, target in (("prune", "--target-macs"), ("decompose", "--target-params")):
        small = tmp_path / f"{command}.safetensors"
        assert (
            main([command, str(out / "best.safetensors"), target, "0.5", "--out", str(small)]) == 0
        )
        printed = capsys.readouterr().out
        after = printed.split("\n| after ")[1].split("\n")[0]  # the before/after table's row
        assert "test PSNR dB" in printed and 5 < float(after.split("|")[-2]) < 40
        assert main(["eval", str(small)]) == 0
        assert float(capsys.readouterr().out.split("|")[-2]) == float(after.split("|")[-2])


def _sr_checkpoint(folder):
    args = ["train", "--model", "srcnn", "--data", "sr-skimage", "--scale", "3"]
    small = ["--epochs", "1", "--patches", "16", "--patch", "8", "--batch-size", "8"]
    assert main([*args, *small, "--max-size", "60", "--out", str(folder)]) == 0
    return folder / "best.safetensors"


def _psnr_rows(printed: str) -> list[float]:
    """The last column of every width row of a width table (``full``, ``NN% MACs``)."""
    rows = [r for r in printed.splitlines() if r.startswith(("| full", "| 75%", "| 50%"))]
    return [float(r.split("|")[-2]) for r in rows]


def test_any_width_commands_train_and_score_super_resolution(tmp_path, capsys):
    checkpoint = _sr_checkpoint(tmp_path / "sr")
    capsys.readouterr()
    # integrate with width-random training (L1 loss, Adam) and slim: PSNR width tables
    inn = tmp_path / "sr.inn.safetensors"
    args = ["integrate", str(checkpoint), "--train-epochs", "1", "--out", str(inn)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "test PSNR dB" in printed
    assert len(_psnr_rows(printed)) == 3 and all(5 < v < 40 for v in _psnr_rows(printed))
    slim = tmp_path / "sr.slim.safetensors"
    assert main(["slim", str(checkpoint), "--train-epochs", "1", "--out", str(slim)]) == 0
    printed = capsys.readouterr().out
    assert "test PSNR dB (BN recal)" in printed and all(5 < v < 40 for v in _psnr_rows(printed))
    assert "test_psnr_50pct_macs" in read_checkpoint(slim).meta["metrics"]
    # resample tunes the INN's partition on the image loss by default, and scores PSNR
    small = tmp_path / "small.safetensors"
    args = ["resample", str(inn), "--target-macs", "0.5", "--tune-steps", "3", "--out", str(small)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "tuned the partition for 3 steps" in printed and "test PSNR dB" in printed
    assert 5 < read_checkpoint(small).meta["metrics"]["test_psnr"] < 40
    # TAS is for classifiers: a clear refusal, not a cross-entropy on images
    args = ["search", str(checkpoint), "--target-macs", "0.5", "--out", str(tmp_path / "s.json")]
    assert main(args) == 2
    assert "super-resolution model; TAS searches" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, match",
    [
        (["--model", "srcnn"], "do not fit"),
        (["--model", "tiny_convnet", "--data", "sr-skimage"], "do not fit"),
        (["--model", "tiny_convnet", "--scale", "2"], "--scale is for super-resolution"),
        (["--model", "edsr", "--data", "sr-skimage", "--scale", "5"], "scale must be one of"),
    ],
)
def test_train_refuses_mismatched_task_options(args, match, tmp_path, capsys):
    assert main(["train", *args, "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert match in capsys.readouterr().err
