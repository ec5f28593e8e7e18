"""SAnalogEncodingPass: the whole input, and every constant term, in step 0 only.

For lossless conversion with BIF neurons the SNN must compute *sums* over time:
the current a neuron integrates over all steps must total the ANN's
pre-activation z = A(a_prev) = W·a_prev + c, where A is the affine map (Conv,
Gemm, Add, pools, ...) from the previous neurons' outputs and the graph input,
and c = A(0) its constant part (biases, BatchNorm shifts, zero-padding effects
of average pools: one value per element). Each step computes A(s_t) on the
step's spikes s_t, so Σ_t A(s_t) = W·Σ_t s_t + T·c: c would count T times.

After :class:`~onnx2snn.snn.time_axis.AddTimeAxisPass` has tiled the input,
this pass

* keeps the analog input at step 0 and zeroes it at steps t ≥ 1 (s-analog
  encoding: x_t = x·[t = 0]);
* subtracts c from every neuron's input current and from every per-step graph
  output (before a final Softmax) at steps t ≥ 1: x'_t = A(s_t) − [t ≥ 1]·c,

so that Σ_t x'_t = W·Σ_t s_t + c = A(Σ_t s_t) exactly in real arithmetic, and
the readout (a running *sum* over steps) gives the ANN's output once every
neuron has settled (:func:`~onnx2snn.neurons.bipolar.lowering.exact_timesteps`).

c is computed by :func:`constant_terms` with onnxruntime: the ANN with every
activation replaced by 0, on an all-zero input of batch 1. The step masks
[t = 0] and [t ≥ 1] are built in the graph from the input's batch size (Shape,
Gather, ConstantOfShape, Mul, Reshape: opset ≥ 9), as [T·N, 1, ..., 1] tensors.

Invariant: graph inputs and outputs keep their names; at step 0 every
corrected tensor equals the uncorrected one bit for bit (c·0 = 0).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import NameScope, PassResult, export_graph, import_model, replace_uses
from ..errors import ConversionError
from ..neurons.bipolar.lowering import neuron_nodes
from ..passes.quantizers import quantizers_from_metadata


def final_tensors(graph: gs.Graph) -> list:
    """Per graph output, the tensor averaged by the readout: the input of a final Softmax, or itself."""
    finals = []
    for out in graph.outputs:
        prod = out.inputs[0] if len(out.inputs) else None
        if prod is not None and prod.op in ("Softmax", "LogSoftmax") and not out.outputs:
            finals.append(prod.inputs[0])
        else:
            finals.append(out)
    return finals


def constant_terms(ann: onnx.ModelProto) -> dict[str, np.ndarray]:
    """c = value with all activations 0 and input 0, batch 1: for every activation's input
    current and every output's pre-Softmax tensor of the canonical ANN, by tensor name."""
    import onnxruntime as ort

    graph = import_model(ann)
    b = Builder(NameScope(graph))
    wanted = []
    for node in neuron_nodes(graph, quantizers_from_metadata(ann)):
        wanted.append(node.inputs[0])
        zero = b.const(node.outputs[0].name + "_zero", np.array(0.0, np.float32))
        node.op, node.attrs = "Mul", {}
        while len(node.inputs) > 1:
            node.inputs.pop()
        node.inputs.append(zero)
    wanted += final_tensors(graph)
    feeds = {}
    for x in graph.inputs:
        dims = list(x.shape or [])
        if not dims or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise ConversionError(f"graph input '{x.name}' has shape {x.shape}; BIF conversion needs every "
                                  "dimension but the batch to be static (export with fixed input sizes)")
        batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else 1  # a fixed batch size is kept
        feeds[x.name] = np.zeros([batch] + dims[1:], dtype=np.dtype(x.dtype) if x.dtype is not None else np.float32)
    for t in wanted:
        t.dtype = t.dtype or np.float32
    graph.outputs = list({t.name: t for t in wanted}.values())
    model = export_graph(graph, like=ann)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    values = sess.run([t.name for t in graph.outputs], feeds)
    return {t.name: np.asarray(v, np.float32)[:1] for t, v in zip(graph.outputs, values)}  # same for every sample


