"""MoveMaxPoolPass: rewrite ReLU→MaxPool as MaxPool→ReLU.

max is monotone, so maxpool(relu(x)) = relu(maxpool(x)) exactly (MaxPool pads
with −∞). In the SNN the neuron then sits after the pooling: max-pooling
spikes would keep a spike from any input every step and overshoot the rate,
while pooling the membrane currents and spiking once is what rate coding can
approximate (exact only when the pooled input is the same at every step).

Invariant: graph outputs unchanged (bit-exact in float); no MaxPool or
GlobalMaxPool reads the output of a ReLU-like node.
"""
from __future__ import annotations

import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import NameScope, PassResult
from .activations import relu_cap

POOLS = ("MaxPool", "GlobalMaxPool")


class MoveMaxPoolPass:
    def __init__(self):
        self.moved: dict[str, str] = {}  # activation output name → the moved activation's output name

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        b = Builder(names)
        count = 0
        for pool in [n for n in graph.nodes if n.op in POOLS]:
            act_out = pool.inputs[0]
            act = act_out.inputs[0] if len(act_out.inputs) else None
            if act is None or not relu_cap(act)[0]:
                continue
            if len(pool.outputs) > 1 and pool.outputs[1].outputs:
                continue  # pooling indices are used: leave it (reported by the support check)
            pooled = b.var(pool.outputs[0].name + "_prerelu", act_out.dtype)
            new_pool = gs.Node(pool.op, pool.name, attrs=dict(pool.attrs),
                               inputs=[act.inputs[0]], outputs=[pooled])
            new_act = b.node(act.op, act.name + "_after_pool", attrs=dict(act.attrs),
                              inputs=[pooled] + list(act.inputs[1:]), outputs=[pool.outputs[0]])
            self.moved[act_out.name] = pool.outputs[0].name
            pool.outputs.clear()
            pool.inputs.clear()
            graph.nodes.extend([new_pool, new_act])
            count += 1
        graph.cleanup().toposort()
        return PassResult(graph, count)
