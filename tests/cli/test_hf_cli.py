"""--hf-model: the CLI takes a Hugging Face encoder instead of a checkpoint (the runs on
MiniLM itself are left to benchmarks/transformers.py: loading it costs seconds)."""

import pytest

from anywidth.cli.main import main
from anywidth.models.hf import NLP_EXTRA, hf_available


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


@pytest.mark.skipif(not hf_available(), reason=f"needs the nlp extra: {NLP_EXTRA}")
def test_prune_minilm_writes_safetensors_that_load_back(tmp_path, capsys):
    from anywidth.models.hf import load_hf_checkpoint

    out = tmp_path / "small.safetensors"
    args = ["prune", "--hf-model", "minilm", "--target-macs", "0.75", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "embedding cosine to full" in printed and "heads ×" in printed
    small = load_hf_checkpoint(out)
    heads = [layer.attention.self.num_attention_heads for layer in small.encoder.layer]
    assert sum(heads) < 6 * 12  # whole heads were dropped somewhere
