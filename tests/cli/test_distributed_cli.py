"""`torchrun -m anywidth train` in 2 processes: one report, rank 0's checkpoints, and a
resume in 1 process; commands that do not train refuse to start under torchrun."""

import os
import subprocess
import sys

import pytest

from anywidth.cli import main as cli_main
from anywidth.train import read_checkpoint
from anywidth.train.distributed import Processes
from tests.train._processes import free_port


def test_torchrun_trains_once_reports_once_and_resumes_in_one_process(tmp_path, capsys):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", ANYWIDTH_DIST_TIMEOUT="60", ANYWIDTH_PROGRESS="0")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-port", str(free_port()), "-m", "anywidth", "train", "--model", "tiny_convnet",
        "--epochs", "1", "--batch-size", "256", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("test accuracy") == 1  # rank 1 trained but did not print
    assert read_checkpoint(out / "last.safetensors").meta["epoch"] == 1
    args = ["train", "--model", "tiny_convnet", "--epochs", "2", "--batch-size", "256"]
    assert cli_main.main([*args, "--out", str(out), "--resume"]) == 0
    assert read_checkpoint(out / "last.safetensors").meta["epoch"] == 2
    assert "| 2 " in capsys.readouterr().out


@pytest.mark.parametrize("command", [["eval", "x.safetensors"], ["info", "tiny_*"]])
def test_commands_that_do_not_train_refuse_torchrun(command, monkeypatch, capsys):
    monkeypatch.setattr(cli_main, "init_distributed", lambda: Processes(0, 2, 0))
    assert cli_main.main(command) == 2
    assert "runs in one process; start it without torchrun" in capsys.readouterr().err
