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

from ...core.builder import greater_or_equal_nodes, unfold_time_nodes
from ..params import NeuronToStandardOps


class PortableTSNeuronsPass(NeuronToStandardOps):
    op = "TSNeuron"

    def lower(self, node, b, theta, v0, timesteps, shape, opset):
        x, a, T = node.inputs[0], node.outputs[0], timesteps
        nodes, xs, fold = unfold_time_nodes(b.names, b.prefix, x, T, shape[1:])
        v = None if v0 is None else b.const("_v_init", v0)
        for t in range(T):
            x_t = b.var(f"_x{t}")
            nodes.append(b.node("Gather", f"/step{t}", [xs, b.const(f"_t{t}", np.array(t, np.int64))], [x_t],
                                {"axis": 0}))
            if v is None:
                v = x_t
                continue
            v_next = b.var(f"_v{t}")
            nodes.append(b.node("Add", f"/integrate{t}", [v, x_t], [v_next]))
            v = v_next
        th = b.const("_theta", theta)
        q, fire, ys = b.var("_count"), b.var("_fire", np.bool_), b.var("_ys")
        levels = np.arange(1, T + 1).astype(np.float32).reshape([T] + [1] * len(shape))
        nodes.append(b.node("Div", "/count", [v, th], [q]))
        nodes += greater_or_equal_nodes(b.names, b.prefix, q, b.const("_levels", levels), fire, opset)
        return nodes + [b.node("Where", "/emit", [fire, th, b.const("_zero", np.float32(0))], [ys]),
                        b.node("Reshape", "/fold_time", [ys, fold], [a])]
