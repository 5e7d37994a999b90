"""Integral Neural Networks: weight functions, quadratures, partitions and channel ordering."""

from anywidth.integral.interpolation import cubic_kernel, interpolation_matrix, sample
from anywidth.integral.ordering import channel_order, distance_matrix, path_length
from anywidth.integral.partition import TrainablePartition, uniform_points
from anywidth.integral.quadrature import QUADRATURE_RULES, quadrature_weights

__all__ = [
    "QUADRATURE_RULES",
    "TrainablePartition",
    "channel_order",
    "cubic_kernel",
    "distance_matrix",
    "interpolation_matrix",
    "path_length",
    "quadrature_weights",
    "sample",
    "uniform_points",
]
