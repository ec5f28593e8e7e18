"""Tensor shapes through the onnx2snn custom ops, by ONNX shape inference.

Invariant: the onnx2snn ops keep their input's shape (output 0 has input 0's
shape), so for the inference they are read as Identity; the model itself is
never modified.
"""
from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from ..data import model_inputs
from .graph import SNN_DOMAIN, import_model


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




def at_sample_batch(model: onnx.ModelProto) -> tuple[gs.Graph, int]:
    """A graph of ``model`` whose data inputs have batch 1 (or the model's fixed batch B), and that batch:
    shape inference on it gives the tensors of one run at that batch."""
    graph = import_model(model)
    specs = {s.name for s in model_inputs(model)}
    batch = 1
    for x in graph.inputs:
        if x.name in specs and x.shape:
            if isinstance(x.shape[0], int) and x.shape[0] > 0:
                batch = x.shape[0]
            x.shape = [batch if k == 0 else d for k, d in enumerate(x.shape)]
    return graph, batch
