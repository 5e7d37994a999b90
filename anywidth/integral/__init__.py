"""Integral Neural Networks: weight functions, quadratures, partitions, conversion, resampling.

The workflow: `to_integral` converts a trained model; `train_integral_` trains it with random
widths (`WidthTrainConfig`); `tune_partition` tunes the sampling points for one plan
(`TuneConfig`); `IntegralModel.resample` exports a plain smaller model; `save_integral` and
`load_integral` keep it.

Example:
    >>> from anywidth.integral import IntegralConfig, to_integral
    >>> inn = to_integral(model, torch.randn(1, 3, 32, 32), IntegralConfig(rule="trapezoid"))
    >>> small = inn.resample(target_macs=0.5)   # a plain, smaller nn.Module
"""

from anywidth.integral.config import IntegralConfig
from anywidth.integral.convert import to_integral
from anywidth.integral.grid import Grid, TrainableGrid, UniformGrid, make_grid
from anywidth.integral.interpolation import cubic_kernel, interpolation_matrix, sample
from anywidth.integral.io import load_integral, save_integral
from anywidth.integral.model import IntegralModel
from anywidth.integral.ordering import channel_order, distance_matrix, path_length
from anywidth.integral.partition import TrainablePartition, uniform_points
from anywidth.integral.quadrature import QUADRATURE_RULES, quadrature_weights
from anywidth.integral.training import (
    WidthTrainConfig,
    random_plan,
    recalibrate_integral_bn_,
    train_integral_,
    width_random_loss,
)
from anywidth.integral.tuning import TuneConfig, tune_partition

__all__ = [
    "QUADRATURE_RULES",
    "Grid",
    "IntegralConfig",
    "IntegralModel",
    "TrainableGrid",
    "TrainablePartition",
    "TuneConfig",
    "UniformGrid",
    "WidthTrainConfig",
    "channel_order",
    "cubic_kernel",
    "distance_matrix",
    "interpolation_matrix",
    "load_integral",
    "make_grid",
    "path_length",
    "quadrature_weights",
    "random_plan",
    "recalibrate_integral_bn_",
    "sample",
    "save_integral",
    "to_integral",
    "train_integral_",
    "tune_partition",
    "uniform_points",
    "width_random_loss",
]
