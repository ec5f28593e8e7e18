"""The IF neuron's step in standard ONNX ops, and tensor shapes through custom ops.

One step of ``IFNeuron`` (:mod:`onnx2snn.neurons.if_neuron`) per element::

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
import onnx
import onnx_graphsurgeon as gs

from ..errors import ConversionError
from ._graph import SNN_DOMAIN, NameScope, constant_value, is_empty


def tensor_shapes(graph: gs.Graph) -> dict[str, list]:
    """Shape of every tensor ONNX shape inference can follow, by name (dims: int, str or None).

    The onnx2snn ops keep their input's shape, so they are read as Identity for
    the inference, which then goes on past them.
    """
    return model_shapes(gs.export_onnx(graph.copy(), do_type_check=False))


# Initializers larger than this enter shape inference as typed inputs, without their values
# (shapes never depend on weights; small ones may be shape constants that data propagation reads).
_SHAPE_VALUE_BYTES = 1024


def model_shapes(model: onnx.ModelProto) -> dict[str, list]:
    """:func:`tensor_shapes` of a ModelProto (left unmodified). Runs on a copy of the graph
    without its large weights, so a ResNet-50 takes a fraction of a second."""
    graph = model.graph
    light = onnx.GraphProto(name=graph.name)
    light.node.extend(graph.node)
    light.input.extend(graph.input)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
    inputs = {i.name for i in graph.input}
    for init in graph.initializer:
        if init.ByteSize() <= _SHAPE_VALUE_BYTES:
            light.initializer.append(init)
        elif init.name not in inputs:
            light.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    for node in light.node:
        if node.domain == SNN_DOMAIN:
            del node.input[1:]
            del node.output[1:]
            del node.attribute[:]
            node.op_type, node.domain = "Identity", ""
    opsets = [o for o in model.opset_import if o.domain != SNN_DOMAIN]
    light_model = onnx.helper.make_model(light, opset_imports=opsets, ir_version=model.ir_version)
    light_model.functions.extend(model.functions)
    light_model = onnx.shape_inference.infer_shapes(light_model, strict_mode=False, data_prop=True)
    shapes = {}
    for vi in list(light_model.graph.value_info) + list(light_model.graph.input) + list(light_model.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                               for d in tt.shape.dim]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def broadcast_threshold(theta: np.ndarray, rank: int) -> np.ndarray:
    """θ of shape [], [1] or [C] as an array that broadcasts against [N, C, ...] of ``rank``."""
    theta = np.asarray(theta, np.float32)
    if theta.size == 1 and theta.ndim <= 1:
        return theta.reshape(())
    return theta.reshape([-1] + [1] * (rank - 2))


def neuron_params(node: gs.Node, rank: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(θ broadcastable to one step, v_init or None) of a neuron node (IFNeuron, TSNeuron) with constant
    parameters."""
    where = f"node '{node.name}' ({node.op})"
    theta = constant_value(node.inputs[1])
    if theta is None:
        raise ConversionError(f"{where}: its threshold is computed, not a constant; only the folded form "
                              "can run it")
    if rank is None or rank < 2:
        raise ConversionError(f"{where}: the rank of its input is unknown; export the model with shapes")
    v0 = None
    if len(node.inputs) > 2 and not is_empty(node.inputs[2]):
        v0 = constant_value(node.inputs[2])
        if v0 is None:
            raise ConversionError(f"{where}: its v_init is computed, not a constant")
        v0 = np.asarray(v0, np.float32)
    return broadcast_threshold(theta, rank), v0


INT64_MAX = np.iinfo(np.int64).max


