"""Which nodes of a (constant-folded) graph the spiking conversion can carry.

The time axis is folded into the batch axis, so every node that reads an
activation (a value computed from the model's inputs) must act on each sample
independently and, except for the ReLU-like nodes that become neurons, be
linear or a pooling. Shape arithmetic (from ``Shape``) is data-independent and
always allowed. A final Softmax/LogSoftmax is moved after the readout.

:func:`find_unsupported` lists every offending node with the reason;
:func:`check_supported` raises one :class:`UnsupportedOpError` naming them all.
"""
from __future__ import annotations

from typing import Collection

import numpy as np
import onnx_graphsurgeon as gs

import onnx

from .. import metadata
from ..core.graph import SNN_DOMAIN, constant_value, is_empty, is_graph_output, node_label
from ..errors import ConversionError, UnsupportedOpError
from .activations import relu_cap
from .remove_identity import dropout_kept_reason

# per-sample linear or affine ops that need no check beyond "weights are constant"
LINEAR_WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "BatchNormalization"}
POOLING = {"AveragePool", "GlobalAveragePool", "MaxPool", "GlobalMaxPool", "LpPool"}
STRUCTURAL = {"Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Pad", "Concat",
              "ReduceMean", "ReduceSum", "Identity", "Dropout", "Cast", "Split", "Expand", "Gather"}
SHAPE_ONLY = {"Shape", "Size"}
FINAL_ONLY = {"Softmax", "LogSoftmax"}
# ops whose constant operand may hold one row per sample of a fixed batch (per_sample_constants)
PER_SAMPLE_OPS = {"Add", "Sub", "Mul", "Div", "Sum", "Concat"}

ALL_SUPPORTED = (LINEAR_WEIGHTED | POOLING | STRUCTURAL | FINAL_ONLY
                 | {"Relu", "Clip", "Add", "Sub", "Mul", "Div", "MatMul", "Sum"})


def _axes(node: gs.Node, rank: int | None) -> list[int] | None:
    """The axes an op acts on, from its attribute or constant input (None if all/unknown)."""
    if "axes" in node.attrs:
        axes = list(node.attrs["axes"])
    elif len(node.inputs) > 1 and node.op in ("ReduceMean", "ReduceSum", "Squeeze", "Unsqueeze"):
        v = constant_value(node.inputs[1])
        axes = None if v is None else [int(a) for a in v.reshape(-1)]
    else:
        return None
    if rank is not None:
        axes = [a + rank if a < 0 else a for a in axes]
    return axes


def _rank(tensor) -> int | None:
    shape = getattr(tensor, "shape", None)
    return None if shape is None else len(shape)


def fixed_batch(graph: gs.Graph) -> int | None:
    """The batch B > 1 every graph input of known rank fixes (None: dynamic, 1, or inputs disagree)."""
    batches = {x.shape[0] for x in graph.inputs if x.shape}
    if len(batches) == 1:
        (b,) = batches
        if isinstance(b, int) and b > 1:
            return b
    return None


def per_sample_constants(node: gs.Node, acts: set[str], batch: int | None) -> list[gs.Tensor]:
    """The constant operands of an elementwise op or a Concat that hold one row per sample of the
    fixed batch B: the rank of an activation operand, B rows along axis 0. Once time is folded
    into the batch they are tiled T times (snn/time_axis.py), so row t·B + b still meets row b."""
    if batch is None or node.op not in PER_SAMPLE_OPS:
        return []
    ranks = {_rank(a) for a in node.inputs if a.name in acts} - {None}
    out = []
    for t in node.inputs:
        v = None if t.name in acts else constant_value(t)
        if v is not None and v.ndim >= 1 and v.ndim in ranks and v.shape[0] == batch:
            out.append(t)
    return out


