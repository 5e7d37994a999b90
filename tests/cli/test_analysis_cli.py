"""`anywidth rank-study`, `ranks` and `channel-search`: files written, tables printed, errors."""

import csv

import pytest
import torch

from anywidth.cli.main import main
from tests.cli.conftest import FAST


def test_rank_study_writes_csv_png_and_findings(tmp_path, capsys) -> None:
    args = ["rank-study", "--out", str(tmp_path), "--networks", "2", "--kinds", "conv1x1"]
    threads = torch.get_num_threads()
    assert main([*args, "--activations", "identity", "relu"]) == 0
    assert torch.get_num_threads() == threads  # --threads 1 only for the study
    printed = capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "rank_study.csv").open()))
    assert len(rows) == 2 * 10  # two activations, ten ratios
    identity = {float(r["ratio"]): float(r["mean"]) for r in rows if r["activation"] == "identity"}
    assert identity[1.0] == 1.0
    assert (tmp_path / "rank_study.png").read_bytes()[:4] == b"\x89PNG"
    assert "- nonlinearities expand rank: reproduced" in printed
    assert "- depthwise needs a higher ratio: not tested" in printed


def test_rank_study_rejects_an_unknown_kind(tmp_path, capsys) -> None:
    assert main(["rank-study", "--out", str(tmp_path), "--kinds", "conv7x7"]) == 2
    assert "RankStudyConfig.kinds=['conv7x7']; choose from" in capsys.readouterr().err


def test_ranks_prints_every_layer_and_plots(trained_checkpoint, tmp_path, capsys) -> None:
    plot = tmp_path / "ranks.png"
    assert main(["ranks", str(trained_checkpoint), *FAST, "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "| layer" in printed and "rank ratio" in printed
    assert "rtol 0.001;" in printed
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_ranks_names_a_wrong_layer(trained_checkpoint, capsys) -> None:
    assert main(["ranks", str(trained_checkpoint), *FAST, "--layers", "nope"]) == 2
    assert "layers pattern 'nope' matches no module" in capsys.readouterr().err


def test_prune_with_rank_ranking(trained_checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "small.safetensors"
    args = ["prune", str(trained_checkpoint), "--target-macs", "0.5", "--ranking", "rank"]
    assert main([*args, *FAST, "--out", str(out)]) == 0
    assert out.exists()


@pytest.mark.slow
def test_channel_search_compares_at_equal_macs(tmp_path, capsys) -> None:
    table = tmp_path / "cs.csv"
    args = ["channel-search", "--candidates", "linear", "stagewise", "--width-mult", "0.25"]
    args += ["--epochs", "1", "--seeds", "0", "--batch-size", "256"]
    assert main([*args, "--csv", str(table)]) == 0
    rows = {r["config"]: r for r in csv.DictReader(table.open())}
    assert set(rows) == {"linear", "stagewise"}
    macs = {n: int(r["MACs"]) for n, r in rows.items()}
    assert macs["stagewise"] == pytest.approx(macs["linear"], rel=0.03)
    assert len(rows["linear"]["channels"].split()) == 16
    assert 0.0 <= float(rows["linear"]["acc mean"]) <= 1.0
    assert "± 0.0" in capsys.readouterr().out  # one seed: no spread
