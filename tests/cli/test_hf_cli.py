"""--hf-model: the CLI takes a Hugging Face encoder instead of a checkpoint (the runs on
MiniLM itself are left to benchmarks/transformers.py: loading it costs seconds)."""

import pytest

from anywidth.cli.main import main


@pytest.mark.parametrize("command", ["prune", "resample"])
def test_a_checkpoint_and_an_hf_model_together_or_neither_are_an_error(command, tmp_path, capsys):
    out = str(tmp_path / "small.safetensors")
    assert main([command, "--target-macs", "0.5", "--out", out]) == 2
    assert "either" in capsys.readouterr().err
    assert main([command, "a.safetensors", "--hf-model", "minilm", "--target-macs", "0.5",
                 "--out", out]) == 2  # fmt: skip
    assert "--hf-model" in capsys.readouterr().err


def test_integrate_says_it_cannot_save_an_hf_inn_yet(tmp_path, capsys):
    out = str(tmp_path / "inn.safetensors")
    assert main(["integrate", "--hf-model", "minilm", "--out", out]) == 2
    assert "resample --hf-model" in capsys.readouterr().err
