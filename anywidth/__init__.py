"""anywidth: make a trained network smaller by changing the width of its layers."""

from importlib.metadata import PackageNotFoundError, version

from anywidth.models import create_model, list_models, register_model

# Registers the checkpoint hooks that rebuild cut (pruned, resampled) models on load.
import anywidth.train  # noqa: E402, F401  isort: skip

# Registers the hook that lets load_model read IntegralModel checkpoints.
import anywidth.integral.io  # noqa: E402, F401  isort: skip

# Registers how load_model replays low-rank decompositions.
import anywidth.lowrank  # noqa: E402, F401  isort: skip

# Registers how load_model replays blocks a TAS search skipped.
import anywidth.search  # noqa: E402, F401  isort: skip

try:
    __version__ = version("anywidth")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__", "create_model", "list_models", "register_model"]
