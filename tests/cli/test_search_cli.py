"""`anywidth search` and `anywidth distill`: a shape in the band, a reloadable student."""

import json

import pytest
import torch

from anywidth.cli.main import main
from anywidth.measure import count_macs
from anywidth.train import load_model
from anywidth.train.checkpoint import read_checkpoint
from tests.cli.conftest import FAST, SOURCE_ACCURACY


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shape(_one_thread, trained_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("search")
    args = ["search", str(trained_checkpoint), "--target-macs", "0.5", "--epochs", "4"]
    args += ["--arch-lr", "0.1", "--plot", str(folder / "search.png")]
    assert main([*args, "--out", str(folder / "shape.json"), *FAST]) == 0
    return folder / "shape.json"


def test_search_writes_a_shape_inside_the_band(shape):
    data = json.loads(shape.read_text())
    assert abs(data["macs"] / data["original_macs"] - 0.5) <= 0.05
    assert len(data["log"]) == 4 and data["config"]["target_macs"] == 0.5
    assert set(data["plan"]) >= {"stem.0:out", "block2.conv1:out"}
    assert (shape.parent / "search.png").stat().st_size > 10_000


def test_distill_trains_the_shape_and_its_checkpoint_reloads(
    shape, trained_checkpoint, tmp_path, capsys
):
    out = tmp_path / "small"
    args = ["distill", str(trained_checkpoint), "--shape", str(shape), "--epochs", "2"]
    assert main([*args, "--lr", "0.05", "--out", str(out), "--batch-size", "64"]) == 0
    printed = capsys.readouterr().out
    model, meta = load_model(out / "last.safetensors")
    data = json.loads(shape.read_text())
    assert count_macs(model, torch.zeros(1, 1, 8, 8)) == data["macs"]
    assert meta["extra"]["distill"]["temperature"] == 4.0
    assert [s["kind"] for s in meta["extra"]["steps"]] == ["cut"]
    before, after = (
        float(line.split("|")[4]) / 100
        for line in printed.splitlines()
        if line.startswith(("| before", "| after"))
    )
    assert before == pytest.approx(SOURCE_ACCURACY, abs=0.01)
    assert after > 0.5  # half the MACs of a one-epoch teacher (79.7%); chance is 10%
    assert read_checkpoint(out / "last.safetensors").meta["epoch"] == 2


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        ("search", ["--target-macs", "0.5", "--out", "s.txt"], "use a .json file name"),
        ("search", ["--target-macs", "1.5", "--out", "s.json"], "SearchConfig.target_macs=1.5"),
        ("search", ["--target-macs", "0.01", "--out", "s.json"], "below the smallest shape"),
        ("search", ["--target-macs", "0.5", "--fixed", "stem.0:ou", "--out", "s.json"],
         "did you mean 'stem.0:out'"),
        ("distill", ["--shape", "missing.json", "--out", "d"], "write one with `anywidth search`"),
    ],
    ids=["suffix", "above-one", "unreachable", "fixed-typo", "no-shape"],
)  # fmt: skip
def test_errors_are_clear(command, options, message, trained_checkpoint, tmp_path, capsys):
    options = [
        str(tmp_path / o) if o.endswith((".txt", ".json")) or o == "d" else o for o in options
    ]
    assert main([command, str(trained_checkpoint), *options, *FAST]) == 2
    assert message in capsys.readouterr().err
