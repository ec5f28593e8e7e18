"""The discrete-time reading of a NIR graph that onnx2snn exports to, and the parameter maps it needs.

NIR defines its nodes in continuous time and leaves ``dt`` to the reader. onnx2snn's SNNs are
discrete: T steps of ``v ← v + x_t``. The exported graphs are exact under this reading, which
:mod:`onnx2snn.nir.reference` implements:

* **Time**: ``dt = 1``; steps t = 0 … T−1; every signal is one value per step. ``I`` integrates
  ``v ← v + r·in`` (Euler step of ``v̇ = R·I`` with ``dt = 1``; the exporter writes ``r = 1``, a reader
  simulating with another ``dt`` must use ``r = 1/dt``). ``IF`` is ``v ← v + r·in; z = v > v_threshold;
  v ← v_reset where z``. ``Threshold`` is ``z = in > threshold`` (1.0 or 0.0). Every state starts at 0.
* **Edges**: a node's input is the sum of its incoming edges. Within each step the nodes run in the
  order of the graph without its back edges (a depth-first search from the inputs, edges in list
  order); a back edge (one that closes a cycle) carries its source's value of step t−1 (0 at t = 0).
* **Float order** (float32; irrelevant in real arithmetic, fixed here so that the reading is
  bit-exact with onnx2snn's ``IFNeuron``): an integrator adds its back-edge inputs to its state
  first, then the sum of its other inputs, summed in edge order: ``v ← (v + r·Σ_back) + r·Σ_fwd``.
* **Input**: direct encoding, the analog input is fed unchanged at every step.
* **Readout**: the graph's ``Output`` is the last analog layer at every step; the SNN's output is its
  mean over the T steps, ``Σ_t y_t / T`` (what onnxruntime's SNN returns as its main output).

onnx2snn's ``IFNeuron`` (``v ← v + x_t; s = v ≥ θ; y = θ·s; v ← v − θ·s`` or ``v ← 0``, starting at
``v_init``) maps onto this as follows (proofs in ``docs/nir.md``):

* ``≥`` versus NIR's strict ``>``: the firing threshold is written as the float32 just below θ,
  :func:`firing_threshold`; for float32 potentials ``v > prev(θ) ⟺ v ≥ θ``.
* reset by subtraction: ``I`` → ``Threshold`` → ``Scale(−θ)`` → back into the ``I``. With ``u`` the
  integrator's state, ``u_t = (u_{t−1} − θ·s_{t−1}) + x_t``, which is onnx2snn's potential before the
  spike decision, bit for bit.
* reset to zero: NIR's ``IF`` with ``v_reset = 0`` (its own hard reset), bit for bit.
* initial potential ``v_init`` (subtractive reset only): the integrator starts at 0, so its state is
  ``u − v_init`` at every step (by induction, in real arithmetic) and the firing threshold becomes
  ``θ − v_init``; the reset amount stays θ. Exact in real arithmetic; in float32 the offset potential
  rounds differently, so a spike whose potential lies within rounding of θ can move by one step.
* spike amplitude θ: the spikes stay binary; θ (per channel) is multiplied into the weights of the
  next ``Conv``/``Affine`` (through pools and ``Flatten``), or written as a ``Scale(θ)`` where no
  weighted layer follows (a residual ``Add`` into a neuron, an output).

Invariant: every function here is pure and returns float32 arrays of the shape it is given.
"""
from __future__ import annotations

import numpy as np

DT = 1.0
READOUT = "mean"

# keys of the NIR graph's metadata (NIR has no field for them)
META_TIMESTEPS = "onnx2snn.timesteps"
META_DT = "onnx2snn.dt"
META_READOUT = "onnx2snn.readout"
META_ENCODING = "onnx2snn.input_encoding"
META_NEURON = "onnx2snn.neuron"
META_RESET = "onnx2snn.reset"
META_NEURONS = "onnx2snn.neurons"
META_OUTPUTS = "onnx2snn.outputs"
META_AFTER_MEAN = "onnx2snn.after_mean"  # {SNN output: "Softmax" | "LogSoftmax"} applied to the mean
META_INPUTS = "onnx2snn.inputs"
META_VERSION = "onnx2snn.version"
META_SEMANTICS = "onnx2snn.semantics"
SEMANTICS_TEXT = ("discrete time, dt = 1, r = 1; back edges delayed one step; edges into a node summed; "
                  "input fed at every step; output = mean of the Output node over the T steps")

# node metadata keys
NODE_ONNX = "onnx_node"
NODE_ROLE = "onnx2snn_role"


def firing_threshold(theta: np.ndarray, v_init: np.ndarray | None = None) -> np.ndarray:
    """The NIR threshold (strict ``>``) that fires exactly when onnx2snn's neuron does (``≥``).

    ``v ≥ t ⟺ v > nextafter(t, −∞)`` for every float32 v; ``t = θ − v_init`` (float32) folds an
    initial potential into the threshold of a subtractive neuron.
    """
    t = np.asarray(theta, np.float32)
    if v_init is not None:
        t = (t - np.asarray(v_init, np.float32)).astype(np.float32)
    return np.nextafter(t, np.float32(-np.inf)).astype(np.float32)


def per_sample_full(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as an array of one sample's ``shape``: a scalar, a per-channel ``[C]`` (channel = axis 0),
    or anything numpy broadcasts to ``shape``."""
    v = np.asarray(value, np.float32)
    if v.size == 1:
        v = v.reshape(())
    elif v.ndim == 1 and len(shape) > 1 and v.shape[0] == shape[0]:
        v = v.reshape((-1,) + (1,) * (len(shape) - 1))
    return np.ascontiguousarray(np.broadcast_to(v, shape), np.float32)


def initial_potential(v_init: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """onnx2snn's ``v_init`` (broadcastable to one step ``[N, C, ...]``; batch 1) as one sample's ``shape``."""
    if v_init is None:
        return np.zeros(shape, np.float32)
    v = np.asarray(v_init, np.float32)
    if v.ndim == len(shape) + 1:
        if v.shape[0] != 1:
            raise ValueError(f"v_init of shape {v.shape} differs between samples")
        v = v[0]
    return np.ascontiguousarray(np.broadcast_to(v, shape), np.float32)


__all__ = ["DT", "READOUT", "firing_threshold", "per_sample_full", "initial_potential"]
