"""Threshold balancing: each neuron's threshold from the calibration statistics.

θ = max activation (Diehl et al. 2015), or the p-th percentile of the positive
activations (Rueckauer et al. 2017), per layer or per channel. A channel that
never fired during calibration gets its layer's threshold; a layer that never
fired gets 1.0 (its neurons then stay silent, like the ReLUs they replace).

Invariant: every threshold returned is positive and finite, of shape [] or [C].
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..config import ThresholdMethod, ThresholdSpec
from .statistics import ActivationStats


def balance_thresholds(stats: Mapping[str, ActivationStats], spec: ThresholdSpec) -> dict[str, np.ndarray]:
    table = {}
    for name, s in stats.items():
        value = s.max if spec.method is ThresholdMethod.MAX else s.percentile(spec.percentile)
        value = np.asarray(value, dtype=np.float64)
        layer = float(value.max()) if value.size and value.max() > 0 else 1.0
        value = np.where(value > 0, value, layer)
        table[name] = (value if s.channel_wise else np.asarray(value[0])).astype(np.float32)
    return table
