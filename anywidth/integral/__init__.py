"""Integral Neural Networks: weight functions, quadratures, partitions, conversion, resampling.

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

__all__ = [
    "QUADRATURE_RULES",
    "Grid",
    "IntegralConfig",
    "IntegralModel",
    "TrainableGrid",
    "TrainablePartition",
    "UniformGrid",
    "channel_order",
    "cubic_kernel",
    "distance_matrix",
    "interpolation_matrix",
    "load_integral",
    "make_grid",
    "path_length",
    "quadrature_weights",
    "sample",
    "save_integral",
    "to_integral",
    "uniform_points",
]
