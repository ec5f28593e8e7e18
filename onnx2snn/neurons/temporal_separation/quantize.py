"""QuantizeActivationsPass: replace every ReLU-like node by its T-level quantiser.

Each Relu / Clip(min=0[, max=m]) writing ``a``, with the threshold θ its
neuron would get (the table entry, capped at m: :func:`.spike.neuron_threshold`),
becomes

    a = θ/T · clip(⌊x·(T/θ) + δ⌋, 0, T)        δ = ½ (v_init = θ/2) or 0 (v_init = 0)

written with standard ops as Mul(T/θ) → Add(δ) → Floor → Max(0) → Min(T) →
Mul(θ/T) (Max/Min instead of Clip, so any opset ≥ 8 works). This is q_T, the
value a spike count of T steps can represent: the ANN whose quantisation error
the ``mse`` threshold minimises, and the ANN that a ``--neuron tsep`` SNN
equals (:mod:`.exactness`). The pass is the reference of that guarantee in
tests and benchmarks; the conversion itself does not use it.

Invariant: no ReLU-like node is left; the graph keeps its inputs, outputs and
every other node; all new nodes are standard ONNX.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx_graphsurgeon as gs

from ...core.builder import Builder
from ...core.graph import NameScope, PassResult
from ...core.shapes import tensor_shapes
from ...errors import ConversionError
from ...passes.activations import activation_nodes
from ...snn.spike import neuron_threshold
from ..params import broadcast_threshold


class QuantizeActivationsPass:
    def __init__(self, thresholds: Mapping[str, np.ndarray], timesteps: int, half: bool = False):
        self.thresholds = thresholds
        self.timesteps = int(timesteps)
        self.offset = np.float32(0.5 if half else 0.0)

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        shapes = tensor_shapes(graph)
        nodes = activation_nodes(graph)
        T = np.float32(self.timesteps)
        for node in nodes:
            x, a = node.inputs[0], node.outputs[0]
            rank = len(shapes[x.name]) if x.name in shapes else None
            theta = neuron_threshold(node, self.thresholds)
            if theta.size > 1 and (rank is None or rank < 2):
                raise ConversionError(f"node '{node.name}' ({node.op}): a per-channel threshold needs the rank "
                                      "of its input; export the model with shapes")
            theta = broadcast_threshold(theta, rank or 2)
            p = a.name
            b = Builder(names, p)

            scaled, shifted, floored, low, levels = (b.var(s) for s in
                                                     ("_scaled", "_shifted", "_floor", "_low", "_levels"))
            graph.nodes += [
                b.node("Mul", "/scale", inputs=[x, b.const("_steps_per_theta", T / theta, np.float32)],
                        outputs=[scaled]),
                b.node("Add", "/offset", inputs=[scaled, b.const("_offset", self.offset, np.float32)],
                        outputs=[shifted]),
                b.node("Floor", "/floor", inputs=[shifted], outputs=[floored]),
                b.node("Max", "/clip_low", inputs=[floored, b.const("_zero", 0.0, np.float32)], outputs=[low]),
                b.node("Min", "/clip_high", inputs=[low, b.const("_top", T, np.float32)], outputs=[levels]),
                b.node("Mul", "/rescale", inputs=[levels, b.const("_step", theta / T, np.float32)], outputs=[a]),
            ]
            node.outputs.clear()
            node.inputs.clear()
        graph.cleanup().toposort()
        return PassResult(graph, len(nodes))
