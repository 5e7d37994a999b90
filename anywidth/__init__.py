"""anywidth: make a trained network smaller by changing the width of its layers.

Example:
    >>> import anywidth
    >>> from anywidth.pruning import PruneConfig
    >>> model = anywidth.create_model("resnet20", num_classes=10)
    >>> x = torch.randn(1, 3, 32, 32)
    >>> config = PruneConfig(budget=anywidth.Budget(macs=0.5))
    >>> small, report = anywidth.compress(model, x, config, data=loaders)
    >>> print(report)   # params, MACs and accuracy before and after, and what was done
"""

from importlib.metadata import PackageNotFoundError, version

from anywidth.compression import Budget, CompressionReport, compress
from anywidth.models import create_model, list_models, register_model

# Registers the checkpoint hooks that rebuild cut (pruned, resampled) models on load.
import anywidth.train  # noqa: E402, F401  isort: skip

# Registers the hook that lets load_model read IntegralModel checkpoints.
import anywidth.integral.io  # noqa: E402, F401  isort: skip

# Registers how load_model replays low-rank decompositions.
import anywidth.lowrank  # noqa: E402, F401  isort: skip

# Registers how load_model replays blocks a TAS search skipped (and compress's TAS handler).
import anywidth.search  # noqa: E402, F401  isort: skip

# Register compress's handlers for PruneConfig and ShrinkConfig.
import anywidth.pruning  # noqa: E402, F401  isort: skip
import anywidth.slim  # noqa: E402, F401  isort: skip

try:
    __version__ = version("anywidth")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

__all__ = [
    "Budget",
    "CompressionReport",
    "__version__",
    "compress",
    "create_model",
    "list_models",
    "register_model",
]
