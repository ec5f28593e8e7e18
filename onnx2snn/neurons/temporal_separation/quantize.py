"""QuantizeActivationsPass: replace every ReLU-like node by its T-level quantiser.

Each Relu / Clip(min=0[, max=m]) writing ``a``, with the threshold θ its
neuron would get (the table entry, capped at m: :func:`.spike.neuron_threshold`),
becomes

    a = θ/T · clip(⌊x·(T/θ) + δ⌋, 0, T)        δ = ½ (v_init = θ/2) or 0 (v_init = 0)

written with standard ops as Mul(T/θ) → Add(δ) → Floor → Max(0) → Min(T) →
Mul(θ/T) (Max/Min instead of Clip, so any opset ≥ 8 works). This is q_T, the
value a spike count of T steps can represent: the ANN whose quantisation error
the ``mse`` threshold minimises, and the ANN that a ``--neuron tsep`` SNN
equals (:mod:`onnx2snn.tsep`). The pass is the reference of that guarantee in
tests and benchmarks; the conversion itself does not use it.

Invariant: no ReLU-like node is left; the graph keeps its inputs, outputs and
every other node; all new nodes are standard ONNX.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx_graphsurgeon as gs

from ...errors import ConversionError
from ...core.graph import NameScope, PassResult
from ..params import broadcast_threshold
from ...core.shapes import tensor_shapes
from ...passes.activations import activation_nodes
from ...snn.spike import neuron_threshold


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

            def const(suffix, value):
                return gs.Constant(names.fresh(p + suffix), np.asarray(value, np.float32))

            def var(suffix):
                return gs.Variable(names.fresh(p + suffix), dtype=np.float32)

            scaled, shifted, floored, low, levels = (var(s) for s in
                                                     ("_scaled", "_shifted", "_floor", "_low", "_levels"))
            graph.nodes += [
                gs.Node("Mul", names.fresh(p + "/scale"), inputs=[x, const("_steps_per_theta", T / theta)],
                        outputs=[scaled]),
                gs.Node("Add", names.fresh(p + "/offset"), inputs=[scaled, const("_offset", self.offset)],
                        outputs=[shifted]),
                gs.Node("Floor", names.fresh(p + "/floor"), inputs=[shifted], outputs=[floored]),
                gs.Node("Max", names.fresh(p + "/clip_low"), inputs=[floored, const("_zero", 0.0)], outputs=[low]),
                gs.Node("Min", names.fresh(p + "/clip_high"), inputs=[low, const("_top", T)], outputs=[levels]),
                gs.Node("Mul", names.fresh(p + "/rescale"), inputs=[levels, const("_step", theta / T)], outputs=[a]),
            ]
            node.outputs.clear()
            node.inputs.clear()
        graph.cleanup().toposort()
        return PassResult(graph, len(nodes))
