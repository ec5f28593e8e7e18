"""The IF neuron's step in standard ONNX ops (streaming and portable forms).

One step of ``IFNeuron`` (:mod:`.reference`) per element::

    v1 = Add(v, x)                 v + x_t
    s  = GreaterOrEqual(v1, θ)     v ≥ θ_c
    y  = Where(s, θ, 0)            y_t = s·θ_c
    v' = Where(s, Sub(v1, θ), v1)  (reset "subtract"; Where(s, 0, v1) for "zero")

Each of Add, Sub, GreaterOrEqual and Where is one correctly rounded IEEE
float32 operation (no multiply, so no fused multiply-add can creep in), in the
same order as the reference and the C++ kernel: the step is bit-exact to them,
NaN and ±Inf included (NaN ≥ θ is false in all three). That is why the
streaming and portable forms use these ops instead of a second custom op: they
run in any onnxruntime (or other ONNX runtime), with no library to build.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ...core.builder import Builder, greater_or_equal_nodes
from ...core.graph import NameScope
from ...errors import ConversionError


def if_step_nodes(names: NameScope, prefix: str, x, v, theta: np.ndarray, reset: str, opset: int,
                  y, v_next) -> list[gs.Node]:
    """Nodes computing one IF step: y, v_next from input current x and potential v."""
    if opset < 11:
        raise ConversionError(f"'{prefix}': the standard-op IF step needs opset >= 11 (GreaterOrEqual, or "
                              f"Greater/Equal on floats); the model has opset {opset}: re-export it or use "
                              "the folded form")
    b = Builder(names, prefix)
    th = b.const("_theta", np.asarray(theta, np.float32))
    zero = b.const("_zero", np.array(0.0, np.float32))

    v1, spike = b.var("_v_integrated"), b.var("_spike", np.bool_)
    nodes = [b.node("Add", "/integrate", inputs=[v, x], outputs=[v1])]
    nodes += greater_or_equal_nodes(names, prefix, v1, th, spike, opset)
    nodes.append(b.node("Where", "/emit", inputs=[spike, th, zero], outputs=[y]))
    if reset == "subtract":
        lowered = b.var("_v_lowered")
        nodes += [b.node("Sub", "/lower", inputs=[v1, th], outputs=[lowered]),
                  b.node("Where", "/reset", inputs=[spike, lowered, v1], outputs=[v_next])]
    elif reset == "zero":
        nodes.append(b.node("Where", "/reset", inputs=[spike, zero, v1], outputs=[v_next]))
    else:
        raise ConversionError(f"'{prefix}': unknown reset {reset!r}")
    return nodes

