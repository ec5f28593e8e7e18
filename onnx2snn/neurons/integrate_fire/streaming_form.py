"""StreamingFormPass: one time step per run, the neuron state as explicit inputs/outputs.

Runs on the graph after :class:`SpikeActivationsPass` (no time axis). Each
``IFNeuron(x, θ[, v_init]) → a`` becomes one IF step in standard ONNX ops
(:mod:`.step`, bit-exact to the kernel) with its membrane potential as
graph input ``a_v`` [N, C, ...] and output ``a_v_next``. The readout keeps, per
ANN output ``o``, the running sum of the analog output as state (``o_sum`` →
``o_sum_next``) and one step counter (``onnx2snn_steps`` → ``..._next``, a
float scalar), and writes:

    o_step  this step's output y_t [N, K...] (before a final Softmax)
    o       the running mean sum/steps after this step (Softmax/LogSoftmax
            applied after it, as in the folded readout)

Initial state: every potential at its ``v_init`` (0 without one), sums and the
counter at 0; :class:`onnx2snn.StreamingSession` does it.

Invariant: after T runs from the initial state, ``o_step`` of run t equals row
block t of the folded model's per-step output bit for bit (same ops, same
order); ``o`` equals the folded running mean within float rounding (Σy/t vs
the folded readout's MatMul with 1/t weights, a few ulp).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from ...core.builder import Builder
from ...core.graph import SNN_DOMAIN, NameScope, PassResult
from ...core.shapes import tensor_shapes
from ...errors import ConversionError
from ...snn.readout import detach_final_softmax
from ..params import neuron_params
from .step import if_step_nodes

STEP_SUFFIX = "_step"
NEXT_SUFFIX = "_next"
STEP_COUNTER = "onnx2snn_steps"


@dataclass(frozen=True)
class StreamingResult(PassResult):
    state_inputs: list[str] = field(default_factory=list)
    state_outputs: list[str] = field(default_factory=list)   # aligned with state_inputs
    initial_values: dict[str, np.ndarray] = field(default_factory=dict)  # non-zero initial states


class StreamingFormPass:
    def __init__(self, reset: str = "subtract"):
        self.reset = str(reset)

    def __call__(self, graph: gs.Graph) -> StreamingResult:
        names = NameScope(graph)
        b = Builder(names)
        shapes = tensor_shapes(graph)
        opset = int(graph.opset)
        state_in, state_out, initial = [], [], {}

        def add_state(name, shape):
            inp = b.var(name, np.float32, shape=shape)
            out = b.var(name + NEXT_SUFFIX, np.float32, shape=shape)
            state_in.append(inp)
            state_out.append(out)
            return inp, out

        neurons = [n for n in graph.nodes if n.op == "IFNeuron" and n.domain == SNN_DOMAIN]
        for node in neurons:
            x, a = node.inputs[0], node.outputs[0]
            shape = shapes.get(x.name)
            theta, v0 = neuron_params(node, None if shape is None else len(shape))
            if not all(isinstance(d, int) for d in shape[1:]):
                raise ConversionError(f"node '{node.name}' (IFNeuron): its input has shape {shape}; the "
                                      "streaming form needs every dimension but the batch to be static")
            v, v_next = add_state(a.name + "_v", [shape[0] if shape[0] else "batch"] + shape[1:])
            if v0 is not None:
                initial[v.name] = v0
            reset = node.attrs.get("reset", self.reset)
            node.outputs.clear()
            node.inputs.clear()
            graph.nodes += if_step_nodes(names, a.name, x, v, theta, reset, opset, a, v_next)

        counter, counter_next = add_state(STEP_COUNTER, [])
        graph.nodes.append(b.node("Add", STEP_COUNTER + "/count", inputs=[counter, b.const("one", np.array(1.0, np.float32))],
                                   outputs=[counter_next]))
        means, steps = [], []
        for orig in list(graph.outputs):
            base = orig.name
            shape = list(orig.shape) if orig.shape is not None else shapes.get(base)
            y, softmax = detach_final_softmax(orig)  # a final Softmax is applied again after the averaging
            step = b.var(base + STEP_SUFFIX, np.float32, shape=shape)
            if y is orig:
                y.name = step.name
                step = y
            else:
                graph.nodes.append(b.node("Identity", base + "/step", inputs=[y], outputs=[step]))
            total, total_next = add_state(base + "_sum", shape)
            out = gs.Variable(base, dtype=np.float32, shape=shape)
            mean = b.var(base + "_mean_raw", np.float32) if softmax is not None else out
            graph.nodes += [
                b.node("Add", base + "/accumulate", inputs=[total, step], outputs=[total_next]),
                b.node("Div", base + "/mean", inputs=[total_next, counter_next], outputs=[mean]),
            ]
            if softmax is not None:
                graph.nodes.append(gs.Node(softmax.op, softmax.name, attrs=dict(softmax.attrs), inputs=[mean],
                                           outputs=[out]))
            means.append(out)
            steps.append(step)
        graph.inputs = list(graph.inputs) + state_in
        graph.outputs = means + steps + state_out
        graph.cleanup().toposort()
        return StreamingResult(graph, len(neurons), [t.name for t in state_in], [t.name for t in state_out],
                               initial)