def unfold_time_nodes(names: NameScope, prefix: str, x, timesteps: int,
                      features: list) -> tuple[list[gs.Node], gs.Tensor, gs.Tensor]:
    """(nodes, xs, x_shape): nodes viewing x [T·N, C, ...] as xs [T, N, C, ...], and the shape that
    folds a [T, N, C, ...] tensor back (a constant when ``features`` = x's dims after the first are
    static, so shape inference can follow; else computed from Shape(x))."""
    def const(suffix, value):
        return gs.Constant(names.fresh(prefix + suffix), np.asarray(value, np.int64))

    xs = gs.Variable(names.fresh(prefix + "_xs"), dtype=np.float32)
    if all(isinstance(d, int) for d in features):
        target, shape = const("_xs_shape", [timesteps, -1] + list(features)), const("_x_shape", [-1] + list(features))
        nodes = []
    else:
        shape, rest, target = (gs.Variable(names.fresh(prefix + s), dtype=np.int64)
                               for s in ("_x_shape", "_feature_shape", "_xs_shape"))
        nodes = [
            gs.Node("Shape", names.fresh(prefix + "/shape"), inputs=[x], outputs=[shape]),
            gs.Node("Slice", names.fresh(prefix + "/features"), inputs=[shape, const("_one", [1]),
                                                                        const("_end", [INT64_MAX])], outputs=[rest]),
            gs.Node("Concat", names.fresh(prefix + "/time_shape"), attrs={"axis": 0},
                    inputs=[const("_time_major", [timesteps, -1]), rest], outputs=[target]),
        ]
    nodes.append(gs.Node("Reshape", names.fresh(prefix + "/unfold_time"), inputs=[x, target], outputs=[xs]))
    return nodes, xs, shape


def greater_or_equal_nodes(names: NameScope, prefix: str, a, b, out, opset: int) -> list[gs.Node]:
    """out = (a ≥ b), elementwise with broadcasting: GreaterOrEqual (opset ≥ 12) or Greater ∨ Equal."""
    if opset >= 12:
        return [gs.Node("GreaterOrEqual", names.fresh(prefix + "/fire"), inputs=[a, b], outputs=[out])]
    gt, eq = (gs.Variable(names.fresh(prefix + s), dtype=np.bool_) for s in ("_above", "_at"))
    return [gs.Node("Greater", names.fresh(prefix + "/above"), inputs=[a, b], outputs=[gt]),
            gs.Node("Equal", names.fresh(prefix + "/at"), inputs=[a, b], outputs=[eq]),
            gs.Node("Or", names.fresh(prefix + "/fire"), inputs=[gt, eq], outputs=[out])]


def if_step_nodes(names: NameScope, prefix: str, x, v, theta: np.ndarray, reset: str, opset: int,
                  y, v_next) -> list[gs.Node]:
    """Nodes computing one IF step: y, v_next from input current x and potential v."""
    if opset < 11:
        raise ConversionError(f"'{prefix}': the standard-op IF step needs opset >= 11 (GreaterOrEqual, or "
                              f"Greater/Equal on floats); the model has opset {opset}: re-export it or use "
                              "the folded form")
    th = gs.Constant(names.fresh(prefix + "_theta"), np.asarray(theta, np.float32))
    zero = gs.Constant(names.fresh(prefix + "_zero"), np.array(0.0, np.float32))

    def var(suffix, dtype=np.float32):
        return gs.Variable(names.fresh(prefix + suffix), dtype=dtype)

    v1, spike = var("_v_integrated"), var("_spike", np.bool_)
    nodes = [gs.Node("Add", names.fresh(prefix + "/integrate"), inputs=[v, x], outputs=[v1])]
    nodes += greater_or_equal_nodes(names, prefix, v1, th, spike, opset)
    nodes.append(gs.Node("Where", names.fresh(prefix + "/emit"), inputs=[spike, th, zero], outputs=[y]))
    if reset == "subtract":
        lowered = var("_v_lowered")
        nodes += [gs.Node("Sub", names.fresh(prefix + "/lower"), inputs=[v1, th], outputs=[lowered]),
                  gs.Node("Where", names.fresh(prefix + "/reset"), inputs=[spike, lowered, v1], outputs=[v_next])]
    elif reset == "zero":
        nodes.append(gs.Node("Where", names.fresh(prefix + "/reset"), inputs=[spike, zero, v1], outputs=[v_next]))
    else:
        raise ConversionError(f"'{prefix}': unknown reset {reset!r}")
    return nodes
