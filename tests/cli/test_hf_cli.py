"""--hf-model: the CLI takes a Hugging Face encoder instead of a checkpoint (the real
MiniLM: each command loads and traces it, seconds; the figures are benchmarks/transformers.py's)."""

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


def test_integrate_refuses_width_random_training_of_an_encoder(tmp_path, capsys):
    out = str(tmp_path / "inn.safetensors")
    assert main(["integrate", "--hf-model", "minilm", "--train-epochs", "1", "--out", out]) == 2
    assert "--train-epochs" in capsys.readouterr().err


@pytest.mark.skipif(not hf_available(), reason=f"needs the nlp extra: {NLP_EXTRA}")
def test_prune_minilm_writes_safetensors_that_load_back(tmp_path, capsys):
    from anywidth.models.hf import load_hf_checkpoint

    out = tmp_path / "small.safetensors"
    args = ["prune", "--hf-model", "minilm", "--target-macs", "0.5", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "embedding cosine to full" in printed and "heads ×" in printed
    small = load_hf_checkpoint(out)
    heads = [layer.attention.self.num_attention_heads for layer in small.encoder.layer]
    assert sum(heads) < 6 * 12  # whole heads were dropped somewhere


@pytest.mark.skipif(not hf_available(), reason=f"needs the nlp extra: {NLP_EXTRA}")
def test_info_shows_minilm_heads_and_mlp_widths(capsys):
    assert main(["info", "--hf-model", "minilm"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("12 heads × 32") == 6 and printed.count("1536 channels") == 6


@pytest.mark.skipif(not hf_available(), reason=f"needs the nlp extra: {NLP_EXTRA}")
def test_integrate_minilm_then_resample_the_saved_inn_with_partition_tuning(tmp_path, capsys):
    from anywidth.models.hf import load_hf_checkpoint

    inn, small = tmp_path / "minilm.inn.safetensors", tmp_path / "small.safetensors"
    assert main(["integrate", "--hf-model", "minilm", "--out", str(inn)]) == 0
    printed = capsys.readouterr().out
    cosines = [float(line.split("|")[-2]) for line in printed.splitlines() if "% MACs" in line]
    # 75/50/25% MACs, untuned (uniform partition): fidelity falls fast below 75%
    assert len(cosines) == 3 and 1.0 > cosines[0] > 0.4 and cosines[0] > cosines[1] > cosines[2]
    args = ["resample", str(inn), "--target-macs", "0.5", "--tune-steps", "3", "--out", str(small)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "partition tuned for 3 steps" in printed and "50.0% of the MACs" in printed
    cut = load_hf_checkpoint(small)
    heads = [layer.attention.self.num_attention_heads for layer in cut.encoder.layer]
    assert sum(heads) < 6 * 12

    # the INN records its source; when that folder is gone, --hf-model says where it is now
    from anywidth.integral import load_integral, save_integral
    from anywidth.models.hf import load_hf_model, minilm_path

    loaded = load_integral(inn, model=load_hf_model(minilm_path())[0])
    moved = save_integral(loaded, tmp_path / "moved.inn.safetensors",
                          metrics={"hf_source": str(tmp_path / "gone")})  # fmt: skip
    args = ["resample", str(moved), "--target-macs", "0.5", "--no-tune", "--out", str(small)]
    assert main(args) == 2
    assert "gone, which does not exist here; pass --hf-model PATH" in capsys.readouterr().err
    assert main([*args, "--hf-model", "minilm"]) == 0
    assert "partition not tuned" in capsys.readouterr().out