def _batch_mixing_constant(node: gs.Node, acts: set[str], batch: int | None = None) -> str:
    """Reason if a constant operand of an elementwise op varies along the batch axis (other than
    one row per sample of the fixed batch, see per_sample_constants)."""
    per_sample = per_sample_constants(node, acts, batch)
    for t in node.inputs:
        v = constant_value(t)
        if v is None or any(t is c for c in per_sample):
            continue
        for a in node.inputs:
            r = _rank(a) if a.name in acts else None
            if r and v.ndim == r and v.shape[0] > 1:  # a rank-0 activation has no batch axis
                return (f"its constant operand '{t.name}' has {v.shape[0]} rows along the batch axis; "
                        "batch-dependent constants cannot be used once time is folded into the batch "
                        "(only one row per sample of a fixed batch)")
    return ""


def _slice_touches_batch(node: gs.Node) -> bool:
    if len(node.inputs) > 1:  # opset >= 10: starts, ends, axes, steps as inputs
        vals = [None if is_empty(t) else constant_value(t) for t in list(node.inputs[1:5])]
        vals += [None] * (4 - len(vals))
        starts, ends, axes, steps = vals
        if starts is None or ends is None:
            return True
        axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
        steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    else:
        starts, ends = node.attrs.get("starts", []), node.attrs.get("ends", [])
        axes = list(node.attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    for s, e, a, st in zip(list(starts), list(ends), axes, steps):
        if a == 0 and not (int(s) == 0 and int(e) >= 2**31 - 1 and st == 1):
            return True
    return False


def _reason(graph: gs.Graph, node: gs.Node, acts: set[str]) -> str:
    """Why ``node`` (which reads an activation) cannot be converted; '' if it can."""
    op = node.op
    act_inputs = [i for i, t in enumerate(node.inputs) if t.name in acts]
    if node.domain not in ("", "ai.onnx", None):
        return f"custom op of domain '{node.domain}' has no spiking equivalent"
    if op == "Relu":
        return ""
    if op == "Clip":
        return relu_cap(node)[2]
    if op not in ALL_SUPPORTED:
        return (f"{op} has no spiking equivalent (onnx2snn converts ReLU networks: Conv/Gemm/MatMul, "
                "BatchNormalization, Relu, Add, Concat, pooling, reshaping)")
    if op in LINEAR_WEIGHTED or op == "Gemm":
        if act_inputs != [0]:
            return f"{op} with weights computed from activations is not a fixed linear layer"
        if op == "Gemm" and node.attrs.get("transA", 0):
            return "Gemm with transA=1 mixes samples of the batch"
        if op == "BatchNormalization" and node.attrs.get("training_mode", 0):
            return "BatchNormalization in training mode; export the model in eval mode"
        return ""
    if op == "MatMul":
        if act_inputs != [0]:
            return "MatMul of two activations (or activation on the right) is not a fixed linear layer"
        return ""
    if op in ("Mul", "Div"):
        if len(act_inputs) > 1:
            return f"{op} of two activations is not linear; only scaling by a constant converts"
        if op == "Div" and act_inputs == [1]:
            return "Div by an activation is not linear"
        return _batch_mixing_constant(node, acts, fixed_batch(graph))
    if op in ("Add", "Sub", "Sum"):
        return _batch_mixing_constant(node, acts, fixed_batch(graph))
    if op in FINAL_ONLY:
        out = node.outputs[0]
        if is_graph_output(graph, out) and not out.outputs:
            return ""
        return f"{op} inside the network has no spiking equivalent (only a final {op} is supported)"
    if op == "Dropout":
        kept = dropout_kept_reason(graph, node)
        if kept:
            return kept
    if op in ("MaxPool", "GlobalMaxPool") and len(node.outputs) > 1 and node.outputs[1].outputs:
        return f"{op} whose second output (indices) is used cannot be converted"
    if op == "LpPool":
        return "LpPool is not linear"
    if act_inputs and act_inputs != [0] and op not in ("Concat", "Sum"):
        return f"{op} with a shape or parameter computed from activations cannot be converted"
    rank = _rank(node.inputs[0])
    if op == "Concat":
        axis = int(node.attrs.get("axis", 0))
        if axis == 0 or (rank is not None and axis == -rank):
            return "Concat along the batch axis mixes samples"
    if op == "Flatten" and int(node.attrs.get("axis", 1)) == 0:
        return "Flatten with axis=0 merges the batch axis"
    if op == "Transpose":
        perm = list(node.attrs.get("perm", []))
        if not perm or perm[0] != 0:
            return "Transpose that moves the batch axis cannot run on a time-folded batch"
    if op in ("ReduceMean", "ReduceSum"):
        axes = _axes(node, rank)
        if axes is None or 0 in axes:
            return f"{op} over the batch axis (or over all axes) mixes samples"
    if op in ("Squeeze", "Unsqueeze"):
        axes = _axes(node, rank if op == "Squeeze" else None)
        if axes is None or 0 in axes:
            return f"{op} on the batch axis cannot run on a time-folded batch"
    if op == "Slice" and _slice_touches_batch(node):
        return "Slice along the batch axis mixes samples"
    if op == "Pad":
        mode = node.attrs.get("mode", "constant")
        if isinstance(mode, bytes):
            mode = mode.decode()
        if mode != "constant":
            return f"Pad in mode '{mode}' is not supported (only constant zero padding)"
        pads = node.attrs.get("pads") if "pads" in node.attrs else (
            constant_value(node.inputs[1]) if len(node.inputs) > 1 else None)
        value = node.attrs.get("value", 0.0)
        if len(node.inputs) > 2 and not is_empty(node.inputs[2]):
            v = constant_value(node.inputs[2])
            value = None if v is None else float(np.asarray(v).reshape(-1)[0])
        if pads is None or value is None:
            return "Pad with computed pads or value cannot be converted"
        pads = np.asarray(pads).reshape(-1)
        if len(node.inputs) > 3 and not is_empty(node.inputs[3]):
            return "Pad with an axes input is not supported"
        if pads.size and (pads[0] != 0 or pads[pads.size // 2] != 0):
            return "Pad along the batch axis mixes samples"
        if value != 0.0:
            return f"Pad with value {value} is not supported (only zero padding)"
    if op == "Gather":  # a selection along a feature axis (e.g. x[:, t] of a sequence) is linear
        axis = int(node.attrs.get("axis", 0))
        if axis == 0 or (rank is not None and axis == -rank):
            return "Gather along the batch axis mixes samples"
    if op == "Split":
        axis = int(node.attrs.get("axis", 0))
        if axis == 0:
            return "Split along the batch axis mixes samples"
    if op == "Expand":
        return "Expand of an activation cannot be checked to keep the batch axis"
    if op == "Cast":
        to = int(node.attrs.get("to", 1))
        if to not in (1, 10, 11, 16):  # float, float16, double, bfloat16
            return "Cast of an activation to a non-float type (a quantisation) has no spiking equivalent"
    return ""


ALREADY_SNN = ("an onnx2snn op: this model is already an SNN converted by onnx2snn; run it with "
               "onnx2snn.InferenceSession or `onnx2snn evaluate`, or convert the source ANN instead")


def _snn_nodes(graph: onnx.GraphProto) -> list[tuple[str, str]]:
    """(name, op type) of every onnx2snn-domain node of ``graph`` and of its subgraphs."""
    found = []
    for node in graph.node:
        if node.domain == SNN_DOMAIN:
            found.append((node.name or f"<unnamed {node.op_type}>", node.op_type))
        for a in node.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                found += _snn_nodes(sub)
    return found


def _already_snn(nodes) -> ConversionError:
    listed = "; ".join(f"node '{name}' ({op})" for name, op in nodes)
    return ConversionError(
        "the model is already an SNN converted by onnx2snn"
        + (f" ({len(nodes)} onnx2snn node(s): {listed})" if nodes else " (it carries onnx2snn's SNN metadata)")
        + ": it cannot be converted again; run it with onnx2snn.InferenceSession or `onnx2snn "
          "evaluate`, or convert (and inspect) the source ANN instead")


def check_not_snn(model: onnx.ModelProto) -> None:
    """ConversionError if ``model`` is an SNN onnx2snn wrote (onnx2snn ops in a graph, or its metadata:
    the portable and streaming forms have standard ops only)."""
    nodes = _snn_nodes(model.graph)
    if nodes or metadata.is_snn(model):
        raise _already_snn(nodes)


def activation_tensors(graph: gs.Graph) -> set[str]:
    """Names of tensors whose values depend on graph inputs (Shape outputs excluded)."""
    acts = {t.name for t in graph.inputs}
    for node in graph.nodes:
        if node.op in SHAPE_ONLY:
            continue
        if any(t.name in acts for t in node.inputs if not is_empty(t)):
            acts.update(t.name for t in node.outputs)
    return acts


def _scalar_reason(name: str, what: str = "reads the graph input") -> str:
    return (f"{what} '{name}' of rank 0 (a scalar): the SNN folds time into the batch axis, "
            "so every model input needs one; give it shape [N, ...] (or make it a constant)")


def find_unsupported(graph: gs.Graph, quantized: Collection[str] = ()) -> list[tuple[str, str, str]]:
    """``(node name, op type, reason)`` for every node that cannot be converted; the nodes
    writing a ``quantized`` tensor are accepted (quantized-activation markers and input
    encoders, see passes/quantizers). A rank-0 model input no node reads is listed as
    ``<input NAME>``, a constant graph output by the node writing it."""
    graph.toposort()
    acts = activation_tensors(graph)
    scalar_inputs = {t.name for t in graph.inputs if _rank(t) == 0}
    offenders = []
    for node in graph.nodes:
        if node.op in SHAPE_ONLY or not any(t.name in acts for t in node.inputs if not is_empty(t)):
            continue
        if node.outputs and node.outputs[0].name in quantized:
            continue
        if node.attrs and any(isinstance(v, gs.Graph) for v in node.attrs.values()):
            offenders.append((*node_label(node), f"{node.op} with a subgraph (control flow) is not supported"))
            continue
        scalars = [t.name for t in node.inputs if t.name in scalar_inputs]
        reason = ALREADY_SNN if node.domain == SNN_DOMAIN else (
            _scalar_reason(scalars[0]) if scalars else _reason(graph, node, acts))
        if reason:
            offenders.append((*node_label(node), reason))
    read = {t.name for node in graph.nodes for t in node.inputs}
    for name in sorted(scalar_inputs - read):  # no node to name: the input itself is the offender
        offenders.append((f"<input {name}>", "graph input", _scalar_reason(name, "is the graph input")))
    for out in graph.outputs:  # an output no input reaches (a model without inputs): nothing to spike
        if out.name not in acts:
            where = node_label(out.inputs[0]) if len(out.inputs) else (f"<output {out.name}>", "Constant")
            offenders.append((*where, f"graph output '{out.name}' does not depend on any model input "
                              f"({'the model has no inputs' if not graph.inputs else 'a constant'}): an SNN "
                              "computes its outputs from its inputs; remove this output or give the model an input"))
    return offenders


def check_supported(graph: gs.Graph, quantized: Collection[str] = ()) -> None:
    """UnsupportedOpError naming every node that cannot be converted (ConversionError saying so if
    the graph is already an SNN: its onnx2snn ops are no layers to replace)."""
    offenders = find_unsupported(graph, quantized)
    snn = [(name, op) for name, op, reason in offenders if reason == ALREADY_SNN]
    if snn:
        raise _already_snn(snn)
    if offenders:
        raise UnsupportedOpError(offenders)
