"""`anywidth compress`: one command over anywidth.compress for every method; the written
model reloads with the reported size and accuracy."""

from __future__ import annotations

import re

import pytest
import torch

from anywidth.cli.main import main
from anywidth.data import make_loaders
from anywidth.lowrank import _latency as lowrank_latency
from anywidth.measure import count_macs, evaluate
from anywidth.record import get_record
from anywidth.slim import _latency as slim_latency
from anywidth.train import load_model, read_checkpoint
from tests._clock import fake_clock
from tests.cli.conftest import FAST


@pytest.mark.parametrize(
    "method, extra",
    [("prune", []), ("lowrank", []), ("inn", ["--tune-steps", "2"]), ("slim", []),
     ("search", ["--epochs", "1", "--tolerance", "0.3"])],
    ids=["prune", "lowrank", "inn", "slim", "search"],
)  # fmt: skip
def test_compress_writes_a_model_at_the_budget(method, extra, trained_checkpoint, tmp_path, capsys):
    out = tmp_path / f"{method}.safetensors"
    args = ["compress", str(trained_checkpoint), "--method", method, "--target-macs", "0.5"]
    assert main([*args, *extra, *FAST, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{method}: ") and "budget macs=0.5: met" in printed
    assert "recalibrated BatchNorm" in printed and f"wrote {out}" in printed
    small, meta = load_model(out)
    source, _ = load_model(trained_checkpoint)
    record = meta["extra"]["compress"]
    x = torch.randn(1, 1, 8, 8)
    assert record["after"]["macs"] == count_macs(small, x) == meta["metrics"]["macs"]
    assert record["before"]["macs"] == count_macs(source, x)
    tolerance = 0.3 if method == "search" else 0.02
    assert abs(count_macs(small, x) / count_macs(source, x) - 0.5) <= tolerance * 0.5
    test = make_loaders("digits", batch_size=256).test
    assert meta["metrics"]["test_accuracy"] == pytest.approx(evaluate(small, test)["accuracy"])
    assert read_checkpoint(out).meta["extra"]["data"]["name"] == "digits"


@pytest.mark.parametrize(
    "args, match",
    [
        (["--method", "prune", "--target-macs", "5"], r"Budget.absolute\(macs=5.0\)"),
        (["--method", "search", "--target-params", "0.5"], "the search targets MACs"),
        (["--method", "prune", "--target-macs", "0.5", "--out", "x.pt"], "use a .safetensors"),
    ],
    ids=["count", "search-params", "out"],
)
def test_compress_errors_are_one_line(args, match, trained_checkpoint, tmp_path, capsys):
    full = ["compress", str(trained_checkpoint), *args]
    if "--out" not in args:
        full += ["--out", str(tmp_path / "small.safetensors")]
    assert main([*full, *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("anywidth compress: error: ")
    assert re.search(match, err)


def test_compress_takes_an_integral_model_from_integrate(trained_checkpoint, tmp_path, capsys):
    inn = tmp_path / "model.inn.safetensors"
    assert main(["integrate", str(trained_checkpoint), "--out", str(inn), *FAST]) == 0
    out = tmp_path / "small.safetensors"
    args = ["compress", str(inn), "--target-macs", "0.5", "--out", str(out), *FAST]
    assert main([*args, "--method", "prune"]) == 2
    assert "is an integral model: use --method inn" in capsys.readouterr().err
    assert main([*args, "--method", "inn", "--tune-steps", "2"]) == 0
    assert "inn: " in capsys.readouterr().out
    small, meta = load_model(out)
    assert meta["extra"]["data"]["name"] == "digits"
    assert meta["metrics"]["macs"] == count_macs(small, torch.randn(1, 1, 8, 8))


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--target-latency", "0.5", "--runtime", "torch"], "budget latency=0.5"),
        (["--target-macs", "0.5", "--runtime", "onnxruntime"], "(onnxruntime, batch 1, 1 thread)"),
    ],
    ids=["latency-budget", "onnxruntime-report"],
)
def test_compress_measures_latency_on_the_runtime(args, expected, trained_checkpoint, tmp_path,
                                                  capsys):  # fmt: skip
    pytest.importorskip("onnxruntime")
    out = tmp_path / "small.safetensors"
    lut = str(tmp_path / "lut")
    full = ["compress", str(trained_checkpoint), "--method", "prune", *args, "--batch", "1",
            "--threads", "1", "--latency-cache", lut, "--out", str(out)]  # fmt: skip
    assert main([*full, *FAST]) == 0
    printed = capsys.readouterr().out
    assert expected in printed and "speed-up" in printed and "measured" in printed
    if "--target-latency" in args:
        assert list((tmp_path / "lut").glob("layers-torch-b1-t1-*.json"))


@pytest.mark.parametrize("method", ["lowrank", "slim"])
def test_compress_meets_a_latency_budget_with_round_to(method, trained_checkpoint, tmp_path,
                                                       capsys, monkeypatch):  # fmt: skip
    where = lowrank_latency if method == "lowrank" else slim_latency
    fake_clock(monkeypatch, where)  # MAC counts for times: the test needs no timer
    out = tmp_path / "small.safetensors"
    args = ["compress", str(trained_checkpoint), "--method", method, "--target-latency", "0.5",
            "--round-to", "4", "--out", str(out)]  # fmt: skip
    assert main([*args, *FAST]) == 0
    printed = capsys.readouterr().out
    assert "budget latency=0.5: met" in printed and "per-layer latency table" in printed
    small, _ = load_model(out)
    if method == "lowrank":
        ranks = get_record(small).steps[-1]["layers"]
        assert ranks and all(k * j % 4 == 0 for k, j in ranks.values()), ranks
