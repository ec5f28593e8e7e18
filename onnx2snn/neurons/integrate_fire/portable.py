"""PortableNeuronsPass: every IFNeuron as a standard ONNX ``Scan`` over the T steps.

Runs on the folded SNN (after the time axis). ``IFNeuron(x [T·N, C, ...], θ[, v_init]) → a``
becomes::

    xs      = Reshape(x, [T, -1, C, ...])   [T, N, C, ...] (static C, ...; else from Shape(x))
    v0      = ConstantOfShape(Shape(xs)[1:])  (0)  or  Expand(v_init, Shape(xs)[1:])
    _, ys   = Scan(v0, xs; body = one IF step)                   scan over axis 0
    a       = Reshape(ys, Shape(x))

The body is the IF step of :mod:`.step` (Add, GreaterOrEqual, Where,
Sub): the same float32 operations in the same order as the kernel, so the
portable model is bit-exact to the custom-op one, and needs no op library.

Invariant: no onnx2snn-domain node is left; outputs equal the folded model's
bit for bit (``tests/test_forms.py``).
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ...core.builder import INT64_MAX, unfold_time_nodes
from ...core.graph import NameScope
from ..params import NeuronToStandardOps
from .step import if_step_nodes


class PortableNeuronsPass(NeuronToStandardOps):
    op = "IFNeuron"

    def lower(self, node, b, theta, v0, timesteps, shape, opset):
        x, a = node.inputs[0], node.outputs[0]
        reset = node.attrs.get("reset", "subtract")
        xs_shape, step_shape = b.var("_xs_shape_actual", np.int64), b.var("_step_shape", np.int64)
        v_start, v_end, ys = b.var("_v_start"), b.var("_v_end"), b.var("_ys")
        one, big = b.const("_one", np.array([1], np.int64)), b.const("_end", np.array([INT64_MAX], np.int64))
        nodes, xs, fold = unfold_time_nodes(b.names, b.prefix, x, timesteps, shape[1:])
        nodes += [b.node("Shape", "/xs_shape", inputs=[xs], outputs=[xs_shape]),
                  b.node("Slice", "/step_shape", inputs=[xs_shape, one, big], outputs=[step_shape])]
        if v0 is None:
            nodes.append(b.node("ConstantOfShape", "/v_zero", [step_shape], [v_start],
                                {"value": gs.Constant("zero", np.zeros(1, np.float32))}))
        else:
            nodes.append(b.node("Expand", "/v_init", [b.const("_v_init", v0), step_shape], [v_start]))
        body = self._body(b.prefix, theta, reset, opset, shape)
        return nodes + [b.node("Scan", "/steps", [v_start, xs], [v_end, ys], {"body": body, "num_scan_inputs": 1}),
                        b.node("Reshape", "/fold_time", [ys, fold], [a])]

    @staticmethod
    def _body(prefix: str, theta: np.ndarray, reset: str, opset: int, x_shape: list) -> gs.Graph:
        """One IF step on [N, C, ...] (onnxruntime wants the body's shapes declared)."""
        body = gs.Graph(opset=opset, name=prefix + "_if_step")
        names = NameScope(body)
        shape = ["N"] + [d if isinstance(d, int) else f"d{k}" for k, d in enumerate(x_shape[1:], 1)]
        v, x, v_next, y = (gs.Variable(n, dtype=np.float32, shape=shape) for n in ("v", "x_t", "v_next", "y_t"))
        body.nodes = if_step_nodes(names, "if", x, v, theta, reset, opset, y, v_next)
        body.inputs = [v, x]
        body.outputs = [v_next, y]
        return body
