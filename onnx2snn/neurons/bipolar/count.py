"""Numpy reference of the ``BIFCount`` op (domain ``onnx2snn``, version 1).

The bipolar integrate-and-fire neuron of ``BIFNeuron`` written in count form,
for the exact evaluation of a BIF SNN (``--form cumulative``). Same layout:
time folded into the batch axis, time-major, row ``t·N + n`` = step ``t`` of
sample ``n``.

The input is the neuron's *target level* at every step, τ_t = floor(α·V_t + β)
of its cumulative input V_t = Σ_{s≤t} x_s (computed by the graph with the
ANN's own quantizer ops); the output is its spike count k_t after step t
(k starts at 0, one spike of ±1 per step at most)::

    up   = τ_t > k  and  k < L        (clip(τ_t, m, L) > k; needs k ≥ m)
    down = τ_t < k  and  k > m        (clip(τ_t, m, L) < k; needs k ≤ L)
    k    ← k + up − down;     y_t = k

Why it is the same neuron: a BIFNeuron with θ = 1/α and v_init = β·θ has, before
firing at step t, potential v = β·θ + V_t − k·θ. It fires +1 when v ≥ θ and k < L,
i.e. when α·V_t + β ≥ k + 1, i.e. τ_t ≥ k + 1; it fires −1 when v < 0 and k > m,
i.e. when α·V_t + β < k, i.e. τ_t ≤ k − 1. In real arithmetic both forms emit
the same spikes; in float32 the count form compares integers, so when the graph
computes V_t with the ANN's own ops on the cumulative counts, the count at the
last step equals the ANN's quantized level bit for bit.

L = ``levels`` ≥ 1 and m = ``min_level`` ≤ 0 (default 0) bound the count, as
for ``BIFNeuron``.

Invariant: the output has the shape of ``x``, dtype float32, integer values in
[m, L] that change by at most 1 per step; a NaN target leaves the count
unchanged. The C++ kernel (``custom_ops/src/cpu/bif_count.cc``) matches this
function bit for bit.
"""
from __future__ import annotations

import numpy as np

from .._inputs import check_int

__all__ = ["bif_count"]


def bif_count(x: np.ndarray, *, timesteps: int, levels: int, min_level: int = 0) -> np.ndarray:
    """Spike counts after every step for target levels ``x`` [T·N, ...] (float32 output)."""
    steps = check_int("BIFCount", "timesteps", timesteps, 1)
    top = np.float32(check_int("BIFCount", "levels", levels, 1))
    bottom = np.float32(-check_int("BIFCount", "-min_level", -min_level, 0))
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 1 or x.shape[0] % steps != 0:
        raise ValueError(f"BIFCount: X.shape[0] must be a multiple of timesteps = {steps}, got shape {x.shape}")
    x_steps = x.reshape((steps, -1))
    k = np.zeros(x_steps.shape[1], np.float32)
    y = np.empty_like(x_steps)
    for t in range(steps):
        up = (x_steps[t] > k) & (k < top)
        down = (x_steps[t] < k) & (k > bottom)
        k = k + up.astype(np.float32) - down.astype(np.float32)
        y[t] = k
    return y.reshape(x.shape)
