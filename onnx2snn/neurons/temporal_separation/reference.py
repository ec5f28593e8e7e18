"""Numpy reference of the ``TSNeuron`` op (domain ``onnx2snn``, version 1).

An integrate-then-fire neuron with temporal separation (SpikeConverter, Liu et
al. 2022): it first integrates its whole input over the T steps (accumulation
phase), then emits its spikes (firing phase). Same layout as ``IFNeuron``:
time folded into the batch axis, time-major, ``x`` of shape ``[T·N, C, ...]``
with row ``t·N + n`` = step ``t`` of sample ``n``; the output spikes carry
amplitude θ.

Per element, in float32, with v from ``v_init`` (broadcast to one step
``[N, C, ...]``) or 0::

    accumulation   for t = 0 … T−1, in order:  v ← v + x_t
    count          q = v / θ_c                               (one float32 division)
    firing         y_t = θ_c if q ≥ t + 1 else 0             (t + 1 rounded to float32)

θ_c is the threshold of the element's channel (axis 1), from a threshold of
shape ``[]``, ``[1]`` or ``[C]``. For finite q the neuron fires at the steps
t < n with

    n = #{t < T : q ≥ t + 1} = clip(⌊q⌋, 0, T)      (q = NaN or −∞: n = 0; +∞: n = T)

since t + 1 ≤ q ⟺ t + 1 ≤ ⌊q⌋ for integers t + 1 (exact as float32 for T ≤ 2²⁴).
In real arithmetic, with V = v_init + Σ_t x_t,

    n = clip(⌊V/θ⌋, 0, T),     mean output  ȳ = (1/T)·Σ_t y_t = θ/T · n.

The count depends on the input only through its time average x̄ = Σ_t x_t / T:

    v_init = 0:     ȳ = θ/T · clip(⌊T·x̄/θ⌋, 0, T)        (T-level clip-floor of x̄)
    v_init = θ/2:   ȳ = θ/T · clip(⌊T·x̄/θ + ½⌋, 0, T)    (T-level clip-round, half up)

i.e. the neuron is exactly the T-level quantiser q_T of the ANN activation —
not a rate that converges to it. Because the output is a function of x̄ only,
a network of such neurons joined by linear layers (which commute with the time
average) equals the ANN with every ReLU replaced by q_T.

Prefix property: each element's spikes occupy the first n steps. A max over
a window of prefix trains of one channel (one θ) is the prefix train of the
largest count, max_i θ·[t < n_i] = θ·[t < max_i n_i], so MaxPool applied to
TSNeuron spikes is exact: it equals max pooling of the quantised activations.

Invariant: the output has the shape of ``x``, dtype float32, every element in
{0, θ_c}, and along t each element's train is non-increasing (a prefix of
spikes). The C++ kernel (``custom_ops/src/cpu/ts_neuron.cc``) matches this
function bit for bit.
"""

from __future__ import annotations

import numpy as np

from .._inputs import check_int, prepare

__all__ = ["ts_neuron"]


def ts_neuron(
    x: np.ndarray,
    threshold: np.ndarray | float,
    v_init: np.ndarray | float | None = None,
    *,
    timesteps: int,
) -> np.ndarray:
    """Integrate ``x`` over all ``timesteps`` steps, then fire ``clip(⌊v/θ⌋, 0, T)`` spikes first.

    Args:
        x: input current, shape ``[T·N, C, ...]`` (rank ≥ 2), converted to float32.
        threshold: θ, shape ``[]``, ``[1]`` or ``[C]`` with ``C = x.shape[1]``.
        v_init: initial potential, numpy-broadcastable to one step ``[N, C, ...]``;
            ``None`` means 0.
        timesteps: T ≥ 1; ``x.shape[0]`` must be a multiple of it.

    Returns:
        Spikes carrying amplitude θ: float32 array of ``x``'s shape, values in ``{0, θ_c}``,
        each element's spikes at the first n steps.

    Raises:
        ValueError: on a bad ``timesteps`` or on inconsistent shapes.
    """
    steps = check_int("TSNeuron", "timesteps", timesteps, 1)
    x_steps, theta_b, v = prepare("TSNeuron", x, threshold, v_init, steps)
    for t in range(steps):
        v = v + x_steps[t]
    q = v / theta_b
    levels = np.arange(1, steps + 1).astype(np.float32).reshape((steps,) + (1,) * q.ndim)
    y = np.where(q >= levels, theta_b, np.float32(0.0)).astype(np.float32)
    return y.reshape(np.shape(x))
