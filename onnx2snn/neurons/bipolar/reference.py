"""Numpy reference of the ``BIFNeuron`` op (domain ``onnx2snn``, version 1).

A bipolar integrate-and-fire neuron (Su et al. 2024, "CRNN-SNN conversion")
with a bounded spike count: it can take back a spike it fired too early, and
it never fires more than L net spikes. Same layout as ``IFNeuron``: time folded
into the batch axis, time-major, ``x`` of shape ``[T·N, C, ...]`` with row
``t·N + n`` = step ``t`` of sample ``n``.

Every element has a membrane potential ``v`` (from ``v_init``, broadcast to one
step ``[N, C, ...]``, or 0) and a spike count ``k`` (from 0). For t = 0 … T−1,
in order, ``v`` in float32 and ``k`` an integer::

    v ← v + x_t
    if   v ≥ θ_c and k < L:  s = +1,  v ← v − θ_c,  k ← k + 1
    elif v < 0   and k > m:  s = −1,  v ← v + θ_c,  k ← k − 1
    else:                    s =  0
    y_t = s·θ_c                                   (+θ_c, −θ_c or 0)

θ_c is the threshold of the element's channel (axis 1), from a threshold of
shape ``[]``, ``[1]`` or ``[C]``; L = ``levels`` ≥ 1 and m = ``min_level`` ≤ 0
(default 0; negative for signed quantized activations, e.g. a QDQ pair with a
zero point inside the range, whose count runs over [m, L]).

Why these two conditions: in real arithmetic v = v_init + Σx − k·θ, and a
neuron whose input has stopped changing is at rest (fires no more) exactly when
k = clip(floor((v_init + Σx)/θ), m, L). From any other count it moves one step
towards that value per time step (a positive spike when k is too small, since
then v ≥ θ; a negative one when too large, since then v < 0). So after the last
input arrives, at most L − m steps bring the total output Σ_t y_t = k·θ to the
quantized activation θ·clip(floor((v_init + Σx)/θ), m, L) — with v_init = θ/2,
to round-half-up. That is the lossless conversion of quantized ANNs.

Invariant: the output has the shape of ``x``, dtype float32, every element in
{−θ_c, 0, θ_c}; the running count Σ_{τ≤t} y_τ/θ_c of each element stays in
[m, L]. The C++ kernel (``custom_ops/src/cpu/bif_neuron.cc``) matches this function
bit for bit.
"""

from __future__ import annotations

import numpy as np

from .._inputs import check_int, prepare

__all__ = ["bif_neuron"]


def bif_neuron(
    x: np.ndarray,
    threshold: np.ndarray | float,
    v_init: np.ndarray | float | None = None,
    *,
    timesteps: int,
    levels: int,
    min_level: int = 0,
) -> np.ndarray:
    """Run bipolar IF neurons with spike counts bounded to [min_level, levels] over ``timesteps`` steps.

    Args:
        x: input current, shape ``[T·N, C, ...]`` (rank ≥ 2), converted to float32.
        threshold: θ, shape ``[]``, ``[1]`` or ``[C]`` with ``C = x.shape[1]``.
        v_init: initial potential, numpy-broadcastable to one step ``[N, C, ...]``;
            ``None`` means 0.
        timesteps: T ≥ 1; ``x.shape[0]`` must be a multiple of it.
        levels: L ≥ 1, the largest spike count.
        min_level: m ≤ 0, the smallest spike count.

    Returns:
        Spikes carrying amplitude ±θ: float32 array of ``x``'s shape, values in ``{−θ_c, 0, θ_c}``.

    Raises:
        ValueError: on a bad ``timesteps``/``levels`` or on inconsistent shapes.
    """
    steps = check_int("BIFNeuron", "timesteps", timesteps, 1)
    top = check_int("BIFNeuron", "levels", levels, 1)
    bottom = -check_int("BIFNeuron", "-min_level", -min_level, 0)
    x_steps, theta_b, v = prepare("BIFNeuron", x, threshold, v_init, steps)
    count = np.zeros(v.shape, dtype=np.int32)
    y = np.empty_like(x_steps)
    zero = np.float32(0.0)
    for t in range(steps):
        v = v + x_steps[t]
        up = (v >= theta_b) & (count < top)
        down = ~up & (v < zero) & (count > bottom)
        y[t] = np.where(up, theta_b, np.where(down, -theta_b, zero))
        v = np.where(up, v - theta_b, np.where(down, v + theta_b, v))
        count = count + up.astype(np.int32) - down.astype(np.int32)
    return y.reshape(np.shape(x))
