"""Input checks shared by the neuron references: one place for the op conventions.

Every neuron op takes ``X`` [T·N, C, ...] (time-major), a threshold of shape
[], [1] or [C], and an optional ``v_init`` broadcastable to one step [N, C, ...].
"""
from __future__ import annotations

import numpy as np


def check_int(op: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{op}: {name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    return int(value)


def prepare(op: str, x, threshold, v_init, steps: int):
    """Return (x as float32 [T, N, C, ...], θ broadcast to one step, initial potential copy)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2:
        raise ValueError(f"{op}: X must have rank >= 2 ([T*N, C, ...]), got shape {x.shape}")
    if x.shape[0] % steps != 0:
        raise ValueError(
            f"{op}: X.shape[0] = {x.shape[0]} is not divisible by timesteps = {steps} "
            f"(X must be [T*N, C, ...], time-major); X shape {x.shape}")
    step_shape = (x.shape[0] // steps,) + x.shape[1:]
    channels = x.shape[1]
    theta = np.asarray(threshold, dtype=np.float32)
    if theta.shape in ((), (1,)):
        theta_b = np.broadcast_to(theta.reshape(()), step_shape)
    elif theta.shape == (channels,):
        theta_b = np.broadcast_to(theta.reshape((1, channels) + (1,) * (x.ndim - 2)), step_shape)
    else:
        raise ValueError(f"{op}: threshold must have shape [], [1] or [C] with C = X.shape[1] = "
                         f"{channels}, got {list(theta.shape)}")
    if v_init is None:
        v = np.zeros(step_shape, dtype=np.float32)
    else:
        v0 = np.asarray(v_init, dtype=np.float32)
        try:
            v = np.broadcast_to(v0, step_shape).copy()
        except ValueError:
            raise ValueError(f"{op}: v_init of shape {list(v0.shape)} is not broadcastable to one "
                             f"time step {list(step_shape)} (X shape {list(x.shape)}, timesteps {steps})"
                             ) from None
    return x.reshape((steps,) + step_shape), theta_b, v
