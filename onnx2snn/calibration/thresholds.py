"""Threshold balancing: each neuron's threshold from the calibration statistics.

- ``max``: θ = the largest activation (Diehl et al. 2015);
- ``percentile:p``: the p-th percentile of the positive activations
  (Rueckauer et al. 2017);
- ``mse``: θ = argmin_θ Σ (a − q_T(a; θ))² over the calibration activations,
  where q_T(a; θ) = θ/T · clip(⌊a·T/θ + δ⌋, 0, T) is the value a spike count of
  T steps can represent (δ = 0 from rest, δ = ½ with v_init = θ/2, which turns
  flooring into rounding). Searched over 200 candidates θ = max·k/200 on the
  histogram (bin centres weighted by counts);
- ``ltb``: computed by :mod:`.ltb` (iterative, needs onnxruntime runs).

Per layer or per channel. A channel that never fired during calibration gets
its layer's threshold; a layer that never fired gets 1.0 (its neurons then
stay silent, like the ReLUs they replace).

Invariant: every threshold returned is positive and finite, of shape [] or [C].
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..config import ThresholdMethod, ThresholdSpec
from .statistics import ActivationStats

MSE_CANDIDATES = 200


def quantize(a: np.ndarray, theta: np.ndarray, timesteps: int, offset: float = 0.0) -> np.ndarray:
    """q_T(a; θ): the T-level clip-floor (offset ½: clip-round) of ``a``."""
    return theta / timesteps * np.clip(np.floor(a * timesteps / theta + offset), 0, timesteps)


def mse_threshold(stats: ActivationStats, timesteps: int, offset: float = 0.0) -> np.ndarray:
    """Per group, the candidate θ with the least quantisation error on the histogram."""
    centres = (np.arange(stats.bins) + 0.5)[None, :] * stats.width[:, None]       # [G, B]
    best = np.zeros(stats.max.shape[0])
    for g in range(stats.max.shape[0]):
        if stats.max[g] <= 0:
            continue
        thetas = stats.max[g] * np.arange(1, MSE_CANDIDATES + 1) / MSE_CANDIDATES  # [K]
        # bin centres stand for their values; none is above the largest value seen
        c, h = np.minimum(centres[g][stats.hist[g] > 0], stats.max[g]), stats.hist[g][stats.hist[g] > 0]
        q = quantize(c[None, :], thetas[:, None], timesteps, offset)                # [K, B']
        err = ((c[None, :] - q) ** 2 * h[None, :]).sum(axis=1)
        best[g] = thetas[int(np.argmin(err))]
    return best


def balance_thresholds(stats: Mapping[str, ActivationStats], spec: ThresholdSpec, timesteps: int | None = None,
                       half_init: bool = False) -> dict[str, np.ndarray]:
    table = {}
    for name, s in stats.items():
        if spec.method is ThresholdMethod.MAX:
            value = s.max
        elif spec.method is ThresholdMethod.PERCENTILE:
            value = s.percentile(spec.percentile)
        elif spec.method is ThresholdMethod.MSE:
            if timesteps is None:
                raise ValueError("the mse threshold needs the number of time steps")
            value = mse_threshold(s, timesteps, 0.5 if half_init else 0.0)
        else:
            raise ValueError(f"{spec.method.value} thresholds are not computed from histograms")
        table[name] = finalize(value, s.channel_wise)
    return table


def finalize(value, channel_wise: bool) -> np.ndarray:
    """Dead channels → the layer's value, dead layers → 1.0; shape [C] or []."""
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    layer = float(value.max()) if value.size and value.max() > 0 else 1.0
    value = np.where(value > 0, value, layer)
    return (value if channel_wise else np.asarray(value[0])).astype(np.float32)


def half_potentials(thresholds: Mapping[str, np.ndarray], ranks: Mapping[str, int]) -> dict[str, np.ndarray]:
    """v_init = θ/2 for every neuron, shaped to broadcast over one sample [C, ...]."""
    return {n: (t / 2).reshape([-1] + [1] * (ranks[n] - 2)) if t.ndim else t / 2 for n, t in thresholds.items()}
