"""Numpy reference of the ``IFNeuron`` op (domain ``onnx2snn``, version 1).

Time is folded into the batch axis, time-major: ``x`` has shape ``[T·N, C, ...]``
and row ``t·N + n`` is step ``t`` of sample ``n``. Every element is an
integrate-and-fire neuron with membrane potential ``v``, starting at ``v_init``
(broadcast to one step ``[N, C, ...]``) or 0. For t = 0 … T−1, in order and in
float32 arithmetic::

    v ← v + x_t
    s = (v ≥ θ_c)
    y_t = θ_c if s else 0
    v ← (v − θ_c if reset == "subtract" else 0) if s else v

where θ_c is the threshold of the element's channel (axis 1), from a threshold
of shape ``[]``, ``[1]`` or ``[C]``.

Invariant: the output has the shape of ``x``, dtype float32, and every element is
0 or θ_c. With ``reset="subtract"`` and real arithmetic, the final potential is
``v_init + Σ_t x_t − θ_c · (number of spikes)``; float32 rounding perturbs this
balance, which is why this function fixes the exact operation order. It is the
ground truth for the C++ and CUDA kernels, which must match it bit for bit.
"""

from __future__ import annotations

import numpy as np

from .._inputs import check_int, prepare

__all__ = ["RESET_MODES", "if_neuron"]

RESET_MODES = ("subtract", "zero")


def if_neuron(
    x: np.ndarray,
    threshold: np.ndarray | float,
    v_init: np.ndarray | float | None = None,
    *,
    timesteps: int,
    reset: str = "subtract",
) -> np.ndarray:
    """Run integrate-and-fire neurons over ``timesteps`` steps folded into axis 0.

    Args:
        x: input current, shape ``[T·N, C, ...]`` (rank ≥ 2), converted to float32.
        threshold: θ, shape ``[]``, ``[1]`` or ``[C]`` with ``C = x.shape[1]``.
        v_init: initial potential, numpy-broadcastable to one step ``[N, C, ...]``;
            ``None`` means 0.
        timesteps: T ≥ 1; ``x.shape[0]`` must be a multiple of it.
        reset: ``"subtract"`` (v ← v − θ on a spike) or ``"zero"`` (v ← 0).

    Returns:
        Spikes carrying amplitude θ: float32 array of ``x``'s shape, values in ``{0, θ_c}``.

    Raises:
        ValueError: on a bad ``timesteps``/``reset`` or on inconsistent shapes.
    """
    steps = check_int("IFNeuron", "timesteps", timesteps, 1)
    if reset not in RESET_MODES:
        raise ValueError(f'IFNeuron: reset must be "subtract" or "zero", got {reset!r}')
    x_steps, theta_b, v = prepare("IFNeuron", x, threshold, v_init, steps)
    y = np.empty_like(x_steps)
    zero = np.float32(0.0)
    for t in range(steps):
        v = v + x_steps[t]
        spike = v >= theta_b
        y[t] = np.where(spike, theta_b, zero)
        if reset == "subtract":
            v = np.where(spike, v - theta_b, v)
        else:
            v = np.where(spike, zero, v)
    return y.reshape(np.shape(x))
