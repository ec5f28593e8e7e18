"""PortableTSNeuronsPass: every TSNeuron as standard ONNX ops, without Scan.

Runs on the folded SNN (after the time axis). ``TSNeuron(x [T·N, C, ...], θ[, v_init]) → a``
(:mod:`.reference`) becomes::

    xs   = Reshape(x, [T, -1, C, ...])                 [T, N, C, ...]
    x_t  = Gather(xs, t, axis=0)                       t = 0 … T−1, each [N, C, ...]
    v    = Add(…Add(Add(v_init, x_0), x_1)…, x_{T−1})  accumulation, in step order
    q    = Div(v, θ)
    fire = GreaterOrEqual(q, [1, 2, …, T] as [T, 1, …, 1])          [T, N, C, ...]
    a    = Reshape(Where(fire, θ, 0), [-1, C, ...])

The sum is an explicit chain of Adds rather than a ReduceSum, whose summation
order ONNX leaves to the runtime: every node is one correctly rounded float32
operation in the kernel's order, so the portable model is bit-exact to the
custom-op one and needs no op library. Without ``v_init`` the chain starts at
x_0 instead of 0 + x_0, which differs only in the sign of a zero sum, and
q = ±0 fires at no step either way. Cost: 2·T + 5 nodes per neuron.

Invariant: no TSNeuron is left; outputs equal the folded model's bit for bit
(``tests/test_tsep.py``).
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ...core.builder import Builder, greater_or_equal_nodes, unfold_time_nodes
from ...core.graph import SNN_DOMAIN, NameScope, PassResult
from ...core.shapes import tensor_shapes
from ..params import neuron_params


class PortableTSNeuronsPass:
    def __init__(self, timesteps: int):
        self.timesteps = int(timesteps)

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        shapes = tensor_shapes(graph)
        opset = int(graph.opset)
        neurons = [n for n in graph.nodes if n.op == "TSNeuron" and n.domain == SNN_DOMAIN]
        for node in neurons:
            x, a = node.inputs[0], node.outputs[0]
            rank = len(shapes[x.name]) if x.name in shapes else None
            theta, v0 = neuron_params(node, rank)
            T = int(node.attrs.get("timesteps", self.timesteps))
            p = a.name
            b = Builder(names, p)

            nodes, xs, shape = unfold_time_nodes(names, p, x, T, shapes[x.name][1:])
            v = None if v0 is None else b.const("_v_init", v0)
            for t in range(T):
                x_t = b.var(f"_x{t}")
                nodes.append(b.node("Gather", f"/step{t}", attrs={"axis": 0},
                                     inputs=[xs, b.const(f"_t{t}", np.array(t, np.int64))], outputs=[x_t]))
                if v is None:
                    v = x_t
                    continue
                v_next = b.var(f"_v{t}")
                nodes.append(b.node("Add", f"/integrate{t}", inputs=[v, x_t], outputs=[v_next]))
                v = v_next
            th = b.const("_theta", theta)
            q, fire, ys = b.var("_count"), b.var("_fire", np.bool_), b.var("_ys")
            levels = np.arange(1, T + 1).astype(np.float32).reshape([T] + [1] * rank)
            nodes.append(b.node("Div", "/count", inputs=[v, th], outputs=[q]))
            nodes += greater_or_equal_nodes(names, p, q, b.const("_levels", levels), fire, opset)
            nodes += [
                b.node("Where", "/emit", inputs=[fire, th, b.const("_zero", np.float32(0))],
                        outputs=[ys]),
                b.node("Reshape", "/fold_time", inputs=[ys, shape], outputs=[a]),
            ]
            node.outputs.clear()
            node.inputs.clear()
            graph.nodes += nodes
        graph.cleanup().toposort()
        return PassResult(graph, len(neurons))