class SAnalogEncodingPass:
    def __init__(self, timesteps: int, constants: Mapping[str, np.ndarray]):
        self.timesteps = int(timesteps)
        self.constants = constants

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        b = Builder(names)
        T = self.timesteps
        source = next((x for x in graph.inputs if x.outputs), None)
        if source is None:
            return PassResult(graph, 0)
        shape = b.var("s_analog_input_shape", np.int64)
        batch = b.var("s_analog_batch", np.int64)
        ones_shape = b.var("s_analog_ones_shape", np.int64)
        ones = b.var("s_analog_ones", np.float32)

        graph.nodes += [
            b.node("Shape", "s_analog/shape", inputs=[source], outputs=[shape]),
            b.node("Gather", "s_analog/batch", attrs={"axis": 0},
                    inputs=[shape, b.const("s_analog_axis0", np.array([0], np.int64))], outputs=[batch]),
            b.node("Concat", "s_analog/ones_shape", attrs={"axis": 0},
                    inputs=[b.const("s_analog_one", np.array([1], np.int64)), batch], outputs=[ones_shape]),
        ]
        if int(graph.opset) >= 9:
            graph.nodes.append(b.node("ConstantOfShape", "s_analog/ones", [ones_shape], [ones],
                                      {"value": gs.Constant("s_analog_one_f", np.array([1.0], np.float32))}))
        else:  # ConstantOfShape is opset 9; Expand (opset 8) of a 1 gives the same ones
            graph.nodes.append(b.node("Expand", "s_analog/ones", [b.const("s_analog_one_f", np.ones((1, 1), np.float32)),
                                                                   ones_shape], [ones]))
        first = np.zeros((T, 1), np.float32)
        first[0] = 1.0
        masks: dict[tuple[str, int], gs.Variable] = {}

        def mask(kind: str, rank: int) -> gs.Variable:
            """[T·N, 1, ..., 1] (rank) holding [t = 0] ("first") or [t ≥ 1] ("rest")."""
            if (kind, rank) not in masks:
                steps = first if kind == "first" else 1.0 - first
                grid = b.var(f"s_analog_{kind}_grid", np.float32)
                out = b.var(f"s_analog_{kind}_rank{rank}", np.float32)
                graph.nodes += [
                    b.node("Mul", f"s_analog/{kind}_grid", inputs=[b.const(f"s_analog_{kind}_steps", steps), ones], outputs=[grid]),
                    b.node("Reshape", f"s_analog/{kind}_rank{rank}", inputs=[grid, b.const("s_analog_shape", np.array([-1] + [1] * (rank - 1), np.int64))],
                            outputs=[out]),
                ]
                masks[(kind, rank)] = out
            return masks[(kind, rank)]

        count = 0
        for x in graph.inputs:  # the analog input at step 0 only
            for tile in [n for n in x.outputs if n.op == "Tile"]:
                tiled = tile.outputs[0]
                encoded = b.var(x.name + "_s_analog", x.dtype)
                first_step = b.node("Mul", x.name + "/s_analog", inputs=[tiled, mask("first", len(x.shape))],
                                    outputs=[encoded])
                graph.nodes.append(first_step)
                replace_uses(tiled, encoded, keep=[first_step])
                count += 1

        def correct(tensor, value: np.ndarray) -> gs.Variable:
            """tensor − [t ≥ 1]·c as a new tensor."""
            value = np.asarray(value, np.float32)
            term = b.var(tensor.name + "_constant_term", np.float32)
            fixed = b.var(tensor.name + "_sum_coded", np.float32)
            graph.nodes += [
                b.node("Mul", tensor.name + "/constant_term", inputs=[mask("rest", value.ndim), b.const(tensor.name + "_constant", value)], outputs=[term]),
                b.node("Sub", tensor.name + "/once", inputs=[tensor, term], outputs=[fixed]),
            ]
            return fixed

        for node in [n for n in graph.nodes if n.op == "BIFNeuron"]:
            current = node.inputs[0]
            if current.name not in self.constants:
                raise ConversionError(f"node '{node.name}' (BIFNeuron): no constant term for its input "
                                      f"'{current.name}'")
            value = self.constants[current.name]
            if np.any(value != 0):
                node.inputs[0] = correct(current, value)
                count += 1
        outputs = list(graph.outputs)
        for out, final in zip(outputs, final_tensors(graph)):
            value = self.constants.get(final.name)
            if value is None:
                raise ConversionError(f"graph output '{out.name}': no constant term for '{final.name}'")
            if not np.any(value != 0):
                continue
            if final is out:  # the output's producer writes a new tensor; the Sub writes the output
                raw = b.var(out.name + "_with_constant", out.dtype)
                producer = out.inputs[0]
                producer.outputs[list(producer.outputs).index(out)] = raw
                fixed = correct(raw, value)
                fixed.inputs[0].outputs[0] = out
            else:  # a final Softmax reads the corrected logits
                fixed = correct(final, value)
                softmax = out.inputs[0]
                softmax.inputs[0] = fixed
            count += 1
        graph.cleanup().toposort()
        return PassResult(graph, count)
