"""Calibration: collect statistics with onnxruntime, then compute parameters."""
from .collect import augment_outputs, collect_statistics
from .statistics import ActivationStats
from .thresholds import balance_thresholds

__all__ = ["augment_outputs", "collect_statistics", "ActivationStats", "balance_thresholds"]
