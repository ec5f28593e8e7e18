"""SpikeActivationsPass: replace every ReLU-like node by an ``IFNeuron`` (or a ``TSNeuron``).

Each Relu / Clip(min=0[, max=m]) whose output is named ``a`` becomes
``IFNeuron(x, θ_a[, v_init_a]; timesteps=T, reset)`` writing the same tensor
``a``. The neuron's spikes carry amplitude θ, so its rate over T steps
approximates clip(x, 0, θ) and the following layers keep their ANN weights.
A Clip's upper bound m caps the threshold: θ ← min(θ, m).

With ``op="TSNeuron"`` (``--neuron tsep``) the node is
``TSNeuron(x, θ_a[, v_init_a]; timesteps=T)`` instead, whose time-averaged
output is exactly the T-level quantiser of the averaged input (see
:mod:`onnx2snn.neurons.temporal_separation.reference`); thresholds are chosen the same way.

Invariant: no Relu or ReLU-like Clip is left; every neuron has a positive
finite threshold of shape [] or [C].
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import SNN_DOMAIN, NameScope, PassResult
from ..errors import CalibrationError
from ..neurons.kinds import IF, NeuronKind, kind
from ..passes.activations import activation_nodes, relu_cap


def neuron_threshold(node: gs.Node, thresholds: Mapping[str, np.ndarray]) -> np.ndarray:
    """θ of the neuron replacing ReLU-like ``node``: its table entry, capped by a Clip's max, checked."""
    out = node.outputs[0]
    if out.name not in thresholds:
        raise CalibrationError(
            f"no threshold for node '{node.name}' ({node.op}) writing '{out.name}'; "
            "calibrate with data that reaches every layer")
    theta = np.asarray(thresholds[out.name], dtype=np.float32)
    cap = relu_cap(node)[1]
    if cap is not None:
        theta = np.asarray(np.minimum(theta, np.float32(cap)), dtype=np.float32)
    if theta.ndim > 1 or not np.all(np.isfinite(theta)) or np.any(theta <= 0):
        raise CalibrationError(
            f"threshold of node '{node.name}' ({node.op}) must be positive and finite with "
            f"shape [] or [C], got shape {theta.shape}")
    return theta


class SpikeActivationsPass:
    """``op``: a :class:`~onnx2snn.neurons.kinds.NeuronKind` or its op name."""

    def __init__(self, thresholds: Mapping[str, np.ndarray], timesteps: int, reset: str = "subtract",
                 v_init: Mapping[str, np.ndarray] | None = None, op: NeuronKind | str = IF):
        self.neuron = kind(op)
        self.op = self.neuron.op
        self.thresholds = thresholds
        self.timesteps = int(timesteps)
        self.reset = str(reset)
        self.v_init = v_init or {}

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        b = Builder(names)
        count = 0
        attrs = self.neuron.attributes(self.timesteps, self.reset)  # BIF: levels = T, output ∈ [0, θ] like IF
        for node in activation_nodes(graph):
            out = node.outputs[0]
            theta = neuron_threshold(node, self.thresholds)
            inputs = [node.inputs[0], b.const(out.name + "_threshold", theta)]
            if out.name in self.v_init:
                v0 = np.asarray(self.v_init[out.name], dtype=np.float32)
                inputs.append(b.const(out.name + "_v_init", v0))
            neuron = gs.Node(self.op, node.name or names.fresh(self.op), domain=SNN_DOMAIN,
                             attrs=dict(attrs), inputs=inputs, outputs=[out])
            node.outputs.clear()
            node.inputs.clear()
            graph.nodes.append(neuron)
            count += 1
        graph.cleanup().toposort()
        return PassResult(graph, count)
