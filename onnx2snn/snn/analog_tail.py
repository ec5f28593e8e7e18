"""The tail after the readout: split it off the ANN before conversion, attach it to the SNN after.

:func:`split` takes the tail (:mod:`onnx2snn.passes.tail`: the nodes that run once on
the averaged values — Sigmoid, ArgMax, TopK, label lookups, box decoding, any op)
off the canonical ANN: the *body* keeps the network, with the tensors the tail
reads (the crossing tensors) as extra outputs, so every recipe converts it as
usual and its readout averages them like any output. :meth:`Tail.attach` puts the
tail back into the SNN, reading the averaged crossing tensors (which keep their
names), so the SNN has every output of the ANN with its name, type and meaning.

Running outputs: a body output ``o`` keeps ``o_running_mean`` [T, N, ...]. A tail
output gets one when every tail node acts on each row of axis 0 on its own
(:data:`ROW_WISE`, axis attributes not 0) and its shape is static: a renamed copy
of the tail runs on the crossing tensors' running means viewed as [T·N, ...]. In
the streaming form the crossing outputs already are the running means after each
step, so the tail on them gives its outputs after each step.

Invariant: the SNN's outputs are the ANN's, in its order, then the running outputs;
the tail's nodes are the ANN's (names made fresh only where the SNN already uses
them); a model without a tail is returned unchanged (``split`` gives ``None``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..core.graph import NameScope, export_graph, import_model
from ..errors import ConversionError
from ..passes.check_support import activation_tensors, support_reason
from ..passes.quantizers import quantizers_from_metadata
from ..passes.tail import crossing_tensors, tail_nodes
from .readout import RUNNING_SUFFIX

# ops that act on each row of axis 0 on its own (when an axis attribute, if any, is not 0)
ROW_WISE = {"Sigmoid", "Softmax", "LogSoftmax", "Tanh", "Exp", "Log", "Abs", "Neg", "Relu", "Clip", "Cast",
            "Identity", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Floor", "Ceil", "Round", "Sign",
            "ArgMax", "ArgMin", "TopK", "Concat", "Split", "Gather", "Flatten", "Where", "Equal", "Greater",
            "Less", "GreaterOrEqual", "LessOrEqual", "Max", "Min", "Sum", "Not", "And", "Or", "HardSigmoid",
            "Softplus", "Softsign", "Elu", "Selu", "LeakyRelu", "Shape", "Size", "Constant",
            "ArrayFeatureExtractor", "LabelEncoder", "Normalizer", "Binarizer", "Scaler"}


@dataclass(frozen=True)
class Tail:
    graph: onnx.GraphProto         # the tail: inputs = the crossing tensors, outputs = its ANN outputs
    outputs: tuple[str, ...]       # the ANN's outputs, in its order
    opsets: tuple                  # the ANN's opset imports (the tail may use ai.onnx.ml)

    @property
    def crossing(self) -> list[str]:
        return [vi.name for vi in self.graph.input]

    def row_wise(self) -> bool:
        constants = {i.name: onnx.numpy_helper.to_array(i) for i in self.graph.initializer}
        return all(_row_wise(n, constants) for n in self.graph.node)

    def attach(self, snn: onnx.ModelProto, streaming: bool) -> onnx.ModelProto:
        """``snn`` (of the body) with the tail reading its averaged crossing outputs; see the module docstring."""
        out = onnx.ModelProto()
        out.CopyFrom(snn)
        g = out.graph
        taken = _names(g)
        tail_out = [vi.name for vi in self.graph.output]
        _append(g, self.graph, _fresh_internals(self.graph, taken, keep=set(self.crossing) | set(tail_out)))
        running = {}
        if not streaming and self.row_wise():
            running = _running_copy(g, self.graph, tail_out, _names(g))
        by_name = {vi.name: vi for vi in g.output}
        by_name.update({vi.name: vi for vi in self.graph.output})
        final = [by_name[o] for o in self.outputs]
        runs = [vi for vi in g.output if vi.name.endswith(RUNNING_SUFFIX)
                and vi.name.removesuffix(RUNNING_SUFFIX) in self.outputs] + list(running.values())
        order = {o + RUNNING_SUFFIX: i for i, o in enumerate(self.outputs)}
        runs.sort(key=lambda vi: order.get(vi.name, len(order)))
        internal = set(self.crossing) - set(self.outputs)  # averaged for the tail only
        if running:  # the tail's running outputs replace the crossing tensors' running means
            internal |= {c + RUNNING_SUFFIX for c in internal}
        listed = {v.name for v in final + runs}
        rest = [vi for vi in g.output if vi.name not in listed and vi.name not in internal]
        kept = [onnx.ValueInfoProto() for _ in final + runs + rest]
        for k, vi in zip(kept, final + runs + rest):
            k.CopyFrom(vi)
        del g.output[:]
        g.output.extend(kept)
        for domain, version in self.opsets:
            if domain not in {o.domain for o in out.opset_import}:
                out.opset_import.append(onnx.helper.make_opsetid(domain, version))
        return out


def split(ann: onnx.ModelProto) -> tuple[onnx.ModelProto, Tail | None]:
    """(the body to convert, its tail) — ``(ann, None)`` when nothing runs after the readout."""
    graph = import_model(ann)
    acts = activation_tensors(graph)
    quantized = quantized_tensors(ann)
    tail = tail_nodes(graph, acts, lambda n: support_reason(graph, n, acts), quantized)
    if not tail:
        return ann, None
    crossing = crossing_tensors(graph, tail, acts)
    for t in crossing:
        if t.dtype is not None and _dtype(t.dtype) != "float32":
            raise ConversionError(
                f"the ops after the last layer read '{t.name}' ({_dtype(t.dtype)}), which is not a float32 "
                "tensor the readout can average over time; only the network's float outputs can be averaged")
    written = {t.name for n in tail for t in n.outputs}
    index = [i for i, n in enumerate(graph.nodes) if any(n is m for m in tail)]
    copy = import_model(ann)  # the tail's own copy of the tensors and nodes (same order after toposort)
    copy.toposort()
    tensors = copy.tensors()
    tail_copy = [copy.nodes[i] for i in index]
    inputs = []
    names = NameScope(graph)
    for t in crossing:
        if not any(t is x for x in graph.inputs):
            inputs.append(tensors[t.name])
            continue
        # the tail reads a model input itself: the body averages a copy of it (an input is no output)
        read = gs.Variable(names.fresh(t.name + "_averaged"), t.dtype, t.shape)
        graph.nodes.append(gs.Node("Identity", read.name, inputs=[t], outputs=[read]))
        crossing[crossing.index(t)] = read
        seen = gs.Variable(read.name, t.dtype, t.shape)
        for node in tail_copy:
            for k, x in enumerate(list(node.inputs)):
                if x.name == t.name:
                    node.inputs[k] = seen
        inputs.append(seen)
    tail_graph = gs.Graph(nodes=tail_copy, inputs=inputs,
                          outputs=[o for o in copy.outputs if o.name in written], opset=copy.opset)
    tail_model = export_graph(tail_graph, like=ann)
    keep = [o for o in graph.outputs if o.name not in written]
    graph.outputs = keep + [t for t in crossing if all(t is not o for o in keep)]
    body = export_graph(graph, like=ann)  # the tail's nodes, now unused, are cleaned up
    return body, Tail(tail_model.graph, tuple(o.name for o in ann.graph.output),
                      tuple((o.domain, o.version) for o in ann.opset_import))


def quantized_tensors(ann: onnx.ModelProto) -> set[str]:
    """The canonical ANN's quantized tensors: its quantized activations (metadata) and the outputs of
    its input encoders (a quantizer on a model input, kept as ops), which are no head or tail."""
    from ..passes.quantizers import DetectQuantizedActivationsPass

    detect = DetectQuantizedActivationsPass()
    try:
        detect(import_model(ann))
    except Exception:  # noqa: BLE001 - the support check has refused what the detection cannot read
        return set(quantizers_from_metadata(ann))
    return set(quantizers_from_metadata(ann)) | set(detect.quantizers) | detect.encoded


def _dtype(dtype) -> str:
    """numpy's name of a graphsurgeon dtype, or ONNX's for the types numpy lacks (bfloat16, float8...)."""
    try:
        return str(np.dtype(dtype))
    except TypeError:
        return onnx.TensorProto.DataType.Name(int(dtype)).lower()


def _row_wise(node: onnx.NodeProto, constants: dict) -> bool:
    """Whether ``node`` acts on each row of axis 0 on its own (so it may run on T·N rows of running means)."""
    if node.op_type == "Reshape":  # a constant target: its first entry k > 0 becomes T·k on T·N rows
        target = constants.get(node.input[1]) if len(node.input) > 1 else None
        return target is not None and target.ndim == 1 and target.size > 0 \
            and not (int(target[0]) == 0 and any(a.name == "allowzero" and a.i for a in node.attribute))
    if node.op_type not in ROW_WISE:
        return False
    return not any(a.name == "axis" and a.i == 0 for a in node.attribute)  # Softmax's default axis is not 0


def _names(g: onnx.GraphProto) -> set[str]:
    names = {i.name for i in g.initializer} | {v.name for v in g.input} | {v.name for v in g.output}
    for n in g.node:
        names.update(n.input)
        names.update(n.output)
    return names


def _fresh(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}__{k}", k + 1
    taken.add(name)
    return name


def _fresh_internals(tail: onnx.GraphProto, taken: set[str], keep: set[str]) -> dict[str, str]:
    """Renames for the tail's own tensors (node outputs, initializers) the SNN already uses."""
    mapping = {}
    own = [t for n in tail.node for t in n.output] + [i.name for i in tail.initializer]
    for name in own:
        if name and name not in keep and name in taken and name not in mapping:
            mapping[name] = _fresh(name, taken)
    return mapping


