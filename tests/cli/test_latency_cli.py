"""--target-latency on every command that compresses (prune, decompose, resample, beside
`compress`): the budget reaches the method's config and the report says the speed-up.
Times are MAC counts (tests/_clock.py), so latency is MACs and the budget is exact."""

from __future__ import annotations

import pytest
import torch

from anywidth.cli.main import main
from anywidth.lowrank import _latency as lowrank_latency
from anywidth.measure import count_macs
from anywidth.pruning import _latency as prune_latency
from anywidth.slim import _latency as slim_latency
from anywidth.train import load_model
from tests._clock import fake_clock
from tests.cli.conftest import FAST


@pytest.mark.parametrize(
    "command, where",
    [("prune", prune_latency), ("decompose", lowrank_latency), ("resample", slim_latency)],
    ids=["prune", "decompose", "resample"],
)
def test_every_compressing_command_takes_a_latency_budget(
    command, where, trained_checkpoint, tmp_path, capsys, monkeypatch
):
    measured = fake_clock(monkeypatch, where)
    source = trained_checkpoint
    extra = []
    if command == "resample":
        source = tmp_path / "model.inn.safetensors"
        assert main(["integrate", str(trained_checkpoint), "--out", str(source), *FAST]) == 0
        extra = ["--tune-steps", "2"]
    out = tmp_path / "small.safetensors"
    args = [command, str(source), "--target-latency", "0.5", "--out", str(out), *extra]
    assert main([*args, *FAST]) == 0
    printed = capsys.readouterr().out
    assert "budget latency=0.5: met" in printed
    assert "speed-up 2.0" in printed or "speed-up 1.9" in printed  # MACs: 2x within 5%
    assert measured  # the result was measured beside the original
    small, _ = load_model(out)
    original, _ = load_model(trained_checkpoint)
    x = torch.randn(1, 1, 8, 8)
    assert count_macs(small, x) / count_macs(original, x) == pytest.approx(0.5, rel=0.05)


def test_a_latency_target_excludes_the_other_targets(trained_checkpoint, tmp_path, capsys):
    args = ["prune", str(trained_checkpoint), "--target-latency", "0.5", "--target-macs", "0.5",
            "--out", str(tmp_path / "small.safetensors")]  # fmt: skip
    with pytest.raises(SystemExit):
        main(args)
    assert "not allowed with argument" in capsys.readouterr().err
