import pytest

from anywidth.cli.main import main

# Large batches keep the CLI tests quick: fewer steps, recalibration and evaluation batches.
FAST = ["--batch-size", "256"]

# One epoch at batch size 16 (68 steps, ~2 s): 79.7% test accuracy with the default --seed
# (chance is 10%), enough for the accuracy levels the tests assert to tell a working
# pipeline from a broken one.
SOURCE_ACCURACY = 0.797


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """A tiny_resnet trained for one epoch on digits through `anywidth train`."""
    out = tmp_path_factory.mktemp("trained")
    args = ["train", "--model", "tiny_resnet", "--epochs", "1", "--batch-size", "16"]
    assert main([*args, "--out", str(out)]) == 0
    return out / "last.safetensors"