def _append(g: onnx.GraphProto, tail: onnx.GraphProto, mapping: dict[str, str]) -> None:
    for init in tail.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = mapping.get(init.name, init.name)
        g.initializer.append(copy)
    for node in tail.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [mapping.get(i, i) for i in node.input]
        copy.output[:] = [mapping.get(o, o) for o in node.output]
        if copy.name:
            copy.name = _fresh(copy.name, {n.name for n in g.node})
        g.node.append(copy)


def _static(vi: onnx.ValueInfoProto) -> list[int] | None:
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    return None if not dims or any(d is None for d in dims[1:]) else dims


def _running_copy(g: onnx.GraphProto, tail: onnx.GraphProto, outputs: list[str], taken: set[str]) -> dict:
    """A renamed copy of the tail on the crossing tensors' running means [T, N, ...] viewed as [T·N, ...];
    returns {tail output: its running output's ValueInfo} (empty when a shape is not static)."""
    crossing = {vi.name: _static(vi) for vi in tail.input}
    shapes = {vi.name: _static(vi) for vi in tail.output}
    running_in = {vi.name: vi for vi in g.output if vi.name.endswith(RUNNING_SUFFIX)}
    if any(d is None for d in list(crossing.values()) + list(shapes.values())) or \
            any(c + RUNNING_SUFFIX not in running_in for c in crossing):
        return {}
    T = running_in[next(iter(crossing)) + RUNNING_SUFFIX].type.tensor_type.shape.dim[0].dim_value
    if T <= 0:
        return {}
    mapping = {}
    for name in [t for n in tail.node for t in n.output] + [i.name for i in tail.initializer] + list(crossing):
        if name and name not in mapping:
            mapping[name] = _fresh(name + "_running", taken)
    for c, dims in crossing.items():  # [T, N, ...] → [T·N, ...]
        shape = _fresh(c + "_running_rows_shape", taken)
        g.initializer.append(onnx.numpy_helper.from_array(np.array([-1] + dims[1:], np.int64), shape))
        g.node.append(onnx.helper.make_node("Reshape", [c + RUNNING_SUFFIX, shape], [mapping[c]],
                                            name=_fresh(c + "/running_rows", taken)))
    _append(g, tail, mapping)
    constants = {i.name: i for i in tail.initializer}
    for node in g.node[len(g.node) - len(tail.node):]:  # the copy keeps the T blocks of rows (time_axis.py)
        target = constants.get(next((k for k, v in mapping.items() if v == node.input[1]), None)) \
            if node.op_type == "Reshape" and len(node.input) > 1 else None
        if target is not None and onnx.numpy_helper.to_array(target).reshape(-1)[:1].tolist() > [0]:
            folded = onnx.numpy_helper.to_array(target).astype(np.int64).copy()
            folded[0] *= T
            name = _fresh(node.input[1] + "_timefolded", taken)
            g.initializer.append(onnx.numpy_helper.from_array(folded, name))
            node.input[1] = name
    out = {}
    for o in outputs:  # [T·N, ...] → [T, N, ...]
        shape = _fresh(o + "_running_steps_shape", taken)
        g.initializer.append(onnx.numpy_helper.from_array(np.array([T, -1] + shapes[o][1:], np.int64), shape))
        name = _fresh(o + RUNNING_SUFFIX, taken)
        g.node.append(onnx.helper.make_node("Reshape", [mapping[o], shape], [name],
                                            name=_fresh(o + "/running_steps", taken)))
        elem = next(vi for vi in tail.output if vi.name == o).type.tensor_type.elem_type
        out[o] = onnx.helper.make_tensor_value_info(name, elem, [T, None] + shapes[o][1:])
    return out
